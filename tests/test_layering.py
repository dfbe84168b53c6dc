"""The layering the README states, checked on the source: data flows one way, and examples and benchmarks use
the public API only.

Read from the code's imports (AST), so a new import that breaks a rule fails here, naming file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hf_lilaw"

# Top-level part of hf_lilaw -> the parts it may import. Pure math and plain helpers at the bottom; the shared
# Trainer machinery above them; the method families and the tools beside them above that; the package face on top.
_LEAVES = {"_version", "functional", "metrics", "models"}
_BELOW_FAMILIES = {"_version", "core", "functional", "losses", "metrics", "models"}
ALLOWED_IMPORTS: dict[str, set[str]] = {
    "_version": set(),
    "functional": set(),
    "metrics": set(),
    "models": set(),
    "evaluate_modules": {"metrics"},
    "losses": {"functional"},
    "core": {"_version", "functional"},
    # the method families: each only its own, never another family or a tool
    "lilaw": _BELOW_FAMILIES,
    "mlc": _BELOW_FAMILIES,
    "elr": _BELOW_FAMILIES,
    # the tools beside the families: never a family
    "analysis": _BELOW_FAMILIES,
    "noise": {"core", "functional"},
    "data": {"core", "functional", "noise"},
    "comparison": _LEAVES,
    # helpers for command-line training scripts (the examples): data set names, noise maps and the checkpoint
    # search resuming uses, never a trainer
    "scripts": {"core", "data", "noise"},
    "__init__": {"*"},
    "_lazy": set(),
}
# Plain utilities every part may import.
UTILITIES = {"_lazy", "_version"}
# Examples and benchmarks import hf_lilaw or one of these subpackages, and only names in its __all__.
PUBLIC_SUBPACKAGES = {
    "analysis", "comparison", "core", "data", "elr", "functional", "lilaw", "losses", "metrics", "mlc", "models", "noise",
    "scripts",
}  # fmt: skip


def _part(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _module_parts(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = rel.parts
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path) -> list[tuple[int, tuple[str, ...], list[str]]]:
    """``(line, absolute module parts, imported names)`` of every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module_parts(path)
    package = here if path.name == "__init__.py" else here[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = base + tuple(node.module.split(".")) if node.module else base
            else:
                target = tuple(node.module.split("."))
            found.append((node.lineno, target, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, tuple(a.name.split(".")), []) for a in node.names)
    return found


def _declared_all(init: Path) -> set[str] | None:
    """The names in ``__all__`` (literal strings, and the keys of a dict it is built from, as in the lazy faces)."""
    assignments = {}
    for node in ast.parse(init.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    assignments[target.id] = node.value
    if "__all__" not in assignments:
        return None
    names = set()
    for node in ast.walk(assignments["__all__"]):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)
        elif isinstance(node, ast.Name) and isinstance(assignments.get(node.id), ast.Dict):
            names |= {k.value for k in assignments[node.id].keys if isinstance(k, ast.Constant)}
    return names


def _public_names(parts: tuple[str, ...]) -> set[str]:
    if parts == ("hf_lilaw",):
        import hf_lilaw

        return set(hf_lilaw.__all__)
    path = ROOT.joinpath(*parts)
    init = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    return _declared_all(init) or set()


def test_every_part_of_the_package_has_a_rule():
    parts = {_part(p) for p in PACKAGE.rglob("*.py")}
    assert parts <= set(ALLOWED_IMPORTS), (
        f"{sorted(parts - set(ALLOWED_IMPORTS))} have no layering rule: add them to ALLOWED_IMPORTS in this test."
    )


def test_imports_inside_the_package_run_down_the_layers():
    broken = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _part(path)
        allowed = ALLOWED_IMPORTS[source]
        for line, target, _ in _imports(path):
            if target[0] != "hf_lilaw" or len(target) < 2 or target[1] == source or "*" in allowed:
                continue
            if target[1] not in allowed | UTILITIES:
                broken.append(f"{path.relative_to(ROOT)}:{line} imports {'.'.join(target)} ({source} -> {target[1]})")
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


def test_every_subpackage_declares_its_public_names():
    missing = [
        str(init.relative_to(ROOT))
        for init in sorted(PACKAGE.glob("*/__init__.py"))
        if _declared_all(init) is None and init.parent.name != "model_cards"
    ]
    assert not missing, f"subpackages without __all__: {missing}"


@pytest.mark.parametrize("folder", ["examples", "benchmarks"])
def test_clients_use_the_public_api_only(folder):
    broken = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, target, names in _imports(path):
            if target[0] != "hf_lilaw":
                continue
            where = f"{path.relative_to(ROOT)}:{line}"
            if len(target) > 2 or (len(target) == 2 and target[1] not in PUBLIC_SUBPACKAGES):
                broken.append(f"{where} imports {'.'.join(target)}: import from hf_lilaw or a public subpackage")
                continue
            public = _public_names(target)
            private = [n for n in names if n not in public and not (target == ("hf_lilaw",) and n in PUBLIC_SUBPACKAGES)]
            if private:
                broken.append(f"{where} imports {private} from {'.'.join(target)}, which does not list them in __all__")
        broken += [f"{path.relative_to(ROOT)}:{line} uses {use}" for line, use in _private_attribute_uses(path)]
    assert not broken, "\n".join(broken)


def _private_attribute_uses(path: Path) -> list[tuple[int, str]]:
    """``hf_lilaw.X`` and ``hf_lilaw.sub.X`` in ``path`` (after ``import hf_lilaw``) where X is not public."""
    tree = ast.parse(path.read_text(), filename=str(path))
    imported = [a for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    # names bound to the package itself: `import hf_lilaw [as x]`, and `import hf_lilaw.sub` (binds hf_lilaw)
    aliases = {a.asname or "hf_lilaw" for a in imported if a.name == "hf_lilaw"}
    aliases |= {"hf_lilaw" for a in imported if a.name.startswith("hf_lilaw.") and a.asname is None}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases):
            continue
        name = node.attr
        if name in PUBLIC_SUBPACKAGES:
            parent = next((p for p in ast.walk(tree) if isinstance(p, ast.Attribute) and p.value is node), None)
            if parent is not None and parent.attr not in _public_names(("hf_lilaw", name)):
                found.append((node.lineno, f"hf_lilaw.{name}.{parent.attr}, which {name}'s __all__ does not list"))
        elif name not in _public_names(("hf_lilaw",)):
            found.append((node.lineno, f"hf_lilaw.{name}, which hf_lilaw's __all__ does not list"))
    return found
