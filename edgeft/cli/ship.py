"""``edgeft export``, ``doctor``, ``predict``, ``verify`` and ``package``: making, checking and using bundles."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from edgeft.cli.common import APP_OPTION, lines, logger, print_json, table


@click.command()
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
              help="The device class the bundle is made for: cpu (this machine's class), arm64 (phones and "
                   "boards), x86-vnni or x86-avx2 (x86 without VNNI: 7-bit weights, made alike on any host). "
                   "It decides the INT8 recipes (8-bit weights where kernels are exact), the numerics "
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
@APP_OPTION
@click.option("--force", is_flag=True, help="Replace an existing bundle at --output.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def export(source: str, output: str, as_json: bool, **options: Any) -> None:
    """Export SOURCE (a run directory, or a backbone name with its pretrained head) to a bundle.

    The bundle holds model.onnx, edgeft.json (labels, inputs, preprocessing, quantization,
    verification) and tokenizer.json for text. Every export is checked against PyTorch on
    held-out samples; a quantized one also for accuracy on the run's validation split.
    """
    from edgeft.export import ExportConfig, export_bundle

    result = export_bundle(ExportConfig(source=source, output=output, **options), log=logger(as_json))
    if as_json:
        print_json(result.to_dict())
        return
    v = result.manifest.verification
    acc = v["accuracy"]
    accuracy = (f", accuracy {acc['float']:.2%} -> {acc['exported']:.2%}" if acc else "")
    click.echo(f"{result.manifest.quantization['name']}: {result.size_bytes / 1e6:.1f} MB "
               f"({result.size_bytes / result.float_size_bytes:.0%} of float), top-1 agreement with PyTorch "
               f"{v['exported_vs_torch']['top1_agreement']:.1%}{accuracy}; bundle written to {result.bundle} "
               f"in {result.seconds:.1f} s")

@click.command()
@click.argument("source")
@click.option("--target", "-t", default="cpu", show_default=True,
              help="cpu (this machine), arm64, x86-vnni or x86-avx2 (their kernels' rules), ssh://[user@]host[:port] or "
                   "qemu-arm64 (read on the device; those two need a BUNDLE).")
@click.option("--json", "as_json", is_flag=True, help="Print the preflight as JSON on stdout.")
def doctor(source: str, target: str, as_json: bool) -> None:
    """Preflight for quantization: which recipes run fast and exactly on the target, and why not.

    SOURCE is a bundle, a run directory or a backbone name (exported to float first to read its
    operators). `edgeft export SOURCE --quantize auto` then measures the candidates it allows.
    """
    from edgeft.doctor import diagnose

    result = diagnose(source, target, logger(as_json))
    if as_json:
        print_json(result.to_dict())
        return
    for line in result.findings:
        click.echo(f"- {line}")
    click.echo("")
    click.echo(table([{"recipe": v.recipe.name, "status": v.status, "why": v.why} for v in result.verdicts],
                      [("recipe", "RECIPE"), ("status", "STATUS"), ("why", "WHY")]))

@click.command()
@click.argument("bundle", type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option("--file", "-f", "text_file", type=click.Path(), help="Texts, one per line (text bundles).")
@click.option("--top-k", "-k", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--logits", is_flag=True, help="Include the raw logits in --json output.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0), help="Intra-op threads (0: onnxruntime's choice).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
def predict(bundle: str, inputs: tuple[str, ...], text_file: str | None, top_k: int, batch_size: int, logits: bool,
            threads: int, as_json: bool) -> None:
    """Classify INPUTS with BUNDLE: image paths, or texts as arguments, --file (one per line), or - for stdin."""
    from edgeft.errors import UsageError
    from edgeft.runtime import EdgeModel
    from edgeft.runtime.preprocess import decode_utf8

    model = EdgeModel.load(bundle, threads=threads)
    items = [decode_utf8(os.fsencode(arg), f"argument {i}") for i, arg in enumerate(inputs, 1)]
    if items == ["-"]:
        items = lines(decode_utf8(sys.stdin.buffer.read(), "stdin"))
    if text_file:
        try:
            raw = Path(text_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read {text_file}: {exc.strerror or exc}") from None
        items += lines(decode_utf8(raw, text_file))
    if not items:
        raise UsageError("no inputs: give image paths or texts, --file, or - for stdin")
    results = model.predict(items, top_k=top_k, batch_size=batch_size, return_logits=logits)
    logger(as_json)(f"{len(items)} input(s) on {model.provider}")
    if as_json:
        print_json([{"input": item, **r.to_dict()} for item, r in zip(items, results, strict=True)])
        return
    for item, r in zip(items, results, strict=True):
        shown = item if len(item) <= 60 else item[:57] + "..."
        click.echo(f"{shown}\t" + ", ".join(f"{label} {score:.3f}" for label, score in r.top_k))

@click.command()
@click.argument("bundle", type=click.Path())
@click.option("--provider", "providers", multiple=True,
              help="onnxruntime execution provider, repeatable [default: CUDA if available, then CPU].")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0), help="Intra-op threads (0: onnxruntime's choice).")
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
        print_json({**check.to_dict(), "kernel_mismatch": mismatch,
                     "simulated_target": simulated.to_dict() if simulated else None})
    else:
        click.echo(f"{'ok' if check.ok else 'MISMATCH'}: golden samples on {check.provider}: {check.sentence()}")
        if mismatch and simulated:
            click.echo(f"{mismatch}: max diff {check.max_abs_diff:.3g} against the target's outputs; with the target's "
                       f"exact int8 reproduced here the bundle is {'intact' if simulated.ok else 'NOT intact'} "
                       f"(max diff {simulated.max_abs_diff:.3g}). Verify on the target itself.")
    if not check.ok or mismatch:
        sys.exit(1)

@click.command()
@click.argument("bundle", type=click.Path())
@click.option("--output", "-o", type=click.Path(), required=True, help="Folder (or .zip file with --zip) to write.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "ort"]), default="onnx", show_default=True,
              help="ort: the model converted to ORT format for ORT Mobile, with required_operators.config.")
@click.option("--zip", "as_zip", is_flag=True, help="Write one zip file instead of a folder.")
@APP_OPTION
@click.option("--force", is_flag=True, help="Replace an existing package.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
def package(bundle: str, output: str, fmt: str, as_zip: bool, app: bool, force: bool, as_json: bool) -> None:
    """Make BUNDLE app-ready: the bundle, a README for app developers, optionally ORT format.

    The package is checked back before it is kept: it must load and reproduce its golden vectors.
    """
    from edgeft.export.package import package_bundle

    out = package_bundle(bundle, output, fmt=fmt, as_zip=as_zip, force=force, app=app, log=logger(as_json))
    if as_json:
        print_json({"package": str(out), "format": fmt, "zip": as_zip, "app": app})
    else:
        click.echo(f"package written to {out} ({fmt}{', zip' if as_zip else ''}); checked: loads and reproduces "
                   "its golden vectors")
