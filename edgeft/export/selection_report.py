"""The report of ``--quantize auto`` beside the bundle: ``doctor.json``, ``doctor.md`` and ``doctor.png``
(accuracy or agreement against latency, the chosen point marked)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeft.export.candidate import Selection


def report_dict(result: Selection) -> dict[str, Any]:
    return {"schema": "edgeft.doctor/1", "seconds": round(result.seconds, 1), "budget": result.judge.budget(),
            "preflight": result.preflight.to_dict() if result.preflight else None, "candidates": [c.to_dict() for c in result.candidates],
            "chosen": result.chosen.name, "repair": result.repair, "numerics": result.judge.numerics,
            "warnings": result.cautions}


def markdown(result: Selection) -> str:
    labelled = result.judge.labels is not None
    lines = [f"# Quantization doctor: chose **{result.chosen.name}**", "",
             f"Budget: {result.judge.budget()}. Accuracy judged with {result.judge.numerics} numerics "
             "(host: this machine's kernels; simulated: exact int8, reproduced here with the int8 weights re-encoded as uint8). Latency: batch 1 on "
             f"held-out samples, p50, this machine. Took {result.seconds:.0f} s.", ""]
    if result.cautions:
        lines += ["## Warnings", "", *[f"- {line}" for line in result.cautions], ""]
    lines += ["## Preflight", ""]
    pre = result.preflight
    lines += [f"- {f}" for f in pre.findings] if pre else ["- none: the requested recipe and its fallbacks"]
    skipped = [v for v in pre.verdicts if v.status == "skip"] if pre else []
    lines += [f"- not built: {v.recipe.name}: {v.why}" for v in skipped]
    lines += ["", "## Candidates", "",
              f"| variant | {'accuracy drop (pts)' if labelled else 'top-1 disagreement'} | top-1 agreement | max abs diff "
              "| p50 ms | size MB | verdict |", "|---|---|---|---|---|---|---|"]
    for c in result.candidates:
        if c.comparison is None:
            lines.append(f"| {c.name} | — | — | — | — | — | {c.verdict} |")
            continue
        budget = f"{c.drop_points:+.2f}" if labelled else f"{(1 - c.comparison.top1_agreement) * 100:.1f}%"
        latency = f"{c.latency_ms:.2f}" if c.latency_ms else "—"
        name = f"**{c.name}**" if c.chosen else c.name
        lines.append(f"| {name} | {budget} | {c.comparison.top1_agreement:.1%} | {c.comparison.max_abs_diff:.3g} | {latency} | "
                     f"{c.size_bytes / 1e6:.1f} | {c.verdict} |")
    if result.repair:
        r = result.repair
        lines += ["", "## Sensitivity repair", "",
                  f"{r['base']}: probed {r['probes']} nodes kept in float; " +
                  (f"the smallest fit is {r['found']}: {', '.join(r['nodes'])}" if r["found"] else "none fitted")]
    return "\n".join(lines) + "\n"


def plot(result: Selection, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    labelled = result.judge.labels is not None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for c in result.candidates:
        if c.latency_ms is None or c.comparison is None:
            continue
        y = -c.drop_points if labelled and c.drop_points is not None else c.comparison.top1_agreement * 100
        style = {"marker": "*", "s": 220, "color": "tab:red"} if c.chosen else {
            "marker": "o" if c.within_budget and c.status == "try" else "x", "s": 50, "color": "tab:blue" if c.within_budget else "grey"}
        ax.scatter([c.latency_ms], [y], **style)
        ax.annotate(c.name, (c.latency_ms, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("p50 latency, batch 1 (ms)")
    ax.set_ylabel("accuracy change (points)" if labelled else "top-1 agreement with PyTorch (%)")
    ax.set_title(f"Quantization doctor: chose {result.chosen.name}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_selection_report(result: Selection, folder: Path) -> list[Path]:
    (folder / "doctor.json").write_text(json.dumps(report_dict(result), indent=2) + "\n", encoding="utf-8")
    (folder / "doctor.md").write_text(markdown(result), encoding="utf-8")
    written = [folder / "doctor.json", folder / "doctor.md"]
    png = plot(result, folder / "doctor.png")
    return written + ([png] if png else [])
