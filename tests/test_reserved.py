"""specc/reserved.py is data (so `specc check` imports no torch): check it still covers the names it
stands for, for the installed torch and specc's runtime classes."""
from torch import nn

from specc.frontend.reserved import ATTRIBUTES, METHODS, MODULE_NAMES, PARAMETER_NAMES
from specc.runtime import bases
from specc.runtime.schemes import amnesiac_hat, hat, wsn


def test_every_method_of_nn_module_and_the_compiled_classes_is_reserved():
    classes = (nn.Module, bases.Backbone, bases.CLBackbone, bases.HATMaskBackbone, bases.WSNMaskBackbone,
               bases.AmnesiacHATBackbone, hat.HATMasked, hat.HATBlock, wsn.WSNMasked, amnesiac_hat.AmnesiacHATMasked)
    names = {n for cls in classes for n in dir(cls) if not n.startswith("__")}
    assert names <= METHODS, sorted(names - METHODS)


def test_instance_attributes_are_reserved_for_modules():
    module = nn.Module()
    assert {n for n in vars(module) if not n.startswith("__")} <= ATTRIBUTES
    assert {"training", "weighted_layer_names", "output_dim", "task_embedding_t", "masks"} <= MODULE_NAMES
    # Constructor arguments mirrored as attributes by the seed's own classes stay allowed.
    assert not {"output_dim", "gate", "disable_unlearning", "batch_normalization"} & PARAMETER_NAMES


def _module_level_names(source: str) -> set[str]:
    import ast

    names = set()
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_every_name_a_generated_module_imports_is_reserved():
    """A class, parameter or module named like one of a generated module's imports would shadow it
    (a network named `shapes` compiled and then failed at construction): every import of every
    generated module, both bases, is in GENERATED_NAMES."""
    from conftest import top_level_specs

    from specc.emit import emit
    from specc.frontend.load import load_program
    from specc.frontend.reserved import GENERATED_NAMES, GENERATED_PREFIX

    seen = set()
    for spec in top_level_specs():
        program = load_program(spec)
        for base in ("specc", "clarena"):
            seen |= _module_level_names(emit(program, base=base))
    assert {"shapes", "Backbone", "hat", "HATMaskBackbone", "wsn", "amnesiac_hat"} <= seen  # the test sees them
    assert {"Facts", "Segment", "structure"} <= seen  # a spec with `prepare(...)` among them
    assert {n for n in seen if not n.startswith(GENERATED_PREFIX)} <= GENERATED_NAMES, sorted(seen - GENERATED_NAMES)


def test_a_network_named_like_an_import_is_refused_where_it_is_named(tmp_path):
    import pytest

    import specc
    from specc.frontend.errors import SpecError

    for name in ("shapes", "Backbone", "HATMaskBackbone", "pretrained", "structure", "forward", "Facts"):
        spec = tmp_path / f"{name}.cl"
        spec.write_text(f"network {name}(output_dim: int = 4) {{\n  input features(3)\n  fc: linear(output_dim)\n}}\n")
        with pytest.raises(SpecError, match=f"'{name}' cannot be a class name.*uses the name") as e:
            specc.build(str(spec))
        assert (e.value.pos.line, e.value.pos.column) == (1, 1)
    spec = tmp_path / "p.cl"
    spec.write_text("network Net(pretrained: int = 4) {\n  input features(3)\n  fc: linear(pretrained)\n}\n")
    with pytest.raises(SpecError, match="'pretrained' cannot be a parameter name"):
        specc.build(str(spec))
    helper = tmp_path / "h.cl"
    helper.write_text("network specc_runtime_gate(output_dim: int = 4) {\n  input features(3)\n  fc: linear(output_dim)\n}\n")
    with pytest.raises(SpecError, match="'specc_runtime_gate' cannot be a class name.*runtime helpers"):
        specc.build(str(helper))
    ok = tmp_path / "ok.cl"
    ok.write_text("network Shapes(output_dim: int = 4) {\n  input features(3)\n  fc: linear(output_dim)\n}\n")
    assert specc.build(str(ok)).weighted_layer_names == ["fc"]
