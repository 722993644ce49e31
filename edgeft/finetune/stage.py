"""``finetune``: the stage's one entry. It validates everything before the first byte is
written, plans the feature cache, then runs the training loop into a run directory."""

from __future__ import annotations

import contextlib
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import torch

from edgeft import __version__, outputs
from edgeft.backbones import Backbone, backbone_spec
from edgeft.data import DatasetSplits, load_dataset
from edgeft.errors import DataError, RunDirError, UsageError
from edgeft.finetune.batches import INFERENCE_BATCH, make_loader, progress_bar, to_device
from edgeft.finetune.cache import plan_cache
from edgeft.finetune.config import FinetuneConfig
from edgeft.finetune.device import Precision, resolve_device
from edgeft.finetune.distributed import DistContext, context_from_env, init_process_group
from edgeft.finetune.freezing import apply_freeze
from edgeft.finetune.inputs import ImageItems, TextItems
from edgeft.finetune.model import build_model
from edgeft.finetune.run_dir import RunDir
from edgeft.finetune.trainer import Trainer
from edgeft.runtime.preprocess import configure_tokenizer

Log = Callable[[str], None]
RESUME_MAY_CHANGE = ("device", "num_workers", "output")  # options a resumed run may take anew


@dataclass
class FinetuneResult:
    run_dir: str
    backbone: str
    task: str
    labels: list[str]
    best_epoch: int
    best_val_accuracy: float
    epochs_run: int
    stopped_early: bool
    trainable_params: int
    frozen_params: int
    seconds: float
    cache: dict[str, Any] | None
    rank: int = 0  # this process's rank in a data-parallel run: only rank 0 reports

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _silent(_: str) -> None:
    pass


def finetune(config: FinetuneConfig, *, resume: bool = False, log: Log = _silent, progress: bool = False,
             given: dict[str, Any] | None = None) -> FinetuneResult:
    """Fine-tune ``config.backbone`` on ``config.data`` into the run directory ``config.output``.

    Everything is validated before the first byte is written. The run directory appears before
    the first epoch with its config and is locked while the run writes it; each epoch commits
    in one step. ``resume=True`` continues the run stored in ``config.output``; ``given`` are
    the options the user set for it (they must agree with the run's, except ``RESUME_MAY_CHANGE``).
    """
    run = RunDir(config.output)
    ctx = context_from_env()
    with outputs.OutputLock(run.path.absolute()) if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main:
            run.reap()
        return _finetune(config, run, ctx, resume, log, progress, given or {})


def _resumed_config(run: RunDir, given: dict[str, Any]) -> FinetuneConfig:
    if not run.config_file.exists():
        raise RunDirError(f"{run.path} holds no run to resume (no {run.config_file.name})")
    stored = run.finetune_config().to_dict()
    changed = [f"--{k.replace('_', '-')} {v} (the run has {stored.get(k)})" for k, v in given.items()
               if k not in RESUME_MAY_CHANGE and stored.get(k) != v]
    if changed:
        raise UsageError(f"--resume continues the run as it was configured; {', '.join(changed)}: drop the option, "
                         "or start a new run with -o elsewhere")
    return FinetuneConfig.from_dict({**stored, **{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE},
                                     "output": str(run.path)})


def _items(model: Backbone, splits: DatasetSplits, config: FinetuneConfig) -> tuple[Any, Any]:
    if splits.train.modality == "image":
        return (ImageItems(splits.train, model.preprocessing, config.augment, config.seed),
                ImageItems(splits.val, model.preprocessing))
    from tokenizers import Tokenizer

    tokenizer = configure_tokenizer(Tokenizer.from_str(model.tokenizer_json), model.preprocessing)
    return TextItems(splits.train, model.preprocessing, tokenizer), TextItems(splits.val, model.preprocessing, tokenizer)


