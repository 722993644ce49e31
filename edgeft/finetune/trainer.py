"""The training loop: AdamW, warmup + cosine, label smoothing, early stopping, the best epoch
kept, resume. It runs on what ``cache.plan_cache`` planned: the whole model, the layers after a
cached frozen prefix, or, for a head alone on pooled features with ``--epochs auto``, a head
fitted to convergence (``head_fit``); with ``--epochs N`` there, the N epochs start from that fit."""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import torch
from torch import nn

from edgeft.backbones import Backbone
from edgeft.data import DatasetSplits
from edgeft.finetune.batches import INFERENCE_BATCH, make_loader, progress_bar, to_device
from edgeft.finetune.cache import CachedStates, CachePlan
from edgeft.finetune.config import FinetuneConfig
from edgeft.finetune.device import Precision
from edgeft.finetune.distributed import DistContext, all_reduce_sum, broadcast_buffers, check_ranks_agree
from edgeft.finetune.freezing import FreezeResult, set_train_mode
from edgeft.finetune.head_fit import fit_linear_head
from edgeft.finetune.inputs import ImageItems
from edgeft.finetune.run_dir import RunDir

Log = Callable[[str], None]


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


class Trainer:
    """One run's training state over ``plan``; ``fit`` runs the remaining epochs and commits
    each to ``run`` (on the main process)."""

    def __init__(self, config: FinetuneConfig, splits: DatasetSplits, model: Backbone, freeze: FreezeResult,
                 plan: CachePlan, run: RunDir, ctx: DistContext, device: torch.device, precision: Precision,
                 log: Log, progress: bool) -> None:
        self.config, self.splits, self.model, self.freeze, self.plan, self.run = config, splits, model, freeze, plan, run
        self.ctx, self.device, self.precision = ctx, device, precision
        self.log, self.progress = log, progress and ctx.is_main
        self.step = _Step(model, plan.mode, plan.prefix)
        self.head_fit = plan.mode == "pooled" and config.epochs == "auto"
        # --epochs N for a head alone (cache or not): N AdamW epochs from the convergent fit. From a
        # fresh head, minibatch AdamW needs ~50 epochs to reach it (digits: 88% after 8 against 90.8%,
        # whatever the learning rate; benchmarks/finetune_quality.py), so the epochs refine the fit instead.
        self.warm_start = plan.head_features is not None and config.epochs != "auto"
        self.head_init: dict[str, Any] | None = None
        self.epochs = config.resolved_epochs(self.head_fit)
        self.step_ddp: nn.Module = self.step
        if ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            self.step_ddp = DistributedDataParallel(
                self.step, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in model.parameters() if p.requires_grad]
        self.lr = config.resolved_lr(freeze.head_only, splits.train.modality)
        self.optimizer = torch.optim.AdamW(params, lr=self.lr, weight_decay=config.weight_decay)
        steps = self.epochs * math.ceil(len(plan.train) / config.batch_size)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _schedule(steps, config.warmup_ratio))
        self.scaler = self.precision.scaler()
        self.history: list[dict[str, Any]] = []
        self.best_accuracy, self.best_loss, self.best_epoch, self.bad_epochs = -1.0, math.inf, 0, 0
        self.stopped_early = False
        self.digest: str | None = None  # the ranks' common weights digest (distributed runs)

    # -- epochs ------------------------------------------------------------------------------
    def _train_epoch(self, epoch: int) -> float:
        torch.manual_seed(self.config.seed * 1000 + epoch)  # dropout: same draws after --resume
        if isinstance(self.plan.train, ImageItems):
            self.plan.train.epoch = epoch
        set_train_mode(self.model)
        total, count = 0.0, 0
        loader = make_loader(self.plan.train, self.config.batch_size, self.ctx, self.device, shuffle=True,
                             seed=self.config.seed * 1000 + epoch, num_workers=self.config.num_workers)
        global_sizes = [len(b) for b in loader.batch_sampler.global_batches()]
        bar = progress_bar(loader, f"epoch {epoch}/{self.epochs}", self.progress)
        for (inputs, labels), global_size in zip(bar, global_sizes, strict=False):
            inputs, labels = to_device(inputs, self.device), torch.as_tensor(labels).to(self.device)
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
        """The head fitted to convergence on the pooled training features (``plan.head_features``)."""
        cache = self.plan.head_features
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
        for inputs, labels in make_loader(self.plan.val, INFERENCE_BATCH, self.ctx, self.device, shard="stride",
                                      num_workers=self.config.num_workers):
            inputs, labels = to_device(inputs, self.device), torch.as_tensor(labels).to(self.device)
            with self.precision.autocast():
                logits = self.step(inputs).float()
            loss += nn.functional.cross_entropy(logits, labels, reduction="sum").item()
            correct += int((logits.argmax(-1) == labels).sum())
            count += len(labels)
        loss, correct, count = all_reduce_sum([loss, correct, count], self.device)
        return loss / count, correct / count

    def fit(self) -> None:
        if self.warm_start and not self.history:
            _, self.head_init = self._fit_head()
            self.log(f"then {self.epochs} AdamW epochs from the fitted head (lr {self.lr:g})")
        for epoch in range(len(self.history) + 1, self.epochs + 1):
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
                self.run.commit_epoch(self.model.state_dict(), self.optimizer, self._state())
        if self.stopped_early:
            self.log(f"early stop: no better val accuracy (or loss at equal accuracy) for {self.config.patience} epochs")

    # -- what the run directory keeps --------------------------------------------------------
    def metrics(self) -> dict[str, Any]:
        info = self.plan.info
        return {"epochs": self.history, "best_epoch": self.best_epoch,
                "best_val_accuracy": self.best_accuracy, "stopped_early": self.stopped_early,
                "trainable_params": self.freeze.trainable, "frozen_params": self.freeze.frozen,
                "cache": info.to_dict() if info else None, "head_init": self.head_init,
                "processes": self.ctx.world_size, "ranks_weights_sha256": self.digest}

    def _state(self) -> dict[str, Any]:
        return {"epoch": len(self.history), "best_accuracy": self.best_accuracy, "best_loss": self.best_loss,
                "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "stopped_early": self.stopped_early,
                "scheduler": self.scheduler.state_dict(), "metrics": self.metrics()}

    def restore(self) -> None:
        """Continue from the checkpoint of an interrupted run (from epoch 1 if none was committed)."""
        restored = self.run.restore(self.model, self.optimizer)
        if restored is None:
            self.log("no epoch was committed before the interruption; starting at epoch 1")
            return
        state, weights = restored
        try:
            self.scheduler.load_state_dict(state["scheduler"])
            self.history = list(state["metrics"]["epochs"][: state["epoch"]])
            self.best_accuracy, self.best_loss = state["best_accuracy"], state["best_loss"]
            self.best_epoch, self.bad_epochs, self.stopped_early = state["best_epoch"], state["bad_epochs"], state["stopped_early"]
            self.head_init = state["metrics"].get("head_init")
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise self.run.unfit(exc) from None
        if self.ctx.is_main:
            self.run.derive({**state, "metrics": self.metrics()}, weights)
