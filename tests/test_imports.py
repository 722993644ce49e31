"""The dependency direction is a test: the runtime and `edgeft --help` stay free of heavy packages."""

import subprocess
import sys

HEAVY = ("torch", "transformers", "onnx", "optimum")


def _imported_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(out.split()) & set(HEAVY)


def test_runtime_imports_no_heavy_package():
    assert _imported_after("import edgeft.runtime, edgeft.runtime.preprocess, edgeft.runtime.model, edgeft.runtime.cpu") == set()


def test_cli_help_imports_no_heavy_package():
    code = "from click.testing import CliRunner\nfrom edgeft.cli import main\nr = CliRunner().invoke(main, ['--help'])\nassert r.exit_code == 0"
    assert _imported_after(code) == set()


def test_leaves_import_only_stdlib():
    assert _imported_after("import edgeft.errors, edgeft.registry") == set()


def test_bench_imports_no_heavy_package():
    """The bench needs no torch (only its PyTorch-baseline process does) and counts work with onnx lazily."""
    code = ("import edgeft.bench, edgeft.bench.driver, edgeft.bench.report, edgeft.bench.compare, edgeft.bench.targets, "
            "edgeft.bench.runner, edgeft.bench.flops, edgeft.bench.feeds")
    assert _imported_after(code) == set()
