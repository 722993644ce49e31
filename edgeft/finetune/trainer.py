"""The fine-tuning loop: AdamW, warmup + cosine, label smoothing, early stopping, best
checkpoint, resume, and the feature cache when the frozen part is a prefix. A head alone on
cached pooled features is fitted to convergence instead (``--epochs auto``, ``head_fit``)."""

from __future__ import annotations

import contextlib
import math
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from edgeft import __version__, outputs
from edgeft.backbones import Backbone, backbone_spec, load_backbone
from edgeft.data import DatasetSplits, load_dataset
from edgeft.errors import DataError, RunDirError, UsageError
from edgeft.finetune import run_dir as rd
from edgeft.finetune.cache import CachedStates, CacheInfo, compute_states
from edgeft.finetune.config import FinetuneConfig
from edgeft.finetune.device import Precision, resolve_device
from edgeft.finetune.distributed import (
    DistContext,
    GlobalBatchSampler,
    all_reduce_sum,
    broadcast_buffers,
    check_ranks_agree,
    context_from_env,
    init_process_group,
    strided_batches,
)
from edgeft.finetune.freezing import FreezeResult, apply_freeze, set_train_mode
from edgeft.finetune.head_fit import fit_linear_head
from edgeft.finetune.inputs import ImageItems, TextItems
from edgeft.runtime.preprocess import configure_tokenizer

Log = Callable[[str], None]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def build_model(config: FinetuneConfig, num_classes: int, pretrained: bool = True) -> Backbone:
    """The backbone with a fresh head, as the config describes (seeded for a reproducible head)."""
    torch.manual_seed(config.seed)
    return load_backbone(
        config.backbone,
        num_classes=num_classes,
        pretrained=pretrained,
        pooling=config.pooling,
        max_length=config.max_length,
        image_size=config.image_size,
        dropout=config.dropout,
    )


def _items(model: Backbone, splits: DatasetSplits, config: FinetuneConfig):
    if splits.train.modality == "image":
        return (ImageItems(splits.train, model.preprocessing, config.augment, config.seed),
                ImageItems(splits.val, model.preprocessing))
    from tokenizers import Tokenizer

    tokenizer = configure_tokenizer(Tokenizer.from_str(model.tokenizer_json), model.preprocessing)
    return TextItems(splits.train, model.preprocessing, tokenizer), TextItems(splits.val, model.preprocessing, tokenizer)


INFERENCE_BATCH = 8  # small batches run faster per item on CPU for these models (measured)


def _to(obj, device: torch.device):
    """Tensors in (nested) dicts, tuples and lists moved to ``device``."""
    if torch.is_tensor(obj):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: _to(v, device) for k, v in obj.items()}
    return type(obj)(_to(v, device) for v in obj) if isinstance(obj, (list, tuple)) else obj


class _Step(nn.Module):
    """What one training step runs, as a module so DistributedDataParallel can wrap it."""

    def __init__(self, model: Backbone, mode: str, prefix: int) -> None:
        super().__init__()
        self.model, self.mode, self.prefix = model, mode, prefix

    def forward(self, batch) -> torch.Tensor:  # noqa: ANN001
        if self.mode == "pooled":
            return self.model.head(batch[0])
        if self.mode == "prefix":
            return self.model.forward_from(tuple(batch), self.prefix)
        return self.model(**batch)


