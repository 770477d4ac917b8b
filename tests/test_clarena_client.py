"""specc's `--base clarena` classes as CLArena's own code sees them (issue 10).

CLArena (`../shared/clarena`, MIT) is used as an installed library: its algorithms (HAT, AdaHAT,
AmnesiacHAT with DER++ replay and AmnesiacHATUnlearn, WSN, Finetuning) are driven through Lightning's
real `Trainer` by the reduced task loop in `clarena_client/harness.py`, twice under the same seed:
once with CLArena's backbone class, once with specc's (`specc compile <spec> --base clarena`), each
built from the same arguments, no weights copied. Every training step's outputs, every mask, every
parameter and buffer after each task, the unlearning result and the test outputs must agree with
`torch.equal`.

torchvision is replaced by a stub (`clarena_client/stub.py`, installed only while CLArena and the
compiled modules are imported). CLArena's WSN straight-through backward has no body in this version;
the WSN tests monkeypatch it to `return grad_output, None` (fixture `wsn_backward_restored`).

Besides the specc comparisons:
- `test_harness_is_deterministic[...]`: CLArena vs CLArena, per scenario: the harness itself is
  reproducible and its record is complete (so the specc comparison is meaningful);
- `test_comparison_*`: the comparison does catch a 1-ulp parameter change, a different seed, and
  structural differences;
- premise tests on CLArena alone (ListConfig really arrives through Hydra; the pretrained path really
  loads the stubbed torchvision weights; CLArena's key counts).
"""
from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from clarena_client import factories
from clarena_client.harness import (
    SCENARIO_BY_NAME,
    SCENARIOS,
    SEED,
    assert_same,
    capture,
    check_record,
    diff,
    run,
)
from clarena_client.loader import stub_window, torchvision_stub

pytestmark = pytest.mark.usefixtures("no_stub_left_behind")


def _reference(scenario, clarena, workdir):
    """The run with CLArena's own backbone class. (Not cached across tests: a ResNet record holds a
    dozen full state dicts and weight-sized adjustment rates, ~0.5 GB.)"""
    return run(scenario, getattr(clarena.backbones, scenario.backbone), clarena, workdir)


def _patches(request, scenario):
    if scenario.needs_wsn_backward:
        request.getfixturevalue("wsn_backward_restored")


# -- the training harness ------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_harness_is_deterministic(scenario, clarena, request, tmp_path):
    """CLArena's backbone against itself: two runs of the harness, identical records."""
    _patches(request, scenario)
    first = _reference(scenario, clarena, tmp_path)
    check_record(first, scenario)
    second = _reference(scenario, clarena, tmp_path)
    assert_same(first, second)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_specc_backbone_matches_clarena_under_clarena_algorithm(scenario, clarena, specc, request, tmp_path):
    """The same run with specc's class in place of CLArena's: the records must be identical."""
    _patches(request, scenario)
    candidate_cls = specc.cls(scenario.backbone)
    reference = _reference(scenario, clarena, tmp_path)
    candidate = run(scenario, candidate_cls, clarena, tmp_path)
    check_record(candidate, scenario)
    assert_same(reference, candidate)


def test_comparison_catches_one_ulp_in_one_parameter(clarena, tmp_path):
    scenario = SCENARIO_BY_NAME["hat-mlp-bn_none"]
    reference = _reference(scenario, clarena, tmp_path)
    d = diff(reference, run(scenario, factories.hat_mlp_one_ulp_off, clarena, tmp_path))
    assert "/constructed/state_dict/fc.0.weight: values differ (1 of 1024 elements)" in d, d[:10]
    assert "/initial/state_dict/backbone.fc.0.weight: values differ (1 of 1024 elements)" in d, d[:10]


def test_comparison_catches_a_different_seed(clarena, tmp_path):
    scenario = SCENARIO_BY_NAME["hat-mlp-bn_none"]
    reference = _reference(scenario, clarena, tmp_path)
    d = diff(reference, run(scenario, factories.hat_mlp_reseeded, clarena, tmp_path))
    for path in ("/constructed/state_dict/fc.0.weight", "/tasks/1/train[0]/outputs/loss",
                 "/tasks/2/after_fit/backbone/masks", "/tasks/2/test[0]/outputs/loss_cls",
                 "/tasks/2/test_stage_forward/1[0]"):
        assert any(p.startswith(path) for p in d), f"no difference under {path}: {d[:10]}"


