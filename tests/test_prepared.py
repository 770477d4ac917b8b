"""`prepare(...)`: a spec's structures whose masking pass `specc compile` runs at compile time, its
output (masked forward and analysis facts) written into the generated file and used on import.

The reference is the runtime itself: the same class built with the prepared entries hidden traces,
analyses and rewrites its plain forward; the prepared build must give the same facts, the same
forward source and bit-identical outputs and gradients, while skipping all of that."""
from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path

import pytest
import torch

from conftest import GENERATED, SPECS

import specc
from specc.cli import main as cli_main
from specc.emit import emit
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program
from specc.frontend.probe import probe
from specc.runtime import codegen, structure


def _traced(monkeypatch, cls, **kwargs):
    """`cls(**kwargs)` as the runtime makes it with no prepared entry and nothing cached."""
    with monkeypatch.context() as m:
        m.setattr(structure, "_prepared", {})
        m.setattr(structure, "_memo", type(structure._memo)())
        net = cls(**kwargs)
    assert net._specc_forward.__code__.co_filename.startswith("<specc ")
    return net


def _uses_prepared(net, module) -> bool:
    return net._specc_forward.__code__.co_filename == module.__file__


def _same_network(a, b, x, stages) -> None:
    """Equal facts, forward source, state_dict layout; bit-identical outputs and gradients."""
    assert a._specc_facts == b._specc_facts
    assert codegen.forward_source(a) == codegen.forward_source(b)
    assert list(a.state_dict()) == list(b.state_dict())
    b.load_state_dict(a.state_dict())
    for net in (a, b):
        net.setup_task_id(0)
    for stage, kwargs in stages:
        if stage == "test":  # HAT tests with the masks stored after training
            for net in (a, b):
                net.store_mask()
        outs = [net(x, stage, **kwargs) for net in (a, b)]
        assert torch.equal(outs[0][0], outs[1][0]), stage
        if stage == "train":
            grads = []
            for net, out in zip((a, b), outs):
                net.zero_grad()
                out[0].square().sum().backward()
                grads.append([p.grad for p in net.parameters() if p.grad is not None])
            assert grads[0] and all(torch.equal(g, h) for g, h in zip(*grads))


HAT_STAGES = [("train", dict(s_max=400.0, batch_idx=1, num_batches=3)), ("validation", dict(s_max=400.0)),
              ("test", dict(test_task_id=0))]


@pytest.mark.parametrize("stem, cls_name, kwargs", [
    ("resnet18_hat", "HATMaskResNet18", dict(input_channels=3, output_dim=512, gate="sigmoid")),
    ("resnet152_hat", "HATMaskResNet152", dict(input_channels=3, output_dim=2048, gate="sigmoid")),
])
def test_shipped_prepared_structures_are_used_and_equal_the_traced_ones(monkeypatch, stem, cls_name, kwargs):
    module = importlib.import_module(f"generated.{stem}")
    cls = getattr(module, cls_name)
    torch.manual_seed(0)
    prepared = cls(**kwargs)
    assert _uses_prepared(prepared, module)
    traced = _traced(monkeypatch, cls, **kwargs)
    x = torch.randn(2, 3, 32, 32)
    _same_network(prepared, traced, x, HAT_STAGES if stem == "resnet18_hat" else HAT_STAGES[:1])
    # The forward shown is the file's own function, and the file's lines are what tracebacks show.
    assert prepared.print_readable(print_output=False).startswith("def forward(self, input, mask, ")


