"""The package's layers (stated in ``ecgbook/__init__.py``) are the true import order.

Every import of a package module inside the package (at the top of a module or inside a function)
must go to the same or a lower layer, and every module imports on its own in a fresh interpreter.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import ecgbook

ROOT = Path(ecgbook.__file__).parent

# Lowest first; a module may import its own layer and the ones before it.
LAYERS = [
    ("files and config", {"config", "files", "device", "results", "health"}),
    ("signal", {"signal"}),
    ("data", {"data"}),
    ("models", {"models"}),
    ("train", {"batches", "train", "distributed", "augment", "checkpoints"}),
    ("evaluation", {"metrics", "evaluation", "protocol"}),
    ("plot", {"plot"}),
    ("methods shared by techniques", {"ssl", "comparison"}),
    ("techniques", {"transfer", "multimodal_ssl", "mrmnet", "lead_agnostic_ssl"}),
    ("techniques side by side", {"side_by_side"}),
    ("book", {"profiles", "pages", "claims", "edition", "exercises", "book", "__main__"}),
]
# Imports that go up, each with its reason; nothing else may.
ALLOWED_UP = {
    ("lead_agnostic_ssl", "profiles"): "its command line resolves a profile's parameters (python -m ecgbook.lead_agnostic_ssl)",
}


def _layer(name: str) -> int:
    top = name.split(".")[0]
    for i, (_, members) in enumerate(LAYERS):
        if top in members:
            return i
    raise AssertionError(f"ecgbook.{name}: in no layer of tests/test_layers.py; add it to the one it belongs to")


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [f"{target}.{a.name}".strip(".") for a in node.names] if not node.module else [target]
            elif (node.module or "").startswith("ecgbook"):
                target = node.module[len("ecgbook"):].lstrip(".")
                targets = [f"{target}.{a.name}".strip(".") for a in node.names] if not target else [target]
            else:
                continue
            found.update(t for t in targets if t)
        elif isinstance(node, ast.Import):
            found.update(a.name[len("ecgbook."):] for a in node.names if a.name.startswith("ecgbook."))
    return found


def test_every_import_goes_to_the_same_or_a_lower_layer():
    wrong = []
    for name, path in _modules().items():
        for target in _imports(name, path):
            key = (name.split(".")[0], target.split(".")[0])
            if _layer(target) > _layer(name) and key not in ALLOWED_UP:
                wrong.append(f"ecgbook.{name} ({LAYERS[_layer(name)][0]}) imports ecgbook.{target} "
                             f"({LAYERS[_layer(target)][0]})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_allowed_exceptions_are_still_needed():
    pairs = {(n.split(".")[0], t.split(".")[0]) for n, p in _modules().items() for t in _imports(n, p)}
    assert set(ALLOWED_UP) <= pairs, f"no longer imported, remove from ALLOWED_UP: {set(ALLOWED_UP) - pairs}"


def test_the_layer_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "signal.py"
    bad.write_text("def f():\n    from .train import fit\n    return fit\n")
    assert _imports("signal", bad) == {"train"} and _layer("train") > _layer("signal")


def test_every_module_imports_in_layer_order_in_a_fresh_interpreter():
    """Lowest layer first: a module that needed a higher one imported before it would fail here
    (command-line entry points, ``__main__``, left out: importing one runs it)."""
    names = sorted((n for n in _modules() if not n.endswith("__main__")), key=_layer)
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module('ecgbook.' + n)\n"
    subprocess.run([sys.executable, "-c", code, *names], check=True, cwd=ROOT.parent, timeout=300)


def test_the_package_docstring_states_these_layers():
    doc = ecgbook.__doc__
    positions = [doc.find(f"``{label}``") for label, _ in LAYERS]
    assert all(p >= 0 for p in positions), [label for (label, _), p in zip(LAYERS, positions) if p < 0]
    assert positions == sorted(positions)


MAX_LINES = 900


def test_every_module_fits_what_a_reader_can_hold():
    """No module over 900 lines, docstrings included (issue 19): a bigger one becomes a package."""
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"