def test_comparison_catches_structural_differences():
    t = torch.zeros(3)
    assert diff({"a": t, "b": 1}, {"b": 1, "a": t}) == [": same keys, different order (first at #0: 'a' vs 'b')"]
    assert diff({"a": t}, {"a": t, "c": t}) == [": keys only in first [], only in second ['c']"]
    assert diff({"a": t}, {"a": t.double()}) == ["/a: dtype torch.float32 vs torch.float64"]
    assert diff({"a": t}, {"a": torch.zeros(1, 3)}) == ["/a: shape (3,) vs (1, 3)"]
    assert diff([t, t], [t]) == [": length 2 vs 1"]
    assert diff({"a": [1, "x", None]}, {"a": [1, "y", None]}) == ["/a[1]: 'x' vs 'y'"]
    assert diff({"a": t}, {"a": None}) == ["/a: Tensor vs NoneType"]
    assert diff({"a": True}, {"a": 1}) == ["/a: True vs 1"]
    assert diff({"n": torch.tensor([float("nan")])}, {"n": torch.tensor([float("nan")])}) != []
    assert diff(capture({"x": (t, {1, 2})}), capture({"x": [t, {2, 1}]})) == []


def test_torchvision_stub_is_scoped(clarena):
    """CLArena got its `torchvision` (the stub), while everybody else still sees no torchvision:
    find_spec finds nothing, and lightning's and torchmetrics' cached flags say absent. Inside the
    window, find_spec answers (a ModuleSpec) instead of raising on `__spec__ = None`."""
    import importlib
    import importlib.util
    import sys

    from lightning.pytorch.utilities import imports as pl_imports
    from torchmetrics.utilities import imports as tm_imports

    stub = torchvision_stub()
    for mod in ("resnet", "hat_mask_resnet", "amnesiac_hat_resnet"):
        assert importlib.import_module(f"clarena.backbones.{mod}").torchvision is stub["torchvision"]
    assert importlib.import_module("clarena.cl_algorithms.der").transforms is stub["torchvision.transforms.transforms"]
    assert "torchvision" not in sys.modules
    assert importlib.util.find_spec("torchvision") is None
    assert not pl_imports._TORCHVISION_AVAILABLE and not tm_imports._TORCHVISION_AVAILABLE
    with stub_window():
        assert importlib.util.find_spec("torchvision") is stub["torchvision"].__spec__
        import torchvision.models

        assert torchvision.models is stub["torchvision.models"]
    assert "torchvision" not in sys.modules and "torchvision.models" not in sys.modules


# -- state dicts ---------------------------------------------------------------------------------

MLP_SMALL = {"input_dim": 12, "hidden_dims": [8, 6], "output_dim": 5}


def _setup(*task_ids, backups=None):
    def prep(backbone):
        for t in task_ids:
            backbone.setup_task_id(t)
        if backups is not None:
            backbone.instantiate_backup_backbones(backups)
    return prep


