"""Generated code you can read and step through (issue 11): the plain forward is real source in the
generated file; the masked forward is compiled from a rewritten graph into source registered with
linecache, so tracebacks, inspect and pdb show its lines, each naming the spec line it comes from;
equal builds give equal code; a generated module refuses a runtime older than its compiler."""
from __future__ import annotations

import inspect
import io
import pdb
import sys
import traceback

import pytest
import torch

from conftest import GENERATED, SPECS

import specc
from specc.builder import runtime_class
from specc.frontend.load import load_program


def _hat_mlp(**kw):
    from generated.mlp_hat import HATMaskMLP

    net = HATMaskMLP(input_dim=6, hidden_dims=[5], output_dim=4, gate="sigmoid", **kw)
    net.setup_task_id(1)
    return net


def test_plain_forward_is_the_generated_files_own_source():
    from generated.resnet18 import ResNet18, Small

    src = inspect.getsource(ResNet18.forward)
    assert 'for block in getattr(self, f"conv{i + 2}x"):' in src and "# lib/resnet.cl:18" in src
    assert inspect.getsourcefile(Small.forward) == str(GENERATED / "resnet18.py")


def test_masked_forward_source_is_visible_to_inspect_and_names_spec_lines():
    net = _hat_mlp(batch_normalization="shared")
    src = inspect.getsource(net._specc_forward)
    assert src == net.print_readable(print_output=False)
    assert "mask['fc/0']" in src
    assert "# File: mlp.cl:14 in forward, code: x = self.fc[i](x)" in src


def test_a_traceback_through_the_masked_forward_shows_its_line():
    net = _hat_mlp()
    try:
        net(torch.randn(3, 7), "train", s_max=400, batch_idx=1, num_batches=3)  # 7 inputs, not 6
    except RuntimeError:
        text = traceback.format_exc()
    else:
        pytest.fail("a wrong input size must fail")
    assert "<specc HATMaskMLP.forward" in text
    assert 'fc_0 = getattr(self.fc, "0")(flatten)' in text  # the failing line of the rewritten forward


def test_pdb_steps_into_the_masked_forward_and_lists_it():
    net = _hat_mlp()
    x = torch.randn(2, 6)
    out = io.StringIO()
    commands = io.StringIO("\n".join(["step"] * 8 + ["list", "continue"]) + "\n")
    debugger = pdb.Pdb(stdin=commands, stdout=out, nosigint=True)
    debugger.use_rawinput = False
    debugger.runcall(net._specc_forward, net, x, net.get_mask("validation", s_max=400), None,
                     "validation", 400, None, None, None)
    text = out.getvalue()
    assert "<specc HATMaskMLP.forward" in text
    assert "torch.flatten(input_1, 1)" in text  # `list` shows the rewritten forward's own lines


def test_equal_builds_give_equal_code_and_one_compiled_function():
    a, b = _hat_mlp(), _hat_mlp()
    assert a._specc_forward is b._specc_forward
    rt = runtime_class(load_program(SPECS / "mlp_hat.cl"))(input_dim=6, hidden_dims=[5], output_dim=4, gate="sigmoid")
    assert rt.print_readable(print_output=False) == a.print_readable(print_output=False)


def test_compiled_code_cache_is_bounded(monkeypatch):
    from collections import OrderedDict

    from generated.mlp_hat import HATMaskMLP
    from specc.runtime import codegen, structure

    monkeypatch.setattr(codegen, "CACHE_SIZE", 3)
    monkeypatch.setattr(structure, "SIZE", 3)
    monkeypatch.setattr(codegen, "_cache", OrderedDict())
    monkeypatch.setattr(structure, "_memo", OrderedDict())
    for depth in range(1, 8):  # each depth is another structure and another code text
        HATMaskMLP(input_dim=6, hidden_dims=[5] * depth, output_dim=4, gate="sigmoid")
    assert len(codegen._cache) == 3 and len(structure._memo) == 3
    # widths change the structure, not the code: one function serves them all
    HATMaskMLP(input_dim=6, hidden_dims=[9] * 7, output_dim=4, gate="sigmoid")
    assert len(codegen._cache) == 3 and len(structure._memo) == 3


def test_generated_module_refuses_an_older_runtime(monkeypatch):
    import generated.mlp as mod

    source = (GENERATED / "mlp.py").read_text(encoding="utf-8")
    monkeypatch.setattr(specc, "__version__", "0.1.9")
    with pytest.raises(ImportError, match=r"needs specc >= .* upgrade specc"):
        exec(compile(source, "mlp.py", "exec"), {"__name__": "x"})
    assert mod.MLP  # the imported module itself is untouched


def test_specc_import_is_light():
    """`import specc` loads neither torch nor lark (the CLI's `check` relies on it)."""
    import subprocess

    code = "import sys, specc; print(sorted(m for m in ('torch', 'lark') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
