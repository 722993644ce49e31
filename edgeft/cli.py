"""The ``edgeft`` command line. Thin: parses options, calls the packages, prints results.

Heavy packages (torch, transformers, onnx) are imported inside the commands that need them,
so ``edgeft --help`` stays fast and torch-free.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from edgeft import __version__
from edgeft.errors import EdgeftError


class EdgeftGroup(click.Group):
    """Turns edgeft's errors into one ``Error: ...`` line and their exit code; warnings into
    one ``Warning: ...`` line. Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        def one_line_warning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
            click.echo(f"Warning: {message}", err=True)

        warnings.showwarning = one_line_warning
        # SIGTERM unwinds like Ctrl-C, so every output's temporary work is removed on the way out
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except EdgeftError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (KeyboardInterrupt, _Terminated) as exc:
            click.echo(f"Error: {'terminated' if isinstance(exc, _Terminated) else 'interrupted'}; "
                       "its temporary work was removed", err=True)
            ctx.exit(143 if isinstance(exc, _Terminated) else 130)


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` block cleans up on the way out."""


def _terminate(signum: int, frame: Any) -> None:  # noqa: ARG001
    raise _Terminated

class _Epochs(click.ParamType):
    """``auto`` or a whole number of at least 1."""

    name = "auto|N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if isinstance(value, int) or value == "auto":
            return value
        try:
            epochs = int(value)
        except ValueError:
            self.fail(f"{value!r} is neither auto nor a whole number", param, ctx)
        if epochs < 1:
            self.fail(f"{value} is not at least 1", param, ctx)
        return epochs


EPOCHS = _Epochs()


def _logger(as_json: bool) -> Callable[[str], None]:
    return (lambda _: None) if as_json else (lambda line: click.echo(line, err=True))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    cells = [[title for _, title in columns]] + [[str(r[key]) for key, _ in columns] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


@click.group(cls=EdgeftGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeft")
def main() -> None:
    """Fine-tune a compact backbone, export it to ONNX, and ship it with a lean runtime.

    Start with `edgeft quickstart`, which runs the bundled sample data through the main job.
    """


@main.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def backbones(name: str | None, as_json: bool) -> None:
    """List the backbones, or show one backbone's groups (what --freeze speaks).

    NAME may be a registered name, a local Hugging Face folder, or a hub id.
    """
    if name is None:
        from edgeft.backbones.registry import BACKBONES
        import edgeft.backbones.efficientnet_lite  # noqa: F401  (registers)
        import edgeft.backbones.hf_text  # noqa: F401

        rows = [{"name": n, "task": e.spec.task, "params": e.spec.params, "source": e.spec.source,
                 "offline": e.spec.available_offline(), "install": e.spec.pip, "card": e.spec.card}
                for n, e in BACKBONES.items()]
        if as_json:
            _print_json(rows)
            return
        shown = [{**r, "params": f"{r['params'] / 1e6:.1f}M", "offline": "yes" if r["offline"] else f"no: {r['install']}"}
                 for r in rows]
        click.echo(_table(shown, [("name", "NAME"), ("task", "TASK"), ("params", "PARAMS"),
                                  ("offline", "OFFLINE HERE"), ("source", "SOURCE")]))
        click.echo("\nAlso: any local Hugging Face encoder folder, or a hub id where you have a network.")
        return
    from edgeft.backbones import load_backbone

    model = load_backbone(name)
    groups = model.group_parameters()
    rows = [{"index": i, "group": g, "params": sum(p.numel() for _, p in ps)} for i, (g, ps) in enumerate(groups.items())]
    info = {"name": model.spec.name, "task": model.spec.task, "preprocessing": model.preprocessing.to_dict(),
            "groups": rows}
    if as_json:
        _print_json(info)
        return
    click.echo(f"{model.spec.name} ({model.spec.task}); --freeze N freezes the first N groups:")
    click.echo(_table([{**r, "params": f"{r['params']:,}"} for r in rows],
                      [("index", "#"), ("group", "GROUP"), ("params", "PARAMS")]))


@main.command()
@click.option("--backbone", "-b", help="Registered name, local Hugging Face folder, or hub id.")
@click.option("--data", "-d", type=click.Path(), help="Image folder (one subfolder per class) or CSV/JSONL text.")
@click.option("--output", "-o", type=click.Path(), required=True, help="Run directory to create (or resume).")
@click.option("--freeze", default="all", show_default=True,
              help="all (backbone frozen, head trains), none, N (first N groups), or a glob over group "
                   "and parameter names. See `edgeft backbones NAME`.")
@click.option("--epochs", default="auto", show_default=True, type=EPOCHS,
              help="auto: a head alone on cached features is fitted to convergence (L-BFGS); otherwise 10 "
                   "epochs with early stopping. N: exactly N epochs of AdamW.")
@click.option("--lr", type=float, default=None, help="Learning rate [default: 3e-3 head only; 3e-4 image, 5e-5 text].")
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--val-split", default=0.2, show_default=True, type=float, help="Fraction held out, stratified.")
@click.option("--val-data", type=click.Path(), help="Explicit validation data (instead of a split).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--warmup-ratio", default=0.1, show_default=True, type=float)
@click.option("--label-smoothing", default=0.0, show_default=True, type=float)
@click.option("--patience", default=3, show_default=True, type=int, help="Early-stopping patience in epochs (0: off).")
@click.option("--cache-features/--no-cache-features", default=True, show_default=True,
              help="Compute the frozen prefix once and train only the rest.")
@click.option("--augment", is_flag=True, help="Random scale, crop and flip for images (turns the cache off).")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), help="Text pooling [default: the backbone's].")
@click.option("--image-size", type=int, help="Crop size for images [default: the backbone's].")
@click.option("--max-length", type=int, help="Token limit for text [default: 128].")
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--num-workers", default=0, show_default=True, type=int, help="Data-loading processes.")
@click.option("--device", default="auto", show_default=True,
              help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")
@click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default="fp32", show_default=True,
              help="Autocast precision; fp16 (CUDA only) scales the loss.")
@click.option("--dropout", type=float, default=None, help="Head dropout [default: the backbone's].")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout; no progress output.")
def finetune(backbone, data, output, resume, as_json, **options) -> None:  # noqa: ANN001
    """Fine-tune a backbone on your data with partial freezing.

    Writes RUN_DIR with model.safetensors (best epoch), config.json, metrics.json.

    Data-parallel: run the same command under `torchrun --nproc-per-node N -m edgeft finetune ...`
    or `accelerate launch -m edgeft finetune ...`; --batch-size stays the global batch, and only
    rank 0 writes the run directory.
    """
    from edgeft.errors import UsageError
    from edgeft.finetune import FinetuneConfig, finetune as run_finetune

    if not resume and (not backbone or not data):
        raise UsageError("--backbone and --data are required (or --resume with -o RUN_DIR)")
    config = FinetuneConfig(backbone=backbone or "", data=data or "", output=output, **options)
    ctx = click.get_current_context()
    given = {name: value for name, value in {"backbone": backbone, "data": data, **options}.items()
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    result = run_finetune(config, resume=resume, log=_logger(as_json), progress=not as_json, given=given)
    from edgeft.finetune.distributed import context_from_env

    if not context_from_env().is_main:
        return
    if as_json:
        _print_json(result.to_dict())
    else:
        click.echo(f"best val accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
                   f"run written to {result.run_dir}")


@main.command()
@click.argument("source")
@click.option("--output", "-o", type=click.Path(), required=True, help="Bundle folder to write.")
@click.option("--quantize", "-q", type=click.Choice(["none", "dynamic", "static", "fp16", "auto"]), default="none",
              show_default=True, help="none: float32; dynamic: INT8 weights; static: INT8 weights and "
                                      "activations (QDQ, calibrated); fp16: float16 weights and compute; auto: the "
                                      "doctor measures the candidates this CPU runs exactly and keeps the fastest within "
                                      "--max-accuracy-drop (report: doctor.md in the bundle).")
@click.option("--calibration-data", type=click.Path(), help="Images (a folder) or texts (.txt/.csv/.jsonl) to "
              "calibrate static INT8 [default: the run's training split].")
@click.option("--calibration-method", type=click.Choice(["minmax", "entropy", "percentile"]), default="minmax",
              show_default=True)
@click.option("--calibration-samples", default=128, show_default=True, type=int, help="At most this many samples.")
@click.option("--per-channel", is_flag=True, help="Per-channel INT8 weights (tried anyway if per-tensor misses the budget).")
@click.option("--max-accuracy-drop", default=1.0, show_default=True, type=float,
              help="Points of validation accuracy a quantized model may lose; beyond it the fallback recipes "
                   "are tried, and if none fits, nothing is written (exit 1).")
@click.option("--opset", type=int, help="ONNX opset [default: 18].")
@click.option("--eval-samples", default=256, show_default=True, type=int,
              help="Held-out samples for the PyTorch comparison and accuracy.")
@click.option("--target", "-t", default="cpu", show_default=True,
              help="The device class the bundle is made for: cpu (this machine), arm64 (phones and boards) or "
                   "x86-vnni. It decides the INT8 recipes (8-bit weights where kernels are exact), the numerics "
                   "that judge accuracy (exact int8 reproduced here when this CPU differs) and the golden vectors. "
                   "qemu-arm64 or ssh://[user@]host[:port]: as arm64 (or the CPU read there), and the kept "
                   "candidate must also meet the budget on --confirm-samples run on that device.")
@click.option("--confirm-samples", default=128, show_default=True, type=int,
              help="Held-out samples a qemu-arm64 or ssh:// target runs each kept candidate on.")
@click.option("--ssh-config", type=click.Path(exists=True, dir_okay=False), help="ssh_config file for an ssh:// target.")
@click.option("--remote-python", default="python3", show_default=True,
              help="Python on an ssh:// target, with numpy and onnxruntime.")
@click.option("--head-refit", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="For a run whose backbone was frozen: the head kept in float and refitted on the quantized "
                   "backbone's own features of the training split. auto: tried where the trained head misses "
                   "--max-accuracy-drop; always: every INT8 recipe; never.")
@click.option("--qat", type=click.Choice(["auto", "always", "never"]), default="auto", show_default=True,
              help="For a run that trained backbone groups: those groups (and the head) fine-tuned briefly under "
                   "fake quantization of the recipe, then quantized. auto: tried where a static recipe misses "
                   "--max-accuracy-drop; always: every static recipe; never.")
@click.option("--app", is_flag=True,
              help="An app model: it takes uint8 RGB pixels of any size (or one string) and returns logits, "
                   "probabilities and the top-5, with the bundle's preprocessing inside the graph (text: "
                   "onnxruntime-extensions' tokenizer). Checked against the Python runtime on the golden inputs.")
@click.option("--force", is_flag=True, help="Replace an existing bundle at --output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export(source: str, output: str, as_json: bool, **options: Any) -> None:
    """Export SOURCE (a run directory, or a backbone name with its pretrained head) to a bundle.

    The bundle holds model.onnx, edgeft.json (labels, inputs, preprocessing, quantization,
    verification) and tokenizer.json for text. Every export is checked against PyTorch on
    held-out samples; a quantized one also for accuracy on the run's validation split.
    """
    from edgeft.export import ExportConfig, export_bundle

    result = export_bundle(ExportConfig(source=source, output=output, **options), log=_logger(as_json))
    if as_json:
        _print_json(result.to_dict())
        return
    v = result.manifest.verification
    acc = v["accuracy"]
    accuracy = (f", accuracy {acc['float']:.2%} -> {acc['exported']:.2%}" if acc else "")
    click.echo(f"{result.manifest.quantization['name']}: {result.size_bytes / 1e6:.1f} MB "
               f"({result.size_bytes / result.float_size_bytes:.0%} of float), top-1 agreement with PyTorch "
               f"{v['exported_vs_torch']['top1_agreement']:.1%}{accuracy}; bundle written to {result.bundle} "
               f"in {result.seconds:.1f} s")


@main.command()
@click.argument("bundle", type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option("--file", "-f", "text_file", type=click.Path(), help="Texts, one per line (text bundles).")
@click.option("--top-k", "-k", default=1, show_default=True, type=int)
@click.option("--batch-size", default=32, show_default=True, type=int)
@click.option("--logits", is_flag=True, help="Include the raw logits in --json output.")
@click.option("--threads", default=0, show_default=True, type=int, help="Intra-op threads (0: onnxruntime's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def predict(bundle: str, inputs: tuple[str, ...], text_file: str | None, top_k: int, batch_size: int, logits: bool,
            threads: int, as_json: bool) -> None:
    """Classify INPUTS with BUNDLE: image paths, or texts as arguments, --file (one per line), or - for stdin."""
    from edgeft.errors import UsageError
    from edgeft.runtime import EdgeModel
    from edgeft.runtime.preprocess import decode_utf8

    if top_k < 1 or batch_size < 1:
        raise UsageError("--top-k and --batch-size must be at least 1")
    model = EdgeModel.load(bundle, threads=threads)
    items = [decode_utf8(os.fsencode(arg), f"argument {i}") for i, arg in enumerate(inputs, 1)]
    if items == ["-"]:
        items = _lines(decode_utf8(sys.stdin.buffer.read(), "stdin"))
    if text_file:
        try:
            raw = Path(text_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {text_file}: {exc.strerror or exc}") from None
        items += _lines(decode_utf8(raw, text_file))
    if not items:
        raise UsageError("no inputs: give image paths or texts, --file, or - for stdin")
    results = model.predict(items, top_k=top_k, batch_size=batch_size, return_logits=logits)
    _logger(as_json)(f"{len(items)} input(s) on {model.provider}")
    if as_json:
        _print_json([{"input": item, **r.to_dict()} for item, r in zip(items, results)])
        return
    for item, r in zip(items, results):
        shown = item if len(item) <= 60 else item[:57] + "..."
        click.echo(f"{shown}\t" + ", ".join(f"{label} {score:.3f}" for label, score in r.top_k))


@main.command()
@click.argument("bundle", type=click.Path())
@click.option("--provider", "providers", multiple=True,
              help="onnxruntime execution provider, repeatable [default: CUDA if available, then CPU].")
@click.option("--threads", default=0, show_default=True, type=int, help="Intra-op threads (0: onnxruntime's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def verify(bundle: str, providers: tuple[str, ...], threads: int, as_json: bool) -> None:
    """Run BUNDLE's golden vectors on this machine and compare with the outputs stored at export.

    Exits 1 when the difference is beyond the manifest's tolerance or a top-1 differs, and when
    this machine's kernels cannot compute what the bundle's target computes (it then says so, and
    checks the file with the target's numerics simulated). Run it on the target device before shipping.
    """
    from edgeft.runtime import EdgeModel

    model = EdgeModel.load(bundle, providers=providers or None, threads=threads)
    check = model.check_golden()
    mismatch = model.kernel_mismatch()
    simulated = None
    if mismatch:  # the target's exact int8, reproduced here (edgeft.export.exact_int8)
        from edgeft.export.verify import session

        exact = session(model.path / model.manifest.model_file, threads, "simulated", model.manifest.app.get("custom_ops"))
        simulated = EdgeModel(model.path, model.manifest, exact).check_golden()
    if as_json:
        _print_json({**check.to_dict(), "kernel_mismatch": mismatch,
                     "simulated_target": simulated.to_dict() if simulated else None})
    else:
        click.echo(f"{'ok' if check.ok else 'MISMATCH'}: {check.count} golden samples on {check.provider}, max abs diff "
                   f"{check.max_abs_diff:.3g} (tolerance {check.atol:.3g}), top-1 agreement {check.top1_agreement:.0%}")
        if mismatch and simulated:
            click.echo(f"{mismatch}: max diff {check.max_abs_diff:.3g} against the target's outputs; with the target's "
                       f"exact int8 reproduced here the bundle is {'intact' if simulated.ok else 'NOT intact'} "
                       f"(max diff {simulated.max_abs_diff:.3g}). Verify on the target itself.")
    if not check.ok or mismatch:
        sys.exit(1)


@main.command()
@click.argument("bundle", type=click.Path())
@click.option("--output", "-o", type=click.Path(), required=True, help="Folder (or .zip file with --zip) to write.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "ort"]), default="onnx", show_default=True,
              help="ort: the model converted to ORT format for ORT Mobile, with required_operators.config.")
@click.option("--zip", "as_zip", is_flag=True, help="Write one zip file instead of a folder.")
@click.option("--app", is_flag=True,
              help="An app model: it takes uint8 RGB pixels of any size (or one string) and returns logits, "
                   "probabilities and the top-5, with the bundle's preprocessing inside the graph (text: "
                   "onnxruntime-extensions' tokenizer). Checked against the Python runtime on the golden inputs.")
@click.option("--force", is_flag=True, help="Replace an existing package.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def package(bundle: str, output: str, fmt: str, as_zip: bool, app: bool, force: bool, as_json: bool) -> None:
    """Make BUNDLE app-ready: the bundle, a README for app developers, optionally ORT format.

    The package is checked back before it is kept: it must load and reproduce its golden vectors.
    """
    from edgeft.export.package import package_bundle

    out = package_bundle(bundle, output, fmt=fmt, as_zip=as_zip, force=force, app=app, log=_logger(as_json))
    if as_json:
        _print_json({"package": str(out), "format": fmt, "zip": as_zip, "app": app})
    else:
        click.echo(f"package written to {out} ({fmt}{', zip' if as_zip else ''}); checked: loads and reproduces "
                   "its golden vectors")


def _int_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers") from None


class _BenchGroup(click.Group):
    """``edgeft bench BUNDLE...`` runs a benchmark; ``edgeft bench compare A B`` compares two."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_BenchGroup)
def bench() -> None:
    """Time bundles on a target, side by side: `edgeft bench BUNDLE... [OPTIONS]`
    (see `edgeft bench run --help`), or compare two reports: `edgeft bench compare A.json B.json`."""


def _bench_table(report: dict[str, Any]) -> None:
    from edgeft.bench.report import describe, golden_lines, table_cells

    header, cells = table_cells(report)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=describe(report), title_justify="left")
        for title in header:
            table.add_column(title, justify="left" if title == "bundle" else "right")
        for row in cells:
            table.add_row(*row)
        Console().print(table)
    else:
        click.echo(describe(report))
        click.echo(_table([dict(zip(header, row)) for row in cells], [(h, h.upper()) for h in header]))
    for line in golden_lines(report):
        click.echo(line)


@bench.command("run")
@click.argument("bundles", nargs=-1, required=True, type=click.Path())
@click.option("--target", "-t", default="cpu", show_default=True,
              help="cpu, cuda, qemu-arm64, or ssh://[user@]host[:port] (key-based ssh; the device needs "
                   "Python 3 with numpy and onnxruntime).")
@click.option("--batch-sizes", default="1", show_default=True, callback=_int_list, help="Comma-separated sweep.")
@click.option("--threads", default="", callback=_int_list, help="Comma-separated sweep [default: all logical cores].")
@click.option("--seq-lengths", default="128", show_default=True, callback=_int_list,
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
        report = run_bench(config, log=_logger(as_json), progress=progress)
    except BenchInterrupted as exc:
        if bar is not None:
            bar.close()
        kept = ""
        if exc.report["results"]:
            if output:
                write_report(exc.report, Path(output), plots=not no_plots)
                kept = f"; the {len(exc.report['results'])} results measured before are in {Path(output) / 'results.json'}"
            elif not as_json:
                _bench_table(exc.report)
                kept = "; the results measured before are shown above"
        raise type(exc)(f"{exc}{kept}", exc.report) from None
    if bar is not None:
        bar.close()
    written = write_report(report, Path(output), plots=not no_plots) if output else []
    if as_json:
        _print_json(report)
    else:
        _bench_table(report)
        if written:
            click.echo(f"report: {', '.join(str(p) for p in written)}")
    if any(not g["within_tolerance"] or g["top1_agreement"] < 1.0 for g in report["golden"]):
        _logger(as_json)("warning: a bundle's golden vectors disagree on this target (see above); INT8 kernels differ "
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
        _print_json({"rows": rows, "warnings": warnings_})
        return
    for line in warnings_:
        click.echo(f"Warning: {line}", err=True)
    shown = [{**r, "seq": r["seq"] or "—", "a_p50_ms": f"{r['a_p50_ms']:.2f}", "b_p50_ms": f"{r['b_p50_ms']:.2f}",
              "ratio": f"{r['ratio']:.2f}"} for r in rows]
    click.echo(_table(shown, [("bundle", "BUNDLE"), ("threads", "THREADS"), ("batch", "BATCH"), ("seq", "SEQ"),
                              ("a_p50_ms", "A P50 MS"), ("b_p50_ms", "B P50 MS"), ("ratio", "B/A")]))


@main.command()
@click.argument("source")
@click.option("--target", "-t", default="cpu", show_default=True,
              help="cpu (this machine), arm64 or x86-vnni (their kernels' rules), ssh://[user@]host[:port] or "
                   "qemu-arm64 (read on the device; those two need a BUNDLE).")
@click.option("--json", "as_json", is_flag=True, help="Print the preflight as JSON on stdout.")
def doctor(source: str, target: str, as_json: bool) -> None:
    """Preflight for quantization: which recipes run fast and exactly on the target, and why not.

    SOURCE is a bundle, a run directory or a backbone name (exported to float first to read its
    operators). `edgeft export SOURCE --quantize auto` then measures the candidates it allows.
    """
    from edgeft.outputs import scratch

    from edgeft.doctor import preflight
    from edgeft.doctor.target import target_cpu
    from edgeft.export.optimize import op_counts

    path = Path(source)
    if path.is_dir() and (path / "edgeft.json").is_file():
        from edgeft.manifest import read_manifest

        manifest = read_manifest(path)
        modality = "image" if manifest.task == "image-classification" else "text"
        ops = op_counts(path / manifest.model_file)
        cpu, version, providers = target_cpu(target, path)
    else:
        from edgeft.export.convert import to_onnx
        from edgeft.export.optimize import optimize_graph
        from edgeft.export.source import load_source

        cpu, version, providers = target_cpu(target, None)
        exported = load_source(source, _logger(as_json))
        modality = exported.modality
        with scratch("doctor") as tmp:
            encoder = getattr(getattr(exported.model, "encoder", None), "config", None)
            graph = optimize_graph(to_onnx(exported.model, Path(tmp) / "exported.onnx"), Path(tmp) / "float.onnx", modality,
                                   getattr(encoder, "num_attention_heads", 0), getattr(encoder, "hidden_size", 0))
            ops = op_counts(graph)
    result = preflight(cpu, modality, ops, version, providers)
    if as_json:
        _print_json(result.to_dict())
        return
    for line in result.findings:
        click.echo(f"- {line}")
    click.echo("")
    click.echo(_table([{"recipe": v.recipe.name, "status": v.status, "why": v.why} for v in result.verdicts],
                      [("recipe", "RECIPE"), ("status", "STATUS"), ("why", "WHY")]))


@main.command()
@click.option("--output", "-o", type=click.Path(), default="edgeft-quickstart", show_default=True,
              help="Folder for the quickstart's runs.")
@click.option("--epochs", default="auto", show_default=True, type=EPOCHS, help="As for `edgeft finetune`.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def quickstart(output: str, epochs: int | str, as_json: bool) -> None:
    """Run the bundled sample data through the main job on the default backbones: fine-tune,
    export float and INT8 bundles, and bench them against PyTorch eager on this CPU."""
    from edgeft.quickstart import run_quickstart

    rows = run_quickstart(Path(output), _logger(as_json), progress=not as_json, epochs=epochs)
    if as_json:
        _print_json(rows)
        return
    shown = [{**r, "val_accuracy": f"{r['val_accuracy']:.3f}", "seconds": f"{r['seconds']:.1f}",
              "trainable_params": f"{r['trainable_params']:,}"} for r in rows]
    click.echo(_table(shown, [("backbone", "BACKBONE"), ("task", "TASK"), ("val_accuracy", "VAL ACC"),
                              ("epochs", "EPOCHS"), ("seconds", "SECONDS"), ("trainable_params", "TRAINABLE"),
                              ("run_dir", "RUN DIR")]))
    exported = [{"backbone": r["backbone"], "variant": variant, **b} for r in rows for variant, b in r["bundles"].items()]
    for b in exported:
        b["size"] = f"{b['size_bytes'] / 1e6:.1f} MB"
        b["agreement"] = f"{b['agreement']:.1%}"
        b["drop"] = "n/a" if b["drop_points"] is None else f"{b['drop_points']:+.2f} pts"
    click.echo("")
    click.echo(_table(exported, [("backbone", "BACKBONE"), ("variant", "VARIANT"), ("recipe", "RECIPE"), ("size", "SIZE"),
                                 ("agreement", "TOP-1 AGREEMENT"), ("drop", "ACCURACY DROP"), ("bundle", "BUNDLE")]))
    for r in rows:
        if "bench" in r:
            click.echo("")
            _bench_table(r["bench"])
            click.echo(f"report: {Path(output) / 'bench' / r['backbone']}")


if __name__ == "__main__":
    sys.exit(main())