def _state_dict_cases():
    cases = [
        ("MLP", "MLP", MLP_SMALL, None),
        ("MLP-bn-dropout", "MLP", {**MLP_SMALL, "batch_normalization": True, "dropout": 0.25}, None),
        ("CLMLP", "CLMLP", MLP_SMALL, _setup(1)),
        ("CLMLP-bn", "CLMLP", {**MLP_SMALL, "batch_normalization": True}, _setup(1)),
        ("HATMaskMLP-bn_none", "HATMaskMLP", {**MLP_SMALL, "gate": "sigmoid"}, _setup(1)),
        ("HATMaskMLP-bn_shared", "HATMaskMLP", {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "shared"},
         _setup(1)),
        ("HATMaskMLP-bn_independent-task1", "HATMaskMLP",
         {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "independent"}, _setup(1)),
        ("HATMaskMLP-bn_independent-task2", "HATMaskMLP",
         {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "independent"}, _setup(1, 2)),
        ("WSNMaskMLP", "WSNMaskMLP", MLP_SMALL, _setup(1)),
        ("AmnesiacHATMLP-bn_none", "AmnesiacHATMLP", {**MLP_SMALL, "gate": "sigmoid"}, _setup(1)),
        ("AmnesiacHATMLP-bn_independent-task2-backup1", "AmnesiacHATMLP",
         {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "independent"}, _setup(1, 2, backups=[1])),
    ]
    for depth in (18, 34, 50, 101, 152):
        width = 512 if depth < 50 else 2048
        img = {"input_channels": 3, "output_dim": width}
        hat = {**img, "gate": "sigmoid"}
        big = depth >= 101  # slow to build: one variant each
        cases.append((f"ResNet{depth}", f"ResNet{depth}", img, None))
        cases.append((f"CLResNet{depth}", f"CLResNet{depth}", img, _setup(1)))
        if not big:
            cases.append((f"HATMaskResNet{depth}-bn_none", f"HATMaskResNet{depth}", hat, _setup(1)))
            cases.append((f"AmnesiacHATResNet{depth}-bn_none", f"AmnesiacHATResNet{depth}", hat, _setup(1)))
        cases.append((f"HATMaskResNet{depth}-bn_independent-task1", f"HATMaskResNet{depth}",
                      {**hat, "batch_normalization": "independent"}, _setup(1)))
        cases.append((f"AmnesiacHATResNet{depth}-bn_independent-task1", f"AmnesiacHATResNet{depth}",
                      {**hat, "batch_normalization": "independent"}, _setup(1)))
    cases += [
        ("ResNet18-no_bn-bias", "ResNet18", {"input_channels": 1, "output_dim": 512,
                                             "batch_normalization": False, "bias": True}, None),
        ("HATMaskResNet18-bn_shared", "HATMaskResNet18",
         {"input_channels": 3, "output_dim": 512, "gate": "sigmoid", "batch_normalization": "shared"}, _setup(1)),
        ("AmnesiacHATResNet18-bn_independent-task2-backup1", "AmnesiacHATResNet18",
         {"input_channels": 3, "output_dim": 512, "gate": "sigmoid", "batch_normalization": "independent"},
         _setup(1, 2, backups=[1])),
    ]
    return cases


STATE_DICT_CASES = _state_dict_cases()


def _build(cls, kwargs, prep):
    torch.manual_seed(SEED)
    backbone = cls(**kwargs)
    if prep is not None:
        prep(backbone)
    return backbone


@pytest.mark.parametrize("case", STATE_DICT_CASES, ids=lambda c: c[0])
def test_specc_state_dict_loads_both_ways_strictly(case, clarena, specc):
    """Same constructor arguments (and the same task set-up) -> the same state_dict keys, in the same
    order, with the same shapes and dtypes; each loads into the other with strict=True; and under the
    same seed the same initial values."""
    _, name, kwargs, prep = case
    candidate = _build(specc.cls(name), kwargs, prep)
    reference = _build(getattr(clarena.backbones, name), kwargs, prep)
    problems = []
    ref_sd, cand_sd = reference.state_dict(), candidate.state_dict()
    if list(cand_sd) != list(ref_sd):
        problems.append("state_dict keys or their order differ: " + "; ".join(diff(
            {k: None for k in ref_sd}, {k: None for k in cand_sd})))
    elif [(v.shape, v.dtype) for v in cand_sd.values()] != [(v.shape, v.dtype) for v in ref_sd.values()]:
        problems.append("shapes or dtypes differ: " + "; ".join(
            f"{k}: {tuple(a.shape)}/{a.dtype} vs {tuple(b.shape)}/{b.dtype}" for (k, a), b in
            zip(ref_sd.items(), cand_sd.values()) if (a.shape, a.dtype) != (b.shape, b.dtype)))
    else:
        problems += [f"same seed, different initial value: {d}" for d in diff(ref_sd, cand_sd)[:20]]
    del ref_sd, cand_sd
    for source, target, salt in ((reference, candidate, 1), (candidate, reference, 2)):
        scrambled = _scrambled(source.state_dict(), salt)
        try:
            target.load_state_dict(scrambled, strict=True)
        except RuntimeError as e:
            problems.append(f"{type(source).__module__} state dict into {type(target).__module__}: {e}")
            continue
        problems += [f"after loading into {type(target).__module__}: {d}" for d in diff(scrambled, target.state_dict())[:20]]
    assert not problems, "\n".join(problems)


def _scrambled(state_dict, salt: int) -> OrderedDict:
    """Fresh values of each entry's dtype and shape, all different (so a load that skips or swaps keys is
    visible), except that keys aliasing one tensor (HATMaskResNet's task embeddings appear under the
    block and under the top level) get one value."""
    g = torch.Generator().manual_seed(1000 + salt)
    by_storage: dict = {}
    out = OrderedDict()
    for k, t in state_dict.items():
        alias = (t.data_ptr(), t.dtype, tuple(t.shape), t.stride()) if t.numel() else None
        if alias is not None and alias in by_storage:
            out[k] = by_storage[alias]
            continue
        if t.dtype.is_floating_point:
            v = torch.randn(t.shape, generator=g, dtype=t.dtype)
        else:
            v = torch.randint(1, 10_000, t.shape, generator=g, dtype=t.dtype)
        out[k] = by_storage[alias] = v
    return out


