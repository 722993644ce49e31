"""The machine facts every benchmark result carries (name them in files and tables)."""

from __future__ import annotations

import re
from pathlib import Path


def cpu_model() -> str:
    from edgeft.runtime.cpu import cpu_info

    cpu = cpu_info()  # the family/model too: one cloud name ("AMD EPYC") covers Zen 1 to Zen 4
    return f"{cpu.model} ({cpu.ident})" if cpu.ident else cpu.model


def quickstart_root(source: Path | None, tmp: str) -> Path:
    """``source`` (an earlier `edgeft quickstart -o DIR`), or a fresh quickstart run into ``tmp``."""
    if source is not None:
        return source
    import subprocess
    import sys

    root = Path(tmp) / "qs"
    subprocess.run([sys.executable, "-m", "edgeft", "quickstart", "-o", str(root), "--json"], check=True, capture_output=True)
    return root


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


RESULTS = Path(__file__).resolve().parent / "results"


def write_results(script: str, title: str, suffix: str, env: str, table: str, data: dict) -> None:
    """Print ``env`` and ``table``; keep them as results/<script>-<cpu>-<suffix>.md and .json."""
    import json

    print(env + "\n\n" + table)
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{script}-{slug(cpu_model())}-{suffix}"
    stem.with_suffix(".md").write_text(f"# {title}\n\n{env}\n\n`.venv/bin/python benchmarks/{script}.py`\n\n{table}\n")
    stem.with_suffix(".json").write_text(json.dumps({"environment": env, **data}, indent=2) + "\n")
