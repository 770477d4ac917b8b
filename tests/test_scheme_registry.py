"""README "Adding a masking scheme": a scheme is its declaration, its pass and a registry line. The
modules that serve every scheme (export, the base-class module generated code imports, the runtime
package, the reserved names, the drawing) read the registry and name no scheme in their code; each
pass offers what they call on it."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from specc.runtime import bases
from specc.runtime.schemes import ExportedClass, scheme_pass
from specc.schemes import SCHEMES

SPECC = Path(__file__).resolve().parents[1] / "specc"
# emit/class_templates.py writes `--base clarena`'s HAT block classes and emit/source.py places them
# (README, "Adding a masking scheme")
GENERIC = sorted({*(SPECC / "emit").glob("*.py")} - {SPECC / "emit" / "class_templates.py", SPECC / "emit" / "source.py"}) + [
    SPECC / "runtime" / "bases.py", SPECC / "runtime" / "__init__.py", SPECC / "runtime" / "mask.py",
    SPECC / "frontend" / "reserved.py", SPECC / "drawing.py"]
_WORDS = sorted({w for s in SCHEMES.values() for w in (s.name, s.title, s.base, s.mixin, s.class_prefix, s.runtime)},
                key=len, reverse=True)
_NAMED = re.compile(r"(?<![A-Za-z])(" + "|".join(map(re.escape, _WORDS)) + r")(?![a-z])")


def _code_words(path: Path) -> list[tuple[int, str]]:
    """(line, text) of the names, attributes and string constants of `path`'s code: its docstrings,
    comments and the default of `specc.mask`'s `scheme` (a public default) left out."""
    tree = ast.parse(path.read_text())
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and n.body
                  and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    defaults = {id(d) for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) for d in n.args.defaults}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings | defaults:
            out.append((node.lineno, node.value))
        elif isinstance(node, ast.Name):
            out.append((node.lineno, node.id))
        elif isinstance(node, ast.Attribute):
            out.append((node.lineno, node.attr))
        elif isinstance(node, (ast.ImportFrom, ast.alias)):
            out.append((getattr(node, "lineno", 0), getattr(node, "module", None) or getattr(node, "name", "")))
    return out


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(SPECC)))
def test_generic_modules_name_no_scheme(path):
    named = [(line, text) for line, text in _code_words(path) if _NAMED.search(text or "")]
    assert not named, f"{path.relative_to(SPECC)} names a scheme in its code: {named}"


@pytest.mark.parametrize("scheme", SCHEMES.values(), ids=lambda s: s.name)
def test_each_pass_offers_what_the_generic_modules_call(scheme):
    runtime = scheme_pass(scheme)
    for attribute in ("install", scheme.mixin, scheme.base) + (("adopt",) if scheme.maskable is None else ()):
        assert hasattr(runtime, attribute), f"{scheme.name}'s pass has no {attribute}"
    assert bases.SCHEME_BASES[scheme.base] is getattr(runtime, scheme.base) is getattr(bases, scheme.base)
    if scheme.exportable is None:
        assert callable(getattr(runtime, "export_class", None)), f"{scheme.name} is exportable: export_class"


def test_exported_class_parts_come_from_the_pass(tmp_path):
    """export_class of a HAT and of a WSN network: the constructor builds what the base class keeps
    per layer (task embeddings; weight and bias scores), sized as the network's."""
    import specc
    from specc.emit import escape
    from specc.emit.export import _WRITER

    spec = tmp_path / "m.cl"
    spec.write_text("network M(output_dim: int = 3) {\n    input features(6)\n    fc1: linear(5) -> act: ReLU()\n"
                    "    fc2: linear(output_dim)\n}\n")
    for name, options in (("hat", {"gate": "sigmoid"}), ("wsn", {})):
        model = specc.mask(specc.build(spec), name, **options)
        part = scheme_pass(SCHEMES[name]).export_class(model, _WRITER)
        assert isinstance(part, ExportedClass)
        body = "\n".join(part.init)
        if name == "hat":
            assert 'self.task_embedding_t["fc1"] = nn.Embedding(num_embeddings=1, embedding_dim=5)' in body
            assert part.forward_head[0].startswith("    def forward(self, input, stage, s_max=None")
        else:
            assert 'self.weight_score_t["fc1"] = nn.Embedding(num_embeddings=5, embedding_dim=6)' in body
            assert f"self.weighted_layer_names = {escape.literal(['fc1', 'fc2'])}" in body


def test_scheme_of_a_backbone_is_its_most_derived_scheme():
    """Per-task networks and checkpoints learn which masks a backbone has from its scheme (by its
    base classes, the most derived first): AmnesiacHAT's backbone is HAT's too, but AmnesiacHAT's."""
    import specc
    from specc.runtime.schemes import scheme_of, unit_masked

    args = {"input_dim": 6, "hidden_dims": [5], "output_dim": 3}
    specs = Path(__file__).resolve().parents[1] / "specs"
    amnesiac = specc.build(specs / "mlp_amnesiac_hat.cl", gate="sigmoid", **args)
    hat = specc.build(specs / "mlp_hat.cl", gate="sigmoid", **args)
    wsn = specc.build(specs / "mlp_wsn.cl", **args)
    plain = specc.build(specs / "mlp.cl", **args)
    assert [getattr(scheme_of(m), "name", None) for m in (amnesiac, hat, wsn, plain)] == \
        ["amnesiac_hat", "hat", "wsn", None]
    assert [unit_masked(m) for m in (amnesiac, hat, wsn, plain)] == [True, True, False, False]
