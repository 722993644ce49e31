"""``edgeft bench BUNDLE...`` and ``edgeft bench compare A B``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from edgeft.cli.common import INT_LIST, logger, print_json, table


class _BenchGroup(click.Group):
    """``edgeft bench BUNDLE...`` runs a benchmark; ``edgeft bench compare A B`` compares two."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)

@click.group(cls=_BenchGroup)
def bench() -> None:
    """Time bundles on a target, side by side: `edgeft bench BUNDLE... [OPTIONS]`
    (see `edgeft bench run --help`), or compare two reports: `edgeft bench compare A.json B.json`."""

def bench_table(report: dict[str, Any]) -> None:
    from edgeft.bench.report import describe, golden_lines, table_cells

    header, cells = table_cells(report)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        grid = Table(title=describe(report), title_justify="left")
        for title in header:
            grid.add_column(title, justify="left" if title == "bundle" else "right")
        for row in cells:
            grid.add_row(*row)
        Console().print(grid)
    else:
        click.echo(describe(report))
        click.echo(table([dict(zip(header, row, strict=True)) for row in cells], [(h, h.upper()) for h in header]))
    for line in golden_lines(report):
        click.echo(line)

@bench.command("run")
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--target", "-t", default="cpu", show_default=True,
              help="cpu, cuda, qemu-arm64, or ssh://[user@]host[:port] (key-based ssh; the device needs "
                   "Python 3 with numpy and onnxruntime).")
@click.option("--batch-sizes", default="1", show_default=True, type=INT_LIST, help="Comma-separated sweep.")
@click.option("--threads", default="", type=INT_LIST, help="Comma-separated sweep [default: all logical cores].")
@click.option("--seq-lengths", default="128", show_default=True, type=INT_LIST,
              help="Text only: comma-separated token counts (synthetic inputs).")
@click.option("--runs", type=int, help="Timed calls per point [default: as many as --min-time allows].")
@click.option("--min-time", default=1.0, show_default=True, type=float, help="Seconds of timed calls per point and bundle.")
@click.option("--warmup", default=10, show_default=True, type=int, help="Untimed calls before timing each point.")
@click.option("--rounds", default=5, show_default=True, type=int,
              help="Blocks each point's timing is split into, interleaved across the bundles.")
@click.option("--baseline", type=click.Choice(["torch"]), help="Add PyTorch eager of the first bundle's source.")
@click.option("--reference", help="Bundle name or path (or torch-eager) the ratios are taken to [default: the first].")
@click.option("--inputs", type=click.Path(exists=True), help="Real samples (image folder, .txt/.csv/.jsonl) instead of synthetic inputs.")
@click.option("--output", "-o", type=click.Path(), help="Report folder: results.json, results.csv, results.md, PNG plots.")
@click.option("--ssh-config", type=click.Path(exists=True, dir_okay=False), help="ssh_config file for ssh:// targets.")
@click.option("--remote-python", default="python3", show_default=True, help="Python on an ssh:// device.")
@click.option("--arm64-root", type=click.Path(), help="The emulated environment [default: $EDGEFT_ARM64_ROOT or ~/.cache/edgeft/arm64].")
@click.option("--qemu-cpu", default="neoverse-n1", show_default=True,
              help="Emulated core for qemu-arm64, which picks onnxruntime's kernels: cortex-a72 (NEON), neoverse-n1 "
                   "(+dot product, like most phones since 2019), max (+SVE, i8mm: INT8 results were wrong under QEMU 7.2).")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots.")
@click.option("--json", "as_json", is_flag=True, help="Print results.json on stdout; no progress output.")
def bench_run(bundles: tuple[str, ...], target: str, batch_sizes: tuple[int, ...], threads: tuple[int, ...],
              seq_lengths: tuple[int, ...], runs: int | None, min_time: float, warmup: int, rounds: int,
              baseline: str | None, reference: str | None, inputs: str | None, output: str | None,
              ssh_config: str | None, remote_python: str, arm64_root: str | None, qemu_cpu: str | None,
              no_plots: bool, as_json: bool) -> None:
    """Time BUNDLE(s) on a target: latency percentiles, throughput, load and first-call time, peak
    memory, size and GFLOP/s, each bundle in its own process, timed in interleaved blocks.

    Several bundles (float, INT8, fp16 of one model) give one table with ratios to the first. The
    golden vectors run on the target first: a disagreement with the exported outputs is reported.
    """
    from edgeft.bench import BenchConfig, BenchInterrupted, TargetOptions, run_bench
    from edgeft.bench.report import write_report

    config = BenchConfig(bundles=bundles, target=target, batch_sizes=batch_sizes or (1,), threads=threads,
                         seq_lengths=seq_lengths or (128,), runs=runs, min_time=min_time, warmup=warmup, rounds=rounds,
                         baseline=baseline, reference=reference, inputs=inputs,
                         target_options=TargetOptions(ssh_config, remote_python, arm64_root, qemu_cpu))
    bar = None
    if not as_json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=0, unit="block", leave=False, file=sys.stderr)

    def progress(done: int, total: int, what: str) -> None:
        if bar is not None:
            bar.total = total
            bar.set_description(what)
            bar.update(done - bar.n)

    try:
        report = run_bench(config, log=logger(as_json), progress=progress)
    except BenchInterrupted as exc:
        if bar is not None:
            bar.close()
        kept = ""
        if exc.report["results"]:
            if output:
                write_report(exc.report, Path(output), plots=not no_plots)
                kept = f"; the {len(exc.report['results'])} results measured before are in {Path(output) / 'results.json'}"
            elif not as_json:
                bench_table(exc.report)
                kept = "; the results measured before are shown above"
        raise type(exc)(f"{exc}{kept}", exc.report) from None
    if bar is not None:
        bar.close()
    written = write_report(report, Path(output), plots=not no_plots) if output else []
    if as_json:
        print_json(report)
    else:
        bench_table(report)
        if written:
            click.echo(f"report: {', '.join(str(p) for p in written)}")
    from edgeft.runtime.golden import GoldenCheck

    if any(not GoldenCheck.from_report(g).ok for g in report["golden"]):
        logger(as_json)("warning: a bundle's golden vectors disagree on this target (see above); INT8 kernels differ "
                         "between platforms: check accuracy there before shipping")

@bench.command("compare")
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the rows and warnings as JSON on stdout.")
def bench_compare(a: str, b: str, as_json: bool) -> None:
    """B's latency over A's (p50), for every point both reports measured on the same model file.

    Warns when the fingerprints (CPU, ISA, cores, runtime version) differ; refuses to compare an
    emulated report with a native one.
    """
    from edgeft.bench.compare import compare_reports, load_report

    rows, warnings_ = compare_reports(load_report(a), load_report(b))
    if as_json:
        print_json({"rows": rows, "warnings": warnings_})
        return
    for line in warnings_:
        click.echo(f"Warning: {line}", err=True)
    shown = [{**r, "seq": r["seq"] or "—", "a_p50_ms": f"{r['a_p50_ms']:.2f}", "b_p50_ms": f"{r['b_p50_ms']:.2f}",
              "ratio": f"{r['ratio']:.2f}"} for r in rows]
    click.echo(table(shown, [("bundle", "BUNDLE"), ("threads", "THREADS"), ("batch", "BATCH"), ("seq", "SEQ"),
                              ("a_p50_ms", "A P50 MS"), ("b_p50_ms", "B P50 MS"), ("ratio", "B/A")]))
