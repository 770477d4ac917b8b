"""`specc export`: a standalone module for fixed arguments (torch only) that equals `specc.build`
with those arguments: same state_dict (same values under the same seed) and the same outputs, in
every stage of its scheme. A built HAT network flushes subnormal floats to zero in its own forward
(issue 22; the runtime's denormals.scoped_flush); the exported one, torch only, does not: it runs
under `specc.flush_denormals()` here, the arithmetic the built one has (README: Vendoring)."""
from __future__ import annotations

import contextlib
import importlib.util
import subprocess
import sys

import pytest
import torch

from conftest import SPECS, top_level_specs

import specc
from specc.emit.export import export_source
from specc.frontend.errors import SpecError
from specc.frontend.load import load_program

ARGS = {"input_dim": 6, "hidden_dims": [5, 4], "output_dim": 4, "input_channels": 3, "gate": "sigmoid",
        "width": 4}
# AmnesiacHAT and the vision transformers (their modules live in specc.runtime.tokens) are refused,
# tested below.
STEMS = [p.stem for p in top_level_specs() if "amnesiac" not in p.stem and not p.stem.startswith("vit_")]


def _args(program) -> dict:
    from specc.frontend.masking import class_params

    return {p.name: ARGS[p.name] for p in class_params(program) if p.default is None or p.name in ("width",)}


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _inputs(net):
    image = hasattr(net, "conv1")
    return torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(4)) if image else \
        torch.randn(3, 6, generator=torch.Generator().manual_seed(4))


@pytest.mark.parametrize("stem", STEMS)
def test_exported_module_equals_the_built_one(stem, tmp_path):
    program = load_program(SPECS / f"{stem}.cl")
    args = _args(program)
    path = tmp_path / f"exported_{stem}.py"
    path.write_text(export_source(program, args), encoding="utf-8")
    torch.manual_seed(0)
    exported = getattr(_load(path, f"exported_{stem}"), program.class_name)()
    torch.manual_seed(0)
    built = specc.build(SPECS / f"{stem}.cl", **args)
    a, b = exported.state_dict(), built.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert exported.weighted_layer_names == built.weighted_layer_names
    x = _inputs(built)
    scheme = program.mask.scheme if program.mask else None
    calls = [((), {})] if scheme is None else (
        [(("train",), dict(s_max=400, batch_idx=2, num_batches=4)), (("validation",), dict(s_max=400)),
         (("test",), dict(test_task_id=1))] if scheme == "hat" else
        [(("train",), dict(mask_percentage=0.5)), (("validation",), dict(mask_percentage=0.3))])
    for net in (exported, built):
        if scheme:
            net.setup_task_id(1)
            if scheme == "hat":
                net.initialize_task_embedding("N01") if False else None
    for args_, kwargs in calls:
        if args_ and args_[0] == "test":
            for net in (exported, built):
                net.store_mask()
                net.store_bn() if hasattr(net, "store_bn") else None
        outs = []
        for net in (exported, built):
            net.train(not args_ or args_[0] == "train")
            torch.manual_seed(1)
            flush = net is exported and getattr(built, "flush_subnormals", False)
            with specc.flush_denormals() if flush else contextlib.nullcontext():
                outs.append(net(x, *args_, **kwargs))
        assert torch.equal(outs[0][0], outs[1][0]), (stem, args_)
        for d0, d1 in zip(outs[0][1:], outs[1][1:]):
            assert list(d0) == list(d1) and all(torch.equal(d0[k], d1[k]) for k in d0 if d0[k] is not None)
    if scheme == "hat":
        m = {n: torch.rand(built.get_layer_by_name(n).weight.shape[0]) for n in built.weighted_layer_names}
        for n in built.weighted_layer_names:
            for p, q in zip(exported.get_layer_measure_parameter_wise(m, n, "max"),
                            built.get_layer_measure_parameter_wise(m, n, "max")):
                assert torch.equal(p, q), n


def test_exported_module_imports_torch_only(tmp_path):
    program = load_program(SPECS / "alexnet_hat.cl")
    path = tmp_path / "exported.py"
    path.write_text(export_source(program, {}), encoding="utf-8")
    code = ("import sys; sys.modules['specc'] = None; sys.modules['lark'] = None; "
            f"sys.path.insert(0, {str(tmp_path)!r}); import exported, torch; "
            "net = exported.HATMaskAlexNet(); net.setup_task_id(1); "
            "print(net(torch.randn(2, 3, 32, 32), 'train', s_max=400, batch_idx=1, num_batches=2)[0].shape)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "torch.Size([2, 2048])"


def test_export_needs_every_argument_and_refuses_amnesiac_hat():
    with pytest.raises(SpecError, match="export fixes every argument: give input_dim, hidden_dims, output_dim"):
        export_source(load_program(SPECS / "mlp.cl"), {})
    with pytest.raises(SpecError, match="AmnesiacHAT"):
        export_source(load_program(SPECS / "mlp_amnesiac_hat.cl"),
                      dict(input_dim=6, hidden_dims=[5], output_dim=4, gate="sigmoid"))


def test_cli_export_writes_a_torch_only_module_and_needs_every_argument(tmp_path, capsys):
    from specc.cli import main

    out = tmp_path / "mlp_hat_export.py"
    assert main(["export", str(SPECS / "mlp_hat.cl"), "-o", str(out), "-D", "input_dim=6", "-D", "hidden_dims=[5]",
                 "-D", "output_dim=3", "-D", "gate=sigmoid"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    mod = _load(out, "mlp_hat_export")
    net = mod.HATMaskMLP()
    assert net.weighted_layer_names == ["fc/0", "fc/1"] and "specc" not in out.read_text().split('"""', 2)[2]
    assert main(["export", str(SPECS / "mlp_hat.cl"), "-o", str(tmp_path / "x.py")]) == 1
    assert "export fixes every argument" in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()


def test_a_vision_transformer_is_refused_positioned():
    with pytest.raises(SpecError, match="'patch_embed' is a patch_embed, built by specc.runtime.tokens") as e:
        export_source(load_program(SPECS / "vit_ti16.cl"), {"output_dim": 192, "img_size": 32})
    assert e.value.pos.file.endswith("vit.cl") and e.value.pos.line == 42