def test_other_structures_and_other_arguments(monkeypatch):
    """Arguments outside the key (the gate) share the entry; another structure (one input channel,
    batch norm) traces, as does everything when the entry is hidden."""
    import generated.resnet18_hat as module

    assert _uses_prepared(module.HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid"), module)
    for kwargs in (dict(input_channels=1, output_dim=512, gate="sigmoid"),
                   dict(input_channels=3, output_dim=512, gate="sigmoid", batch_normalization="independent"),
                   dict(input_channels=3, output_dim=64, gate="sigmoid")):
        net = module.HATMaskResNet18(**kwargs)
        assert not _uses_prepared(net, module), kwargs
    net = module.HATMaskResNet18(input_channels=1, output_dim=512, gate="sigmoid")
    _same_network(net, _traced(monkeypatch, module.HATMaskResNet18, input_channels=1, output_dim=512, gate="sigmoid"),
                  torch.randn(2, 1, 32, 32), HAT_STAGES)


def test_a_traceback_through_a_prepared_forward_shows_the_generated_files_line():
    import generated.resnet18_hat as module

    net = module.HATMaskResNet18(input_channels=3, output_dim=512, gate="sigmoid")
    net.setup_task_id(0)
    try:
        net(torch.randn(2, 4, 32, 32), "train", s_max=400.0, batch_idx=1, num_batches=3)  # 4 channels, not 3
    except RuntimeError:
        text = traceback.format_exc()
    else:
        pytest.fail("a wrong number of channels must fail")
    assert f'File "{module.__file__}"' in text
    assert "conv1 = self.conv1(input_1);  input_1 = None" in text


def test_another_runtime_version_ignores_what_was_prepared(monkeypatch):
    import generated.resnet18_hat as module

    key, (facts, forward, _) = next((k, v) for k, v in structure._prepared.items() if k[0] is module.HATMaskResNet18)
    with monkeypatch.context() as m:
        m.setattr(structure, "_prepared", {})
        structure.prepare("0.1.0", key, facts, forward)
        assert structure._prepared == {}
        structure.prepare(specc.__version__, key, facts, forward)
        assert structure.recall(key)[1] is forward


def _compile_and_import(tmp_path: Path, name: str, text: str):
    spec = tmp_path / f"{name}.cl"
    spec.write_text(text)
    out = tmp_path / f"{name}.py"
    assert cli_main(["compile", str(spec), "-o", str(out)]) == 0
    loader = importlib.util.spec_from_file_location(f"prepared_{name}", out)
    module = importlib.util.module_from_spec(loader)
    sys.modules[loader.name] = module
    loader.loader.exec_module(module)
    return module, out.read_text()


def test_wsn_and_amnesiac_hat_prepared_structures(tmp_path, monkeypatch):
    """WSN's forward calls runtime helpers (imported by the section); AmnesiacHAT keys a list
    argument. Both equal the traced build; another list length traces."""
    wsn, text = _compile_and_import(tmp_path, "wsn18", f'include "{SPECS}/resnet18.cl"\nbackbone WSNMaskResNet18 = '
                                    'ResNet18\nmask wsn()\nprepare(input_channels=3, output_dim=512)\n')
    assert "from specc.runtime.schemes.wsn import wsn_conv2d as specc_runtime_schemes_wsn_wsn_conv2d" in text
    net = wsn.WSNMaskResNet18(input_channels=3, output_dim=512)
    assert _uses_prepared(net, wsn)
    _same_network(net, _traced(monkeypatch, wsn.WSNMaskResNet18, input_channels=3, output_dim=512),
                  torch.randn(2, 3, 16, 16), [("train", dict(mask_percentage=0.5)), ("validation", dict(mask_percentage=0.5))])

    amnesiac, text = _compile_and_import(
        tmp_path, "amlp", f'include "{SPECS}/mlp.cl"\nbackbone AmnesiacHATMLP = MLP\nmask amnesiac_hat()\n'
                          'prepare(input_dim=6, hidden_dims=[5, 4], output_dim=4, gate="sigmoid")\n'
                          'prepare(input_dim=6, hidden_dims=[5], output_dim=4, gate="sigmoid")\n')
    assert text.count("structure.prepare(") == 2
    for dims in ([5, 4], [5]):
        net = amnesiac.AmnesiacHATMLP(input_dim=6, hidden_dims=dims, output_dim=4, gate="sigmoid")
        assert _uses_prepared(net, amnesiac)
        _same_network(net, _traced(monkeypatch, amnesiac.AmnesiacHATMLP, input_dim=6, hidden_dims=dims, output_dim=4,
                                   gate="sigmoid"), torch.randn(3, 6), HAT_STAGES)
    assert not _uses_prepared(amnesiac.AmnesiacHATMLP(input_dim=6, hidden_dims=[5, 4, 3], output_dim=4, gate="sigmoid"),
                              amnesiac)


def test_a_prepared_file_is_deterministic_and_imports_no_front_end(tmp_path):
    import subprocess

    spec = SPECS / "resnet18_hat.cl"
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    assert cli_main(["compile", str(spec), "-o", str(a)]) == 0
    assert cli_main(["compile", str(spec), "-o", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes() == (GENERATED / "resnet18_hat.py").read_bytes()
    code = ("import sys; sys.path.insert(0, '.'); import generated.resnet18_hat as g; "
            "g.HATMaskResNet18(input_channels=3, output_dim=512, gate='sigmoid'); "
            "print(sorted(m for m in sys.modules if m == 'lark' or m.startswith(('lark.', 'specc.frontend', "
            "'specc.emit', 'specc.cli'))))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=GENERATED.parent)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


@pytest.mark.parametrize("line, message, at", [  # `at`: where the error points (the value given)
    ('prepare(input_channels=3, output_dim=4, gate="sigmoid", depth=3)', "has no parameter 'depth'", "3)"),
    ('prepare(input_channels=3, output_dim=4)', r"no value for gate \(no default\)", "prepare"),
    ('prepare(input_channels="3", output_dim=4, gate="sigmoid")', "input_channels", '"3"'),
    ('prepare(input_channels=3, input_channels=5, output_dim=4, gate="sigmoid")', "given twice", "5"),
    ('prepare(3, output_dim=4, gate="sigmoid")', "prepare names its arguments", "3"),
    ('prepare(input_channels=3, output_dim=4, gate="relu")', "gate must be", '"relu"'),
    ('prepare(input_channels=x, output_dim=4, gate="sigmoid")', "x", "x"),
])
def test_bad_prepare_is_a_positioned_error_and_writes_nothing(tmp_path, line, message, at):
    spec = tmp_path / "bad.cl"
    spec.write_text(f'include "{SPECS}/resnet18.cl"\nbackbone HATMaskResNet18 = ResNet18\nmask hat()\n{line}\n')
    with pytest.raises(SpecError, match=message) as e:
        probe(load_program(str(spec)))
    assert (e.value.pos.file, e.value.pos.line, e.value.pos.column) == (str(spec), 4, line.index(at) + 1)
    out = tmp_path / "bad.py"
    assert cli_main(["compile", str(spec), "-o", str(out)]) == 1
    assert not out.exists()


def test_prepare_needs_a_mask_and_distinct_structures(tmp_path):
    plain = tmp_path / "plain.cl"
    plain.write_text(f'include "{SPECS}/resnet18.cl"\nbackbone R = ResNet18\nprepare(input_channels=3, output_dim=4)\n')
    with pytest.raises(SpecError, match="prepare is for masked backbones") as e:
        probe(load_program(str(plain)))
    assert e.value.pos.line == 3
    twice = tmp_path / "twice.cl"
    twice.write_text(f'include "{SPECS}/resnet18.cl"\nbackbone HATMaskResNet18 = ResNet18\nmask hat()\n'
                     'prepare(input_channels=3, output_dim=4, gate="sigmoid")\n'
                     'prepare(output_dim=4, input_channels=3, gate="sigmoid")\n')
    with pytest.raises(SpecError, match="same structure as the prepare at line 4") as e:
        emit(load_program(str(twice)))
    assert e.value.pos.line == 5
    # An impossible structure is the elaborator's error, as with -D, whichever prepare names it
    # (the first one's values also stand in for check's probe values).
    for first in ('prepare(input_dim=4, hidden_dims=[0], output_dim=2, gate="sigmoid")\n', ""):
        tiny = tmp_path / "tiny.cl"
        tiny.write_text(f'include "{SPECS}/mlp.cl"\nbackbone HATMaskMLP = MLP\nmask hat()\n' + (first or (
            'prepare(input_dim=4, hidden_dims=[3], output_dim=2, gate="sigmoid")\n'
            'prepare(input_dim=4, hidden_dims=[3, 0], output_dim=2, gate="sigmoid")\n')))
        with pytest.raises(SpecError, match="linear needs out_features > 0"):
            probe(load_program(str(tiny)))


def test_prepare_is_still_a_name_elsewhere_and_check_stays_torch_free(tmp_path):
    import subprocess

    spec = tmp_path / "named.cl"
    spec.write_text("network Net(prepare: int = 4, output_dim: int = 2) {\n  input features(3)\n"
                    "  hidden: linear(prepare) -> fc: linear(output_dim)\n}\n")
    assert specc.build(str(spec)).hidden.out_features == 4
    spec.write_text("network Net(output_dim: int = 2) {\n  input features(3)\n"
                    "  prepare: linear(4) -> fc: linear(output_dim)\n}\n")
    assert specc.build(str(spec)).weighted_layer_names == ["prepare", "fc"]
    code = ("import sys; from specc.cli import main; rc = main(['check', 'specs/resnet152_hat.cl']); "
            "print('torch' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=SPECS.parent)
    assert done.returncode == 0 and done.stdout.strip().endswith("False"), done.stdout + done.stderr


def test_base_clarena_leaves_the_prepared_section_out():
    text = emit(load_program(str(SPECS / "resnet18_hat.cl")), base="clarena")
    assert "structure.prepare(" not in text and "def forward(self, input, mask" not in text


def test_prepare_count_and_sizes_are_bounded_before_anything_is_built(tmp_path, capsys):
    """Each prepare is built and traced at compile time: their number is a limit, and a prepared
    structure too large to build is the elaborator's positioned error, before torch is touched."""
    from specc.core.limits import PREPARES

    lines = "".join(f'prepare(input_dim={i + 1}, hidden_dims=[3], output_dim=2, gate="sigmoid")\n'
                    for i in range(PREPARES + 1))
    many = tmp_path / "many.cl"
    many.write_text(f'include "{SPECS}/mlp.cl"\nbackbone HATMaskMLP = MLP\nmask hat()\n{lines}')
    assert cli_main(["compile", str(many), "-o", str(tmp_path / "many.py")]) == 1
    err = capsys.readouterr().err
    assert f"many.cl:{4 + PREPARES}:1: error: more than {PREPARES} prepare declarations" in err
    huge = tmp_path / "huge.cl"
    huge.write_text(f'include "{SPECS}/mlp.cl"\nbackbone HATMaskMLP = MLP\nmask hat()\n'
                    'prepare(input_dim=3, hidden_dims=[100000, 100000, 100000], output_dim=2, gate="sigmoid")\n')
    assert cli_main(["compile", str(huge), "-o", str(tmp_path / "huge.py")]) == 1
    assert "parameters" in capsys.readouterr().err
    assert not (tmp_path / "many.py").exists() and not (tmp_path / "huge.py").exists()


def test_prepare_refuses_to_load_pretrained_weights(tmp_path):
    spec = tmp_path / "pre.cl"
    spec.write_text(f'include "{SPECS}/resnet18.cl"\nbackbone HATMaskResNet18 = ResNet18\nmask hat()\n'
                    'prepare(input_channels=3, output_dim=4, gate="sigmoid", pretrained_weights="IMAGENET1K_V1")\n')
    with pytest.raises(SpecError, match="'pretrained_weights' must be left out") as e:
        probe(load_program(str(spec)))
    line = spec.read_text().splitlines()[3]
    assert (e.value.pos.line, e.value.pos.column) == (4, line.index('"IMAGENET1K_V1"') + 1)