def test_clarena_hatmaskresnet18_state_dict_sizes(clarena):
    """CLArena's key counts (the ones specc reproduces). HATMaskResNet's blocks' task embeddings are the
    same modules as the top-level `task_embedding_t` entries, so they appear twice in the state dict
    (16 of the 17 embeddings; `conv1`'s lives only at the top level)."""
    counts = {}
    for bn in (None, "shared", "independent"):
        backbone = _build(clarena.backbones.HATMaskResNet18,
                          {"input_channels": 3, "output_dim": 512, "gate": "sigmoid", "batch_normalization": bn},
                          _setup(1))
        sd = backbone.state_dict()
        counts[bn] = len(sd)
        assert sum("task_embedding_t" in k for k in sd) == 33
        assert len(list(backbone.named_parameters())) == {None: 37, "shared": 71, "independent": 105}[bn]
    assert counts == {None: 53, "shared": 138, "independent": 223}


# -- Hydra ---------------------------------------------------------------------------------------

HYDRA_CASES = [
    ("MLP", MLP_SMALL, None),
    ("CLMLP", MLP_SMALL, None),
    ("HATMaskMLP", {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "independent"}, _setup(1)),
    ("WSNMaskMLP", MLP_SMALL, None),
    ("AmnesiacHATMLP", {**MLP_SMALL, "gate": "sigmoid", "batch_normalization": "independent"}, None),
    ("HATMaskResNet18", {"input_channels": 3, "output_dim": 512, "gate": "sigmoid"}, None),
]


def _hydra_build(target: str, kwargs, extra, prep):
    import hydra
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"_target_": target, **kwargs})
    torch.manual_seed(SEED)
    backbone = hydra.utils.instantiate(cfg, **extra)
    if prep is not None:
        prep(backbone)
    return backbone


def test_clarena_receives_listconfig_through_hydra(clarena):
    """The premise of the Hydra test: without `_convert_`, `hidden_dims` reaches the constructor as an
    omegaconf ListConfig (CLArena's MLP keeps it as given)."""
    from omegaconf import ListConfig

    backbone = _hydra_build("clarena.backbones.MLP", MLP_SMALL, {}, None)
    assert isinstance(backbone.hidden_dims, ListConfig)


@pytest.mark.parametrize("extra", [{}, {"disable_unlearning": True}, {"disable_unlearning": False}],
                         ids=["plain", "cl_pipeline", "cul_pipeline"])
@pytest.mark.parametrize("case", HYDRA_CASES, ids=lambda c: c[0])
def test_specc_class_through_hydra(case, extra, clarena, specc):
    """`hydra.utils.instantiate` with `_target_` naming specc's class builds what it builds for
    CLArena's. CLArena's pipelines pass `disable_unlearning` to every backbone (cl_main_expr: True,
    cul_main_expr: False), so every class must accept it."""
    name, kwargs, prep = case
    if name == "AmnesiacHATMLP" and extra.get("disable_unlearning") is not True:
        prep = _setup(1, 2, backups=[1])  # backups are built from the ListConfig the class was given
    candidate = _hydra_build(specc.import_path(name), kwargs, extra, prep)
    reference = _hydra_build(f"clarena.backbones.{name}", kwargs, extra, prep)
    assert type(candidate).__name__ == name
    assert_same(capture(reference.state_dict()), capture(candidate.state_dict()))
    x = torch.randn(4, *((3, 8, 8) if "ResNet" in name else (12,)), generator=torch.Generator().manual_seed(5))
    assert_same(capture(_forward_any(reference, x)), capture(_forward_any(candidate, x)))


def _forward_any(backbone, x):
    """One forward in the simplest stage each family offers (eval mode, no grad)."""
    backbone.eval()
    with torch.no_grad():
        if hasattr(backbone, "task_embedding_t"):
            return backbone(x, stage="validation", s_max=400.0)
        if hasattr(backbone, "weight_score_t"):
            return backbone(x, stage="validation", mask_percentage=0.5)
        return backbone(x, stage="test")


# -- unknown constructor arguments ---------------------------------------------------------------