def _finetune(config: FinetuneConfig, run: RunDir, ctx: DistContext, resume: bool, log: Log, progress: bool,
              given: dict[str, Any]) -> FinetuneResult:
    if not ctx.is_main:
        log, progress = _silent, False
    if resume:
        config = _resumed_config(run, given)
    else:
        run.check_new()
    device = resolve_device(config.device, ctx.local_rank)
    precision = Precision(config.precision, device.type)  # validated before any work
    spec = backbone_spec(config.backbone)
    splits = load_dataset(config.data, val_split=config.val_split, seed=config.seed, val_path=config.val_data,
                          text_column=config.text_column, label_column=config.label_column)
    if splits.train.modality != spec.modality:
        raise DataError(f"{config.data} holds {splits.train.modality} data but {spec.name} is a "
                        f"{spec.modality} backbone")
    model = build_model(config, len(splits.classes))
    freeze = apply_freeze(model, config.freeze_policy)
    log(f"{spec.name}: {freeze.trainable:,} trainable / {freeze.frozen:,} frozen parameters "
        f"(frozen groups: {', '.join(freeze.frozen_groups) or 'none'})")
    log(f"data: {len(splits.train)} train / {len(splits.val)} val items, {len(splits.classes)} classes "
        f"({splits.source})")
    log(f"device: {device}, precision {config.precision}"
        + (f", {ctx.world_size} processes (global batch {config.batch_size})" if ctx.enabled else ""))
    if ctx.enabled and config.batch_size < ctx.world_size:
        raise UsageError(f"--batch-size {config.batch_size} is smaller than the {ctx.world_size} processes")
    # the best weights, the checkpoint (weights and AdamW's two moments) and one file's atomic copy
    need = 8 * (freeze.trainable + freeze.frozen) + 12 * freeze.trainable
    if ctx.is_main:
        outputs.check_space(run.path.absolute(), need, "the run directory")
    init_process_group(ctx, device)
    start = time.perf_counter()
    model.to(device)

    def batches(items: Any, what: str) -> Any:
        loader = make_loader(items, INFERENCE_BATCH, ctx, device, shard="none", num_workers=config.num_workers)
        return (to_device(b, device) for b in progress_bar(loader, f"caching {what} features", progress))

    plan = plan_cache(model, freeze.frozen_prefix, *_items(model, splits, config), enabled=config.cache_features,
                      augment=config.augment, device=device, spill_beside=run.path.absolute(), log=log,
                      batches=batches, head_features=config.epochs != "auto")
    created = False
    try:
        trainer = Trainer(config, splits, model, freeze, plan, run, ctx, device, precision, log, progress)
        with outputs.write_errors(run.path, need):
            if not resume and ctx.is_main:
                run.create(describe_run(trainer), getattr(model, "tokenizer_json", None))
                created = True
            if resume:
                trainer.restore()
                log(f"resuming after epoch {len(trainer.history)}")
            trainer.fit()
    except BaseException:
        if created and not trainer.history:  # nothing committed yet: leave no run behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    finally:
        plan.close()
    return FinetuneResult(
        run_dir=str(run.path), backbone=spec.name, task=spec.task, labels=list(splits.classes),
        best_epoch=trainer.best_epoch, best_val_accuracy=trainer.best_accuracy, epochs_run=len(trainer.history),
        stopped_early=trainer.stopped_early, trainable_params=freeze.trainable, frozen_params=freeze.frozen,
        seconds=time.perf_counter() - start, cache=plan.info.to_dict() if plan.info else None, rank=ctx.rank,
    )


def _versions() -> dict[str, str]:
    import numpy

    versions = {"edgeft": __version__, "python": platform.python_version(), "torch": torch.__version__,
                "numpy": numpy.__version__}
    try:
        import transformers

        versions["transformers"] = transformers.__version__
    except ImportError:
        pass
    return versions


def describe_run(trainer: Trainer) -> dict[str, Any]:
    """The run directory's config.json: what was trained, on what, how, and where."""
    m, f, config, splits = trainer.model, trainer.freeze, trainer.config, trainer.splits
    head = {"num_features": m.num_features, "num_classes": len(splits.classes), "dropout": getattr(m, "dropout", None)}
    if hasattr(m, "pooling"):
        head["pooling"] = m.pooling
    optimizer = ({"optimizer": "L-BFGS head fit (multinomial logistic regression, C=1, standardized features)",
                  "schedule": None} if trainer.head_fit else
                 {"optimizer": "AdamW", "schedule": "linear warmup + cosine"})
    return {
        "edgeft_version": __version__, "task": m.spec.task,
        "backbone": {"name": m.spec.name, "source": m.spec.source, "license": m.spec.license},
        "head": head,
        "freeze": {"policy": str(config.freeze_policy), "frozen_groups": list(f.frozen_groups),
                   "frozen_prefix": f.frozen_prefix, "groups": m.group_names,
                   "trainable_params": f.trainable, "frozen_params": f.frozen},
        "preprocessing": m.preprocessing.to_dict(),
        "labels": list(splits.classes),
        "data": {"path": config.data, "split": splits.source, "train_items": len(splits.train),
                 "val_items": len(splits.val), "train_class_counts": splits.train.class_counts()},
        "hyperparameters": {**config.to_dict(), "lr": trainer.lr, "epochs": trainer.epochs, **optimizer},
        "seed": config.seed,
        "device": {"device": str(trainer.device), "precision": config.precision, "processes": trainer.ctx.world_size},
        "versions": _versions(),
        "finetune_config": config.to_dict(),
    }
