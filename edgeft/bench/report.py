"""Bench reports: ``results.json`` (the schema is ``edgeft.bench.schema``), ``results.csv``,
``results.md`` and PNG plots, written from the report's JSON."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from edgeft.runtime.golden import GoldenCheck

CSV_COLUMNS = ["bundle", "kind", "threads", "batch", "seq", "tokens", "provider", "runs", "min_ms", "mean_ms", "std_ms",
               "p50_ms", "p90_ms", "p99_ms", "throughput_per_s", "ratio", "load_s", "first_run_ms", "peak_rss_mb",
               "size_mb", "gflop", "gflops_per_s"]


def _sizes(report: dict[str, Any]) -> dict[str, float | None]:
    return {b["name"]: b["size_bytes"] / 1e6 if "size_bytes" in b else None for b in report["bundles"]}


def flat_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat dict per result: the CSV's and the tables' rows."""
    sizes = _sizes(report)
    rows = []
    for r in report["results"]:
        lat = r["latency_ms"]
        rows.append({**{k: r.get(k) for k in ("bundle", "kind", "threads", "batch", "seq", "tokens", "provider",
                                               "throughput_per_s", "ratio", "load_s", "first_run_ms", "peak_rss_mb",
                                               "gflop", "gflops_per_s")},
                     "runs": lat["runs"], **{f"{k}_ms": lat[k] for k in ("min", "mean", "std", "p50", "p90", "p99")},
                     "size_mb": sizes.get(r["bundle"])})
    return rows


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


TABLE_COLUMNS = [("bundle", "bundle"), ("threads", "thr"), ("batch", "batch"), ("seq", "seq"), ("p50_ms", "p50 ms"),
                 ("p90_ms", "p90 ms"), ("std_ms", "std ms"), ("throughput_per_s", "items/s"), ("ratio", "ratio"),
                 ("gflops_per_s", "GFLOP/s"), ("peak_rss_mb", "RSS MB"), ("size_mb", "size MB")]


def table_cells(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of the summary table."""
    rows = []
    for r in flat_rows(report):
        digits = {"ratio": 2, "throughput_per_s": 1, "gflops_per_s": 0, "peak_rss_mb": 0, "size_mb": 1}
        rows.append([_fmt(r[key], digits.get(key, 2)) for key, _ in TABLE_COLUMNS])
    return [title for _, title in TABLE_COLUMNS], rows


def golden_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for g in report["golden"]:
        check = GoldenCheck.from_report(g)
        lines.append(f"golden {g['bundle']}: {'agrees' if check.ok else 'DISAGREES'} with the exported model's "
                     f"outputs: {check.sentence()}")
    return lines


def describe(report: dict[str, Any]) -> str:
    fp = report["fingerprint"]
    features = ",".join(fp.get("cpu_features") or []) or "no listed ISA extensions"
    emulated = (f" — EMULATED ({fp.get('emulated_cpu') or 'QEMU default core'}): timings are not comparable with native ones"
                if report["emulated"] else "")
    cpu = f"{fp.get('cpu')} [{fp['cpu_id']}]" if fp.get("cpu_id") else fp.get("cpu")
    return (f"{report['target']} ({fp.get('arch')}, {cpu}, {features}; {fp.get('logical_cores')} logical cores; "
            f"{fp.get('runtime')} {fp.get('runtime_version')}, Python {fp.get('python')}){emulated}")


def markdown(report: dict[str, Any]) -> str:
    header, rows = table_cells(report)
    lines = [f"# edgeft bench: {describe(report)}", "",
             f"Ratios are p50 latency to `{report['reference']}` at the same point. Settings: {report['settings']}.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", *[f"- {line}" for line in golden_lines(report)]]
    if report.get("error"):
        lines += ["", f"**Stopped early:** {report['error']}"]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(report: dict[str, Any], folder: Path, plots: bool = True) -> list[Path]:
    """Write the report files into ``folder`` (created); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    _atomic_write(folder / "results.json", json.dumps(report, indent=2) + "\n")
    tmp = folder / "results.csv.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(flat_rows(report))
    os.replace(tmp, folder / "results.csv")
    _atomic_write(folder / "results.md", markdown(report))
    written = [folder / "results.json", folder / "results.csv", folder / "results.md"]
    if plots and report["results"]:
        from edgeft.bench.plots import write_plots

        written += write_plots(report, folder)
    return written
