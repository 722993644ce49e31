"""``edgeft bench compare A.json B.json``: B's latencies over A's, point by point, with a warning
for every fingerprint difference that makes the ratio a comparison of machines, not models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeft.bench.schema import SCHEMA
from edgeft.errors import UsageError

# what a latency depends on besides the model; a difference is named in the warnings
FINGERPRINT_KEYS = ("arch", "cpu", "cpu_id", "cpu_features", "logical_cores", "runtime", "runtime_version", "os")


def load_report(path: str | Path) -> dict[str, Any]:
    try:
        report = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    if not isinstance(report, dict) or report.get("schema") != SCHEMA:
        raise UsageError(f"{path} is not an edgeft bench results.json ({SCHEMA})")
    return report


def fingerprint_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """One line per fingerprint field (and target) that differs between two reports."""
    fa, fb = a.get("fingerprint", {}), b.get("fingerprint", {})
    lines = [f"{key}: {fa.get(key)!r} vs {fb.get(key)!r}" for key in FINGERPRINT_KEYS if fa.get(key) != fb.get(key)]
    if a.get("provider") != b.get("provider"):
        lines.append(f"provider: {a.get('provider')!r} vs {b.get('provider')!r}")
    return lines


def _bundle_ids(report: dict[str, Any]) -> dict[str, str]:
    return {b["name"]: b.get("sha256") or b["name"] for b in report["bundles"]}


def compare_reports(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows matched by model file (sha256; the name for the torch baseline), threads, batch and
    sequence, with B's p50 over A's; and the warnings. Emulated and native timings are refused."""
    if bool(a.get("emulated")) != bool(b.get("emulated")):
        raise UsageError("one report is from an emulated target: emulated timings are never compared with native ones")
    ids_a, ids_b = _bundle_ids(a), _bundle_ids(b)
    index = {(ids_a[r["bundle"]], r["threads"], r["batch"], r["seq"]): r for r in a["results"]}
    rows = []
    for r in b["results"]:
        other = index.get((ids_b[r["bundle"]], r["threads"], r["batch"], r["seq"]))
        if other is None:
            continue
        rows.append({"bundle": r["bundle"], "threads": r["threads"], "batch": r["batch"], "seq": r["seq"],
                     "a_p50_ms": other["latency_ms"]["p50"], "b_p50_ms": r["latency_ms"]["p50"],
                     "ratio": r["latency_ms"]["p50"] / other["latency_ms"]["p50"]})
    warnings = [f"the fingerprints differ, so the ratios compare machines as much as models: {line}"
                for line in fingerprint_differences(a, b)]
    if not rows:
        warnings.append("no result matches between the two reports (same model file, threads, batch and sequence)")
    return rows, warnings
