"""The layering of docs/architecture.md, read from the source: which edgeft package may import
which, and which third-party packages the shipped layers may never import (not even lazily)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

LEAVES = {"errors", "limits", "registry", "manifest", "outputs", "output_lock", "__version__"}
MAY_IMPORT = {
    "errors": set(),
    "limits": set(),
    "registry": {"errors"},
    "manifest": {"errors", "limits"},
    "output_lock": {"errors"},
    "outputs": {"errors", "output_lock"},
    "runtime": {"errors", "limits", "manifest", "outputs"},
    "data": LEAVES | {"runtime"},
    "backbones": LEAVES | {"runtime"},
    "finetune": LEAVES | {"runtime", "data", "backbones"},
    "bench": LEAVES | {"runtime", "data"},
    "export": LEAVES | {"runtime", "data", "backbones", "finetune", "bench"},
    "doctor": LEAVES | {"runtime", "export"},
    "quickstart": LEAVES | {"runtime", "data", "finetune", "export", "bench"},
}
EXCEPTIONS = {"bench/torch_runner.py": {"backbones", "finetune"}}  # the optional PyTorch baseline
HEAVY = {"torch", "transformers", "onnx", "optimum", "onnxscript", "click"}  # click: import time
NEVER_HEAVY = ("runtime/", "bench/runner.py", "bench/feeds.py", "bench/targets.py", "manifest.py", "errors.py",
               "limits.py", "outputs.py", "output_lock.py", "registry.py")


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports count), written in any form:
    ``import x``, ``from x import y``, relative (``from ..export import y``), and
    ``importlib.import_module("x")`` or ``__import__("x")`` with a literal name."""
    found = set()
    package = ["edgeft", *path.relative_to(REPO / "edgeft").parent.parts]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found |= {f"edgeft.{a.name}" for a in node.names} if module == "edgeft" else {module}
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) and (
                isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
                or isinstance(node.func, ast.Name) and node.func.id in ("__import__", "import_module")):
            found.add(str(node.args[0].value))
    return found


def test_every_form_of_import_is_read(tmp_path):
    probe = REPO / "edgeft" / "runtime" / "_layer_probe.py"
    assert not probe.exists()
    source = ("import importlib\nfrom . import cpu\nfrom ..export import verify\nfrom .. import errors\n"
              "def f():\n    importlib.import_module('torch.nn')\n    __import__('onnx')\n")
    probe.write_text(source)
    try:
        assert imports(probe) == {"importlib", "edgeft.runtime", "edgeft.export", "edgeft.errors", "torch.nn", "onnx"}
    finally:
        probe.unlink()


def sources() -> list[tuple[str, Path]]:
    root = REPO / "edgeft"
    return [(str(path.relative_to(root)), path) for path in sorted(root.rglob("*.py"))]


def test_each_package_imports_only_the_layers_below_it():
    wrong = []
    for name, path in sources():
        package = name.split("/")[0].removesuffix(".py")
        if package in ("cli", "__main__", "__init__"):
            continue
        allowed = MAY_IMPORT[package] | EXCEPTIONS.get(name, set()) | {package}
        used = {m.split(".")[1] for m in imports(path) if m.startswith("edgeft.")}
        wrong += [f"{name} imports edgeft.{m}" for m in sorted(used - allowed)]
    assert not wrong, "\n".join(wrong)


def test_every_package_has_a_rule():
    packages = {name.split("/")[0].removesuffix(".py") for name, _ in sources()} - {"cli", "__main__", "__init__"}
    assert packages <= set(MAY_IMPORT), packages - set(MAY_IMPORT)


def test_what_ships_never_imports_torch_onnx_or_transformers():
    wrong = []
    for name, path in sources():
        if name.startswith(NEVER_HEAVY):
            wrong += [f"{name} imports {m}" for m in sorted(imports(path)) if m.split(".")[0] in HEAVY]
    assert not wrong, "\n".join(wrong)
