"""``edgeft backbones``, ``finetune`` and ``quickstart``: what comes before a bundle."""

from __future__ import annotations

from pathlib import Path

import click

from edgeft.cli.bench import bench_table
from edgeft.cli.common import EPOCHS, logger, print_json, table


@click.command()
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON on stdout.")
def backbones(name: str | None, as_json: bool) -> None:
    """List the backbones, or show one backbone's groups (what --freeze speaks).

    NAME may be a registered name, a local Hugging Face folder, or a hub id.
    """
    if name is None:
        from edgeft.backbones import BACKBONES

        rows = [{"name": n, "task": e.spec.task, "params": e.spec.params, "source": e.spec.source,
                 "offline": e.spec.available_offline(), "install": e.spec.pip, "card": e.spec.card}
                for n, e in BACKBONES.items()]
        if as_json:
            print_json(rows)
            return
        shown = [{**r, "params": f"{r['params'] / 1e6:.1f}M", "offline": "yes" if r["offline"] else f"no: {r['install']}"}
                 for r in rows]
        click.echo(table(shown, [("name", "NAME"), ("task", "TASK"), ("params", "PARAMS"),
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
        print_json(info)
        return
    click.echo(f"{model.spec.name} ({model.spec.task}); --freeze N freezes the first N groups:")
    click.echo(table([{**r, "params": f"{r['params']:,}"} for r in rows],
                      [("index", "#"), ("group", "GROUP"), ("params", "PARAMS")]))

@click.command()
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
    from edgeft.finetune import FinetuneConfig
    from edgeft.finetune import finetune as run_finetune

    if not resume and (not backbone or not data):
        raise UsageError("--backbone and --data are required (or --resume with -o RUN_DIR)")
    config = FinetuneConfig(backbone=backbone or "", data=data or "", output=output, **options)
    ctx = click.get_current_context()
    given = {name: value for name, value in {"backbone": backbone, "data": data, **options}.items()
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    result = run_finetune(config, resume=resume, log=logger(as_json), progress=not as_json, given=given)
    if result.rank != 0:  # under torchrun, rank 0 reports
        return
    if as_json:
        print_json(result.to_dict())
    else:
        click.echo(f"best val accuracy {result.best_val_accuracy:.4f} at epoch {result.best_epoch}; "
                   f"run written to {result.run_dir}")

@click.command()
@click.option("--output", "-o", type=click.Path(), default="edgeft-quickstart", show_default=True,
              help="Folder for the quickstart's runs.")
@click.option("--epochs", default="auto", show_default=True, type=EPOCHS, help="As for `edgeft finetune`.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
def quickstart(output: str, epochs: int | str, as_json: bool) -> None:
    """Run the bundled sample data through the main job on the default backbones: fine-tune,
    export float and INT8 bundles, and bench them against PyTorch eager on this CPU."""
    from edgeft.quickstart import run_quickstart

    rows = run_quickstart(Path(output), logger(as_json), progress=not as_json, epochs=epochs)
    if as_json:
        print_json(rows)
        return
    shown = [{**r, "val_accuracy": f"{r['val_accuracy']:.3f}", "seconds": f"{r['seconds']:.1f}",
              "trainable_params": f"{r['trainable_params']:,}"} for r in rows]
    click.echo(table(shown, [("backbone", "BACKBONE"), ("task", "TASK"), ("val_accuracy", "VAL ACC"),
                              ("epochs", "EPOCHS"), ("seconds", "SECONDS"), ("trainable_params", "TRAINABLE"),
                              ("run_dir", "RUN DIR")]))
    exported = [{"backbone": r["backbone"], "variant": variant, **b} for r in rows for variant, b in r["bundles"].items()]
    for b in exported:
        b["size"] = f"{b['size_bytes'] / 1e6:.1f} MB"
        b["agreement"] = f"{b['agreement']:.1%}"
        b["drop"] = "n/a" if b["drop_points"] is None else f"{b['drop_points']:+.2f} pts"
    click.echo("")
    click.echo(table(exported, [("backbone", "BACKBONE"), ("variant", "VARIANT"), ("recipe", "RECIPE"), ("size", "SIZE"),
                                 ("agreement", "TOP-1 AGREEMENT"), ("drop", "ACCURACY DROP"), ("bundle", "BUNDLE")]))
    for r in rows:
        if "bench" in r:
            click.echo("")
            bench_table(r["bench"])
            click.echo(f"report: {Path(output) / 'bench' / r['backbone']}")