UNKNOWN_ARGUMENT_CASES = [
    ("MLP", MLP_SMALL), ("CLMLP", MLP_SMALL), ("HATMaskMLP", {**MLP_SMALL, "gate": "sigmoid"}),
    ("WSNMaskMLP", MLP_SMALL), ("AmnesiacHATMLP", {**MLP_SMALL, "gate": "sigmoid"}),
    ("ResNet18", {"input_channels": 3, "output_dim": 512}), ("CLResNet18", {"input_channels": 3, "output_dim": 512}),
    ("HATMaskResNet18", {"input_channels": 3, "output_dim": 512, "gate": "sigmoid"}),
    ("AmnesiacHATResNet18", {"input_channels": 3, "output_dim": 512, "gate": "sigmoid"}),
]


@pytest.mark.parametrize("case", UNKNOWN_ARGUMENT_CASES, ids=lambda c: c[0])
def test_specc_class_warns_about_unknown_argument_by_name(case, specc):
    """CLArena's classes swallow unknown keywords through **kwargs (issue 23: its author's configs
    carry a misspelt `batch_normalisation`); specc's `--base clarena` classes take them too, and name
    them in a warning. (specc's standalone classes raise TypeError: tests/test_clarena_configs.py.)"""
    name, kwargs = case
    with pytest.warns(UserWarning, match=rf"^{name} ignores the keyword argument\(s\) 'nff'"):
        specc.cls(name)(**kwargs, nff=64)


# -- pretrained weights --------------------------------------------------------------------------

PRETRAINED_CASES = [
    ("ResNet18", {}, "RESNET18_STATE_DICT_MAPPING"),
    ("CLResNet18", {}, "RESNET18_STATE_DICT_MAPPING"),
    ("HATMaskResNet18", {"gate": "sigmoid"}, "HATMASKRESNET18_STATE_DICT_MAPPING"),
    ("AmnesiacHATResNet18", {"gate": "sigmoid"}, "HATMASKRESNET18_STATE_DICT_MAPPING"),
]
WEIGHTS = "IMAGENET1K_V1"


