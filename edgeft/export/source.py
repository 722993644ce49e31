"""What an export starts from: a fine-tune run directory, or a backbone with its own pretrained head."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from edgeft.backbones import Backbone
from edgeft.data import Dataset, load_dataset
from edgeft.errors import EdgeftError, RunDirError, UsageError
from edgeft.manifest import sha256_file

if TYPE_CHECKING:
    from edgeft.finetune import RunDir


@dataclass
class ExportSource:
    """A float PyTorch model in eval mode, with everything the manifest says about it."""

    model: Backbone
    labels: list[str]
    description: dict[str, Any]  # the manifest's ``source`` (without the exported model's hash)
    train: Dataset | None = None  # default calibration data
    val: Dataset | None = None  # labelled held-out data: parity and accuracy
    notes: list[str] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.model.spec.task

    @property
    def modality(self) -> str:
        return self.model.spec.modality

    @property
    def tokenizer_json(self) -> str | None:
        return getattr(self.model, "tokenizer_json", None)


def _run_data(run: RunDir, config: dict[str, Any], labels: list[str], log: Callable[[str], None]) -> tuple[Dataset | None, Dataset | None, list[str]]:
    """The run's own train and validation splits, re-created as fine-tuning made them."""
    ft = run.finetune_config(config)
    try:
        splits = load_dataset(ft.data, val_split=ft.val_split, seed=ft.seed, val_path=ft.val_data,
                              text_column=ft.text_column, label_column=ft.label_column)
    except EdgeftError as exc:
        note = f"the run's data is not readable here ({exc}); accuracy is not measured"
        log(f"warning: {note}")
        return None, None, [note]
    if list(splits.classes) != labels:
        note = f"the run's data at {ft.data} no longer has the run's classes; accuracy is not measured"
        log(f"warning: {note}")
        return None, None, [note]
    return splits.train, splits.val, []


def load_source(source: str, log: Callable[[str], None]) -> ExportSource:
    """A run directory (best weights, its labels and data), or a backbone name with its own head."""
    from edgeft.finetune import RunDir

    path = Path(source)
    run_dir = RunDir.find(path)
    if run_dir is not None:
        run = run_dir.load()
        train, val, notes = _run_data(run_dir, run.config, run.labels, log)
        description = {
            "kind": "run", "run_dir": str(path.resolve()), "backbone": run.config["backbone"],
            "weights_sha256": sha256_file(run_dir.weights_file), "run_config": run.config,
            "best_val_accuracy": run.metrics.get("best_val_accuracy"),
        }
        return ExportSource(run.model, run.labels, description, train, val, notes)
    if path.is_dir() and not RunDir(path).config_file.is_file():
        raise RunDirError(f"{source} is not a run directory (no {RunDir(path).config_file.name}); "
                          "fine-tune first, or name a backbone")
    from edgeft.backbones import backbone_spec, load_backbone

    try:
        spec = backbone_spec(source)
    except UsageError as exc:
        raise UsageError(f"SOURCE {source!r} is neither a run directory nor a backbone: {exc}") from None
    model = load_backbone(source).eval()
    if model.pretrained_labels is None:
        raise UsageError(f"backbone {spec.name} has no pretrained classification head to export; "
                         f"fine-tune it first (edgeft finetune --backbone {spec.name} ...) and export the run")
    description = {"kind": "backbone", "backbone": {"name": spec.name, "source": spec.source, "license": spec.license}}
    return ExportSource(model, list(model.pretrained_labels), description)
