"""PNG plots of a bench report with matplotlib (the ``[bench]`` extra): latency distribution per
variant, latency against batch size, and ratio bars."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any


def write_plots(report: dict[str, Any], folder: Path) -> list[Path]:
    """The three plots; none, with a warning, where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warnings.warn("matplotlib is not installed (pip install 'edgeft[bench]'): no plots written", stacklevel=2)
        return []
    results = report["results"]
    names = list(dict.fromkeys(r["bundle"] for r in results))
    suffix = " (emulated)" if report["emulated"] else ""
    first = results[0]
    at_first = [r for r in results if (r["threads"], r["batch"], r["seq"]) == (first["threads"], first["batch"], first["seq"])]
    written = []

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.boxplot([r["samples_ms"] for r in at_first], showfliers=True)
    ax.set_xticks(range(1, len(at_first) + 1), [r["bundle"] for r in at_first], rotation=15)
    ax.set_ylabel("latency per call (ms)")
    ax.set_title(f"Latency distribution, {first['threads']} threads, batch {first['batch']}"
                 + (f", {first['seq']} tokens" if first["seq"] else "") + suffix)
    fig.tight_layout()
    written.append(folder / "latency_distribution.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        rows = [r for r in results if r["bundle"] == name and r["threads"] == first["threads"] and r["seq"] == first["seq"]]
        ax.plot([r["batch"] for r in rows], [r["latency_ms"]["p50"] for r in rows], marker="o", label=name)
    ax.set_xlabel("batch size")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title(f"Latency vs batch size, {first['threads']} threads{suffix}")
    ax.legend()
    fig.tight_layout()
    written.append(folder / "latency_vs_batch.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [f"t{r['threads']} b{r['batch']}" + (f" s{r['seq']}" if r["seq"] else "") for r in results]
    points = list(dict.fromkeys(labels))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [next((r["ratio"] for r, lab in zip(results, labels, strict=False) if r["bundle"] == name and lab == p), 0) for p in points]
        ax.bar([j + i * width for j in range(len(points))], values, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(points))], points)
    ax.set_ylabel(f"p50 latency / {report['reference']}")
    ax.set_title("Latency ratio (lower is faster)" + suffix)
    ax.legend()
    fig.tight_layout()
    written.append(folder / "ratios.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    return written