def _schedule(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, round(total_steps * warmup_ratio)) if warmup_ratio > 0 else 0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class _Trainer:
    """One run's state; ``fit`` runs the remaining epochs."""

    def __init__(self, config: FinetuneConfig, splits: DatasetSplits, model: Backbone, freeze: FreezeResult,
                 log: Log, progress: bool, ctx: DistContext, device: torch.device, precision: Precision) -> None:
        self.config, self.splits, self.model, self.freeze = config, splits, model, freeze
        self.ctx, self.device = ctx, device
        self.precision = precision
        self.log, self.progress = log, progress and ctx.is_main
        self.out = Path(config.output)
        model.to(device)
        self.train_items, self.val_items = _items(model, splits, config)
        self.cache_info: CacheInfo | None = None
        self.step = _Step(model, *self._plan_cache())
        self.head_fit = self.step.mode == "pooled" and config.epochs == "auto"
        self.epochs = config.resolved_epochs(self.head_fit)
        self.step_ddp: nn.Module = self.step
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.step_ddp = DistributedDataParallel(
                self.step, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in model.parameters() if p.requires_grad]
        self.lr = config.resolved_lr(freeze.head_only, splits.train.modality)
        self.optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=config.weight_decay)
        steps = self.epochs * math.ceil(len(self.train_items) / config.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(steps, config.warmup_ratio))
        self.scaler = self.precision.scaler()
        self.history: list[dict[str, Any]] = []
        self.best_accuracy, self.best_loss, self.best_epoch, self.bad_epochs = -1.0, math.inf, 0, 0
        self.stopped_early = False
        self.digest: str | None = None  # the ranks' common weights digest (distributed runs)

    # -- the feature cache -------------------------------------------------------------------
    def _loader(self, items, shuffle: bool, epoch: int = 0, batch_size: int | None = None,
                shard: str = "slice") -> DataLoader:
        """Batches in the single-process order. ``shard``: ``slice`` gives this rank its slice
        of every batch (training), ``stride`` every world_size-th whole batch (evaluation),
        ``none`` every batch (the feature cache: each rank caches all items)."""
        rank, world = (self.ctx.rank, self.ctx.world_size) if shard != "none" else (0, 1)
        batch_size = batch_size or self.config.batch_size
        if shard == "stride":
            sampler = strided_batches(len(items), batch_size, rank, world)
        else:
            sampler = GlobalBatchSampler(len(items), batch_size, self.config.seed * 1000 + epoch, shuffle, rank, world)
        cached = isinstance(items, CachedStates)
        return DataLoader(items, batch_sampler=sampler, num_workers=0 if cached else self.config.num_workers,
                          pin_memory=self.device.type == "cuda")

    def _plan_cache(self) -> tuple[str, int]:
        prefix, n_groups = self.freeze.frozen_prefix, len(self.model.groups())
        full = ("full", 0)
        if not self.config.cache_features:
            self.log("feature cache: off (--no-cache-features)")
            return full
        if self.config.augment:
            self.log("feature cache: off, because --augment changes the inputs every epoch")
            return full
        if prefix == 0:
            self.log("feature cache: off, no frozen prefix to cache")
            return full
        pooled = prefix == n_groups
        start = time.perf_counter()
        set_train_mode(self.model)  # frozen groups in eval mode, as during training
        caches = []
        for items, what in ((self.train_items, "train"), (self.val_items, "val")):
            batches = self._loader(items, shuffle=False, batch_size=INFERENCE_BATCH, shard="none")
            batches = (_to(b, self.device) for b in self._bar(batches, f"caching {what} features"))
            caches.append(compute_states(self.model, batches, len(items), prefix, pooled, self.out.absolute()))
        self.train_items, self.val_items = caches
        self.cache_info = CacheInfo(
            prefix_groups=prefix, pooled=pooled, items=sum(len(c) for c in caches),
            bytes=sum(c.nbytes for c in caches),
            storage="disk" if caches[0].spill_dir else "memory", seconds=time.perf_counter() - start,
        )
        where = "pooled features" if pooled else f"the output of the first {prefix} groups"
        self.log(f"feature cache: {where} of {self.cache_info.items} items, "
                 f"{self.cache_info.bytes / 2**20:.1f} MiB in {self.cache_info.storage}, "
                 f"{self.cache_info.seconds:.1f} s")
        return ("pooled", prefix) if pooled else ("prefix", prefix)

    def close(self) -> None:
        for items in (self.train_items, self.val_items):
            if isinstance(items, CachedStates):
                items.close()

    # -- epochs ------------------------------------------------------------------------------
    def _bar(self, iterable, desc: str):
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, leave=False, disable=None if self.progress else True, unit="batch")

    def _train_epoch(self, epoch: int) -> float:
        torch.manual_seed(self.config.seed * 1000 + epoch)  # dropout: same draws after --resume
        if isinstance(self.train_items, ImageItems):
            self.train_items.epoch = epoch
        set_train_mode(self.model)
        total, count = 0.0, 0
        loader = self._loader(self.train_items, shuffle=True, epoch=epoch)
        global_sizes = [len(b) for b in loader.batch_sampler.global_batches()]
        bar = self._bar(loader, f"epoch {epoch}/{self.epochs}")
        for (inputs, labels), global_size in zip(bar, global_sizes, strict=False):
            inputs, labels = _to(inputs, self.device), torch.as_tensor(labels).to(self.device)
            with self.precision.autocast():
                logits = self.step_ddp(inputs)
            loss_sum = nn.functional.cross_entropy(logits.float(), labels, reduction="sum",
                                                   label_smoothing=self.config.label_smoothing)
            # DDP averages gradients over ranks: scale so the result is the global batch's mean
            loss = loss_sum * (self.ctx.world_size / global_size)
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self.optimizer.step()
            self.scheduler.step()
            total += loss_sum.item()
            count += len(labels)
            bar.set_postfix(loss=f"{total / count:.4f}")
        total, count = all_reduce_sum([total, count], self.device)
        return total / count

    def _fit_head(self) -> tuple[float, dict[str, Any]]:
        """The head fitted to convergence on the cached pooled training features."""
        cache = self.train_items
        assert isinstance(cache, CachedStates)
        fit = fit_linear_head(cache.tensors[0], cache.labels, len(self.splits.classes))
        fit.load_into(self.model.get_classifier())
        self.log(f"head fitted to convergence: L-BFGS, {fit.iterations} iterations, {fit.seconds:.2f} s"
                 + ("" if fit.converged else " (iteration limit reached)"))
        return fit.train_loss, fit.info()

    @torch.no_grad()
    def evaluate(self) -> tuple[float, float]:
        self.model.eval()
        loss, correct, count = 0.0, 0, 0
        for inputs, labels in self._loader(self.val_items, shuffle=False, batch_size=INFERENCE_BATCH, shard="stride"):
            inputs, labels = _to(inputs, self.device), torch.as_tensor(labels).to(self.device)
            with self.precision.autocast():
                logits = self.step(inputs).float()
            loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(-1) == labels).sum())
            count += len(labels)
        loss, correct, count = all_reduce_sum([loss, correct, count], self.device)
        return loss / count, correct / count

    def fit(self) -> None:
        start_epoch = len(self.history) + 1
        for epoch in range(start_epoch, self.epochs + 1):
            if self.stopped_early:
                break
            start = time.perf_counter()
            head_fit = None
            if self.head_fit:
                train_loss, head_fit = self._fit_head()
            else:
                train_loss = self._train_epoch(epoch)
            broadcast_buffers(self.model)  # evaluate and save with rank 0's BatchNorm statistics
            val_loss, val_accuracy = self.evaluate()
            seconds = time.perf_counter() - start
            self.history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                                 "val_accuracy": val_accuracy, "seconds": seconds,
                                 "lr": None if head_fit else self.scheduler.get_last_lr()[0],
                                 **({"head_fit": head_fit} if head_fit else {})})
            # better accuracy, or the same accuracy at a lower loss (ties are common on small sets)
            improved = val_accuracy > self.best_accuracy or (
                val_accuracy == self.best_accuracy and val_loss < self.best_loss)
            if improved:
                self.best_accuracy, self.best_loss, self.best_epoch, self.bad_epochs = val_accuracy, val_loss, epoch, 0
            else:
                self.bad_epochs += 1
            if self.config.patience and self.bad_epochs >= self.config.patience:
                self.stopped_early = True
            if self.ctx.enabled:
                self.digest = check_ranks_agree(self.model)
            self.log(f"epoch {epoch}/{self.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                     f"val accuracy {val_accuracy:.4f}{' (best)' if improved else ''}, {seconds:.2f} s")
            if self.ctx.is_main:
                self._save(improved)
        if self.stopped_early:
            self.log(f"early stop: no better val accuracy (or loss at equal accuracy) for {self.config.patience} epochs")

    # -- the run directory -------------------------------------------------------------------
    def run_config(self) -> dict[str, Any]:
        m, f = self.model, self.freeze
        head = {"num_features": m.num_features, "num_classes": len(self.splits.classes),
                "dropout": getattr(m, "dropout", None)}
        if hasattr(m, "pooling"):
            head["pooling"] = m.pooling
        return {
            "format": "edgeft-run", "edgeft_version": __version__, "task": m.spec.task,
            "backbone": {"name": m.spec.name, "source": m.spec.source, "license": m.spec.license},
            "head": head,
            "freeze": {"policy": str(self.config.freeze_policy), "frozen_groups": list(f.frozen_groups),
                       "frozen_prefix": f.frozen_prefix, "groups": m.group_names,
                       "trainable_params": f.trainable, "frozen_params": f.frozen},
            "preprocessing": m.preprocessing.to_dict(),
            "labels": list(self.splits.classes),
            "data": {"path": self.config.data, "split": self.splits.source,
                     "train_items": len(self.splits.train), "val_items": len(self.splits.val),
                     "train_class_counts": self.splits.train.class_counts()},
            "hyperparameters": {**self.config.to_dict(), "lr": self.lr, "epochs": self.epochs,
                                **({"optimizer": "L-BFGS head fit (multinomial logistic regression, C=1, "
                                                 "standardized features)", "schedule": None} if self.head_fit else
                                   {"optimizer": "AdamW", "schedule": "linear warmup + cosine"})},
            "seed": self.config.seed,
            "device": {"device": str(self.device), "precision": self.config.precision,
                       "processes": self.ctx.world_size},
            "versions": _versions(),
            "finetune_config": self.config.to_dict(),
        }

    def metrics(self) -> dict[str, Any]:
        return {"epochs": self.history, "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best_accuracy, "stopped_early": self.stopped_early,
                "trainable_params": self.freeze.trainable, "frozen_params": self.freeze.frozen,
                "cache": asdict(self.cache_info) if self.cache_info else None,
                "processes": self.ctx.world_size, "ranks_weights_sha256": self.digest}

    def write_config(self, folder: Path) -> None:
        """The run directory's first contents, written before the first epoch."""
        rd.write_json(folder / rd.CONFIG, self.run_config())
        if hasattr(self.model, "tokenizer_json"):
            rd.write_text(folder / rd.TOKENIZER, self.model.tokenizer_json)

    def _save(self, improved: bool) -> None:
        """Commit the epoch: the checkpoint in one rename, then the files derived from it."""
        weights = self.model.state_dict()
        opt_tensors, opt_info = rd.optimizer_tensors(self.optimizer)
        state = {"epoch": len(self.history), "best_accuracy": self.best_accuracy, "best_loss": self.best_loss,
                 "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "stopped_early": self.stopped_early,
                 "optimizer": opt_info, "scheduler": self.scheduler.state_dict(), "metrics": self.metrics()}
        rd.save_checkpoint(self.out / rd.LAST, {**{f"model.{k}": v for k, v in weights.items()}, **opt_tensors}, state)
        self._derive(state, weights)

    def _derive(self, state: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        """``metrics.json`` and ``model.safetensors`` as the committed checkpoint says (a repair on resume)."""
        rd.write_json(self.out / rd.METRICS, state["metrics"])
        best = state["best_epoch"]
        if best == state["epoch"] and rd.weights_epoch(self.out / rd.WEIGHTS) != best:
            rd.save_weights(self.out / rd.WEIGHTS, weights, {"format": "edgeft-run", "epoch": str(best)})

    def restore(self) -> None:
        """Continue from the checkpoint of an interrupted run (from epoch 1 if none was committed)."""
        if not (self.out / rd.LAST).is_file():
            self.log("no epoch was committed before the interruption; starting at epoch 1")
            return
        tensors, state = rd.load_checkpoint(self.out / rd.LAST)
        if state is None:  # a run written before the checkpoint held its state
            state = {**rd.read_json(self.out / rd.STATE), "metrics": rd.read_json(self.out / rd.METRICS)}
        weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        try:
            self.model.load_state_dict(weights)
            rd.restore_optimizer(self.optimizer, tensors, state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.history = list(state["metrics"]["epochs"][: state["epoch"]])
            self.best_accuracy, self.best_loss = state["best_accuracy"], state["best_loss"]
            self.best_epoch, self.bad_epochs, self.stopped_early = state["best_epoch"], state["bad_epochs"], state["stopped_early"]
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise RunDirError(f"{self.out}: checkpoint does not fit this run ({str(exc).splitlines()[0]})") from None
        if self.ctx.is_main:
            self._derive({**state, "metrics": self.metrics()}, {k: v for k, v in weights.items()})


def _quiet(_: str) -> None:
    pass


RESUME_MAY_CHANGE = ("device", "num_workers", "output")  # options a resumed run may take anew


def finetune(config: FinetuneConfig, *, resume: bool = False, log: Log = _quiet, progress: bool = False,
             given: dict[str, Any] | None = None) -> FinetuneResult:
    """Fine-tune ``config.backbone`` on ``config.data`` into the run directory ``config.output``.

    Everything is validated before the first byte is written. The run directory appears before
    the first epoch with its config and is locked while the run writes it; each epoch commits
    in one step. ``resume=True`` continues the run stored in ``config.output``; ``given`` are
    the options the user set for it (they must agree with the run's, except ``RESUME_MAY_CHANGE``).
    """
    out = Path(config.output)
    ctx = context_from_env()
    with outputs.OutputLock(out.absolute()) if ctx.is_main else contextlib.nullcontext():
        if ctx.is_main:
            outputs.reap(out.absolute().parent, out.name)
            for folder in (out, (out / rd.LAST).parent):
                outputs.reap(folder)
        return _finetune(config, out, ctx, resume, log, progress, given or {})


def _resumed_config(out: Path, given: dict[str, Any]) -> FinetuneConfig:
    stored = rd.read_json(out / rd.CONFIG) if (out / rd.CONFIG).exists() else None
    if stored is None:
        raise RunDirError(f"{out} holds no run to resume (no {rd.CONFIG})")
    try:
        stored_config = dict(stored["finetune_config"])
    except (KeyError, TypeError, ValueError):
        raise RunDirError(f"{out / rd.CONFIG} is not an edgeft run config") from None
    changed = [f"--{k.replace('_', '-')} {v} (the run has {stored_config.get(k)})" for k, v in given.items()
               if k not in RESUME_MAY_CHANGE and stored_config.get(k) != v]
    if changed:
        raise UsageError(f"--resume continues the run as it was configured; {', '.join(changed)}: drop the option, "
                         "or start a new run with -o elsewhere")
    return FinetuneConfig.from_dict({**stored_config, **{k: v for k, v in given.items() if k in RESUME_MAY_CHANGE},
                                     "output": str(out)})


def _finetune(config: FinetuneConfig, out: Path, ctx: DistContext, resume: bool, log: Log, progress: bool,
              given: dict[str, Any]) -> FinetuneResult:
    if not ctx.is_main:
        log, progress = _quiet, False
    if resume:
        config = _resumed_config(out, given)
    else:
        rd.check_new_run_dir(out)
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
        outputs.check_space(out.absolute(), need, "the run directory")
    init_process_group(ctx, device)
    start = time.perf_counter()
    trainer = _Trainer(config, splits, model, freeze, log, progress, ctx, device, precision)
    created = False
    try:
        with outputs.write_errors(out, need):
            if not resume and ctx.is_main:
                rd.create_run_dir(out, trainer.write_config)
                created = True
            if resume:
                trainer.restore()
                log(f"resuming after epoch {len(trainer.history)}")
            trainer.fit()
    except BaseException:
        if created and not trainer.history:  # nothing committed yet: leave no run behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        trainer.close()
    return FinetuneResult(
        run_dir=str(out), backbone=spec.name, task=spec.task, labels=list(splits.classes),
        best_epoch=trainer.best_epoch, best_val_accuracy=trainer.best_accuracy, epochs_run=len(trainer.history),
        stopped_early=trainer.stopped_early, trainable_params=freeze.trainable, frozen_params=freeze.frozen,
        seconds=time.perf_counter() - start, cache=asdict(trainer.cache_info) if trainer.cache_info else None,
    )