def torchvision_resnet18_layout(seed: int = 7) -> OrderedDict:
    """A state dict in torchvision's resnet18 layout (keys and order as `torchvision.models.resnet18()`
    has them: BasicBlock registers conv1, bn1, conv2, bn2, downsample), random values."""
    g = torch.Generator().manual_seed(seed)
    sd = OrderedDict()

    def conv(name, c_out, c_in, k):
        sd[f"{name}.weight"] = torch.randn(c_out, c_in, k, k, generator=g)

    def bn(name, c):
        sd[f"{name}.weight"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.bias"] = torch.randn(c, generator=g)
        sd[f"{name}.running_mean"] = torch.randn(c, generator=g)
        sd[f"{name}.running_var"] = torch.rand(c, generator=g) + 0.5
        sd[f"{name}.num_batches_tracked"] = torch.randint(1, 10_000, (), generator=g)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    c_in = 64
    for stage, width in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            conv(f"{p}.conv1", width, c_in if block == 0 else width, 3)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            if block == 0 and stage > 1:
                conv(f"{p}.downsample.0", width, c_in, 1)
                bn(f"{p}.downsample.1", width)
        c_in = width
    sd["fc.weight"] = torch.randn(1000, 512, generator=g)
    sd["fc.bias"] = torch.randn(1000, generator=g)
    return sd


@pytest.fixture
def fake_torchvision_resnet18(clarena, monkeypatch):
    """`torchvision.models.resnet18(weights=...)` returning a module whose state_dict() is
    `torchvision_resnet18_layout()`, patched on the `torchvision.models` object CLArena's three ResNet
    modules hold (the stub's), which is also what `import torchvision` gives inside `stub_window()`.
    Returns the layout and the list of `weights` arguments of the calls."""
    import importlib

    layout = torchvision_resnet18_layout()
    calls = []

    class TorchvisionResNet18(torch.nn.Module):
        def state_dict(self, *args, **kwargs):
            return OrderedDict((k, v.clone()) for k, v in layout.items())

    def resnet18(*, weights=None, **kwargs):
        calls.append(weights)
        return TorchvisionResNet18()

    holders = {id(m): m for m in (torchvision_stub()["torchvision.models"], *(
        importlib.import_module(f"clarena.backbones.{mod}").torchvision.models
        for mod in ("resnet", "hat_mask_resnet", "amnesiac_hat_resnet")))}
    for models in holders.values():
        monkeypatch.setattr(models, "resnet18", resnet18)
    return layout, calls


def test_torchvision_layout_matches_clarena_mappings(clarena):
    """Our hand-built torchvision layout has exactly the keys CLArena's mappings translate (a missing
    key would be a KeyError in CLArena, an extra one an untested path)."""
    layout = torchvision_resnet18_layout()
    assert len(layout) == 122
    for mapping in ("RESNET18_STATE_DICT_MAPPING", "HATMASKRESNET18_STATE_DICT_MAPPING"):
        assert list(getattr(clarena.constants, mapping)) == list(layout), mapping


@pytest.mark.parametrize("case", PRETRAINED_CASES, ids=lambda c: c[0])
def test_clarena_pretrained_path_loads_the_stubbed_weights(case, clarena, fake_torchvision_resnet18):
    """The premise of the specc pretrained test: CLArena really asks for resnet18(weights=...) and
    really loads the mapped tensors (everything else is what a plain construction gives)."""
    name, extra, mapping_name = case
    layout, calls = fake_torchvision_resnet18
    cls = getattr(clarena.backbones, name)
    kwargs = {"input_channels": 3, "output_dim": 512, **extra}
    with stub_window():
        pretrained = _build(cls, {**kwargs, "pretrained_weights": WEIGHTS}, None).state_dict()
    plain = _build(cls, kwargs, None).state_dict()
    assert calls == [WEIGHTS]
    mapping = {ours: theirs for theirs, ours in getattr(clarena.constants, mapping_name).items() if ours is not None}
    assert mapping and set(mapping) <= set(pretrained)
    for key, value in pretrained.items():
        expected = layout[mapping[key]] if key in mapping else plain[key]
        assert torch.equal(value, expected), key


@pytest.mark.parametrize("case", PRETRAINED_CASES, ids=lambda c: c[0])
def test_specc_pretrained_weights_match_clarena(case, clarena, specc, fake_torchvision_resnet18):
    name, extra, _ = case
    _, calls = fake_torchvision_resnet18
    kwargs = {"input_channels": 3, "output_dim": 512, **extra, "pretrained_weights": WEIGHTS}
    candidate_cls = specc.cls(name)
    with stub_window():
        candidate = _build(candidate_cls, kwargs, None)
        reference = _build(getattr(clarena.backbones, name), kwargs, None)
    assert calls == [WEIGHTS, WEIGHTS]
    assert_same(capture(reference.state_dict()), capture(candidate.state_dict()))


# ---------------------------------------------------------------------------------------------
# AmnesiacHAT ResNets: 'train_with_backup' computed as CLArena computes it
# ---------------------------------------------------------------------------------------------

def _backup_run(cls, x: torch.Tensor):
    torch.manual_seed(SEED)
    net = cls(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="shared")
    for task_id in (1, 2):
        net.setup_task_id(task_id)
        net.initialize_task_embedding("N01")
        net.store_mask()
    net.setup_task_id(3)
    net.instantiate_backup_backbones([1, 2])
    net.train()
    feature, backups, mask, activations = net(x, "train_with_backup", s_max=400, batch_idx=2, num_batches=5)
    loss = feature.square().sum() + sum(b.square().sum() for b in backups.values()) \
        + sum(m.sum() for m in mask.values())
    loss.backward()
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    return feature, backups, activations, grads, net.state_dict()


def test_specc_amnesiac_hat_resnet_routes_backups_as_clarena(clarena, specc):
    """AmnesiacHATResNet18 in stage 'train_with_backup' with two backups: every routed layer, the
    projection shortcuts and (as CLArena does) the identity shortcuts mixed by the backup task's
    mask; outputs, running statistics and every gradient equal CLArena's."""
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    ref = _backup_run(clarena.backbones.AmnesiacHATResNet18, x)
    got = _backup_run(specc.cls("AmnesiacHATResNet18"), x)
    assert torch.equal(ref[0], got[0])
    assert list(ref[1]) == list(got[1]) and all(torch.equal(ref[1][k], got[1][k]) for k in ref[1])
    assert list(ref[2]) == list(got[2]) and all(torch.equal(ref[2][k], got[2][k]) for k in ref[2])
    assert list(ref[3]) == list(got[3])
    assert [k for k in ref[3] if not torch.equal(ref[3][k], got[3][k])] == []
    assert diff(ref[4], got[4]) == []
