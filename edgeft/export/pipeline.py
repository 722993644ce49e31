"""``edgeft export``: source → ONNX → optimised → quantized (with fallbacks) → verified → bundle."""

from __future__ import annotations

import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft import __version__
from edgeft.backbones import Backbone
from edgeft.data import sample_data_path
from edgeft.data.unlabelled import read_samples
from edgeft.errors import UsageError
from edgeft.export.app_bundle import make_app
from edgeft.export.bundle import BundleWriter
from edgeft.export.cache import Cache
from edgeft.export.config import ExportConfig, QuantizeRecipe
from edgeft.export.convert import DEFAULT_OPSET
from edgeft.export.convert import float_graph as to_float_graph
from edgeft.export.device import Confirmer, Device, is_device
from edgeft.export.golden import pick, write_golden
from edgeft.export.inputs import Feeds, InputMaker
from edgeft.export.optimize import op_counts
from edgeft.export.preflight import preflight
from edgeft.export.qat import QatGraphs, QatPlan
from edgeft.export.refit import HeadRefit
from edgeft.export.select import Builder, Judge, Selection, fastest, with_fallbacks
from edgeft.export.selection_report import write_selection_report
from edgeft.export.source import ExportSource, load_source
from edgeft.export.targets import QuantTarget, device_target, resolve_target
from edgeft.export.verify import FLOAT_TOLERANCE, accuracy, check_parity, onnx_logits, torch_logits
from edgeft.manifest import MODEL, TOKENIZER, Manifest, TensorSpec, sha256_file, write_manifest
from edgeft.outputs import Output, check_space, write_errors
from edgeft.runtime.cpu import cpu_info

Log = Callable[[str], None]
BATCH = 8
REFIT_SAMPLES = 512  # training samples the head refit and QAT see at most (their feeds stay in memory)
QAT_BATCH = 32
MIN_SAMPLES = 32  # fewer calibration or unlabelled judging samples than this get a warning
_DTYPES = {"tensor(float)": "float32", "tensor(int64)": "int64", "tensor(float16)": "float16", "tensor(int32)": "int32"}


@dataclass
class ExportResult:
    bundle: Path
    manifest: Manifest
    float_size_bytes: int
    size_bytes: int
    seconds: float
    selection: Selection | None = None

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {"bundle": str(self.bundle), "task": m.task, "quantization": m.quantization["name"],
                "size_bytes": self.size_bytes, "float_size_bytes": self.float_size_bytes,
                "size_ratio": self.size_bytes / self.float_size_bytes, "seconds": round(self.seconds, 2),
                "verification": m.verification,
                "attempts": [c.to_dict() for c in self.selection.candidates] if self.selection else []}


def _silent(_: str) -> None:
    pass


@dataclass
class _HeldOut:
    items: list[str]
    labels: list[int] | None
    origin: str


def _held_out(source: ExportSource, calibration: list[str] | None, limit: int) -> _HeldOut:
    """Labelled validation samples where the source has them; else unlabelled ones."""
    if source.val is not None and len(source.val):
        return _HeldOut(list(source.val.items[:limit]), list(source.val.labels[:limit]), "the run's validation split")
    if calibration:
        return _HeldOut(calibration[:limit], None, "the calibration data (unlabelled)")
    _, items = read_samples(sample_data_path(source.modality))
    step = max(1, len(items) // limit)
    return _HeldOut(items[::step][:limit], None, "edgeft's bundled sample data (unlabelled)")


def _calibration_items(config: ExportConfig, source: ExportSource) -> list[str] | None:
    if config.calibration_data:
        modality, items = read_samples(config.calibration_data)
        if modality != source.modality:
            raise UsageError(f"--calibration-data {config.calibration_data} holds {modality} samples; "
                             f"{source.model.spec.name} takes {source.modality}")
    elif source.train is not None:
        items = list(source.train.items)
    else:
        return None
    if len(items) > config.calibration_samples:
        rng = np.random.default_rng(config.seed)
        items = [items[i] for i in sorted(rng.choice(len(items), config.calibration_samples, replace=False))]
    return items


def _tensor_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    from edgeft.export.verify import session

    sess = session(path)

    def spec(value) -> TensorSpec:  # noqa: ANN001
        return TensorSpec(value.name, _DTYPES.get(value.type, value.type), list(value.shape))

    return [spec(v) for v in sess.get_inputs()], [spec(v) for v in sess.get_outputs()]


def _versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"edgeft": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__}


def export_bundle(config: ExportConfig, log: Log = _silent) -> ExportResult:
    """Export ``config.source`` to a verified bundle at ``config.output``; nothing is written on failure.

    The output is locked from the start (a second export to it fails at once); all work happens
    in its temporary folder beside it, and the bundle replaces any old one in one rename."""
    start = time.perf_counter()
    with BundleWriter(config.output, config.force) as slot:
        return _export_into(slot, config, log, start)


def _export_into(slot: Output, config: ExportConfig, log: Log, start: float) -> ExportResult:
    cpu = cpu_info()
    device = _reach(config, log)  # before any work: an unreachable device is exit 2 with nothing written
    target = (device_target(config.target, device.cpu, cpu) if device is not None and config.target.startswith("ssh://")
              else resolve_target(config.target, cpu))  # type: ignore[arg-type]
    recipe = config.recipe(target)
    source = load_source(config.source, log)
    if target.name != "cpu":
        log(f"target {target.name}: {target.description}; accuracy judged with "
            + ("this machine's kernels" if target.numerics == "host" else
               "exact int8 arithmetic reproduced here (int8 weights re-encoded as uint8, which this CPU computes "
               "exactly)"))
        if target.simulated and device is None:
            log("not confirmed on a device: --target qemu-arm64 or ssh://host runs the kept candidate there too")
    calibration = _calibration_items(config, source)
    if recipe.mode == "static" and not calibration:
        raise UsageError(f"--quantize static needs calibration samples: {config.source} has no training data; "
                         "pass --calibration-data PATH")
    maker = InputMaker(source.model.preprocessing, source.tokenizer_json)
    held_out = _held_out(source, calibration, config.eval_samples)
    cautions = _too_few_samples(recipe.mode == "static" or config.auto, calibration, held_out)
    batches = list(maker.batches(held_out.items, BATCH))
    model = source.model
    need = _space_needed(model, config.auto)
    check_space(Path(config.output).absolute().parent, need, "the export")
    with write_errors(Path(config.output), need):
        work, folder = slot.work, slot.result
        log(f"exporting {model.spec.name} to ONNX (opset {config.opset or DEFAULT_OPSET})")

        def float_graph(model: Backbone, name: str) -> Path:
            return to_float_graph(model, work, name, source.modality, config.opset)

        float_path = float_graph(model, "float")
        reference = torch_logits(model, batches)
        float_logits = onnx_logits(float_path, batches)
        parity = check_parity(reference, float_logits)
        log(f"float ONNX matches PyTorch on {parity.samples} samples of {held_out.origin}: "
            f"max abs diff {parity.max_abs_diff:.2g}, top-1 agreement {parity.top1_agreement:.0%}")
        float_accuracy = accuracy(reference, held_out.labels) if held_out.labels else None
        float_size = float_path.stat().st_size
        wants_calibration = recipe.mode == "static" or config.auto
        same_shape = config.auto or recipe.calibration_method != "minmax"  # entropy/percentile stack activations
        calibration_batches = (list(maker.batches(calibration, BATCH, same_shape)) if calibration and wants_calibration
                               else None)
        refit = (_head_refit(source, float_path, maker, target, config.head_refit == "always", log)
                 if config.head_refit != "never" and (recipe.quantized or config.auto) else None)
        judge = Judge(batches, reference, float_accuracy, held_out.labels, config.max_accuracy_drop, target.numerics)
        qat = (_qat(source, maker, float_graph, config.qat == "always", log)
               if config.qat != "never" and (recipe.mode == "static" or config.auto) else None)
        builder = Builder(float_path, work, calibration_batches, judge, log, refit, Cache() if config.auto else None, qat)
        latency_sets = [maker.feeds([item]) for item in held_out.items[:8]]
        confirmer = Confirmer(device, judge, held_out.items, maker, config.confirm_samples, log) if device else None
        selection = _select(config, recipe, builder, target, source.modality, latency_sets, log, confirmer)
        selection.cautions = cautions
        chosen = selection.chosen
        chosen_path = chosen.path
        shutil.copyfile(chosen_path, folder / MODEL)
        if source.tokenizer_json is not None:
            (folder / TOKENIZER).write_text(source.tokenizer_json, encoding="utf-8")
        picked = pick(chosen.logits[:confirmer.count] if confirmer else chosen.logits)  # type: ignore[index]
        golden = write_golden(folder, folder / MODEL, maker, [held_out.items[i] for i in picked], chosen.recipe.mode,
                              target.numerics)
        if confirmer is not None:
            stored = np.load(folder / golden["file"])["logits"]
            golden["device"] = confirmer.golden_check(chosen, picked, golden, stored, cautions)
        inputs, outputs = _tensor_specs(folder / MODEL)
        manifest = Manifest(
            task=source.task, labels=source.labels, inputs=inputs, outputs=outputs,
            preprocessing=model.preprocessing.to_dict(),
            quantization={**chosen.info, "calibration_samples": len(calibration) if calibration_batches else 0,
                          "requested": "auto" if config.auto else recipe.name,
                          "selection": {"strategy": selection.strategy, "seconds": round(selection.seconds, 1),
                                        "repair": selection.repair,
                                        **({"report": "doctor.md"} if config.auto else {})},
                          "attempts": [c.to_dict() for c in selection.candidates],
                          "budget": "validation accuracy drop" if float_accuracy is not None
                          else "top-1 disagreement with PyTorch (no labels)",
                          "cpu": cpu.to_dict(), "target": target.to_dict(), "warnings": cautions},
            verification={
                "held_out": held_out.origin, "samples": len(held_out.items), "tolerance": FLOAT_TOLERANCE,
                "float_vs_torch": parity.to_dict(), "exported_vs_torch": chosen.comparison.to_dict(),
                "accuracy": None if float_accuracy is None else {
                    "float": float_accuracy, "exported": chosen.accuracy, "drop_points": chosen.drop_points,
                    "max_drop_points": config.max_accuracy_drop},
            },
            source={**source.description, **_positions(model), "opset": config.opset or DEFAULT_OPSET,
                    "exporter": "optimum-onnx" if source.modality == "text" else "torch.onnx (dynamo)",
                    "edgeft_version": __version__, "versions": _versions(), "notes": source.notes,
                    "export_config": config.to_dict(), "model_sha256": sha256_file(folder / MODEL)},
            golden=golden, files={"model": MODEL, **({"tokenizer": TOKENIZER} if source.tokenizer_json else {}),
                                  "golden": golden["file"]},
        )
        write_manifest(folder, manifest)
        if config.auto:
            write_selection_report(selection, folder)
        if config.app:
            (work / "app").mkdir()
            manifest = make_app(folder, work / "app", log=log)
        size = (folder / MODEL).stat().st_size
    return ExportResult(Path(config.output), manifest, float_size, size, time.perf_counter() - start, selection)


def _positions(model: Backbone) -> dict[str, int]:
    """A text model's position count (the runtime refuses a max_length beyond it)."""
    positions = getattr(getattr(getattr(model, "encoder", None), "config", None), "max_position_embeddings", None)
    return {"max_positions": int(positions)} if isinstance(positions, int) else {}


def _space_needed(model: Backbone, auto: bool) -> int:
    """Bytes an export needs beside its output: the float graph twice (exported, optimised), the
    candidates (a quarter each for INT8; --quantize auto builds up to six) and the bundle."""
    float_bytes = sum(p.numel() for p in model.parameters()) * 4
    return int(float_bytes * (3 + (1.5 if auto else 0.5)))


def _too_few_samples(calibrated: bool, calibration: list[str] | None, held_out: _HeldOut) -> list[str]:
    """Warnings (on stderr, and kept in the manifest) when the figures rest on too few samples."""
    cautions = []
    if calibrated and calibration and len(calibration) < MIN_SAMPLES:
        cautions.append(f"static INT8 is calibrated on {len(calibration)} samples; activation ranges need at least "
                        f"{MIN_SAMPLES} (pass more with --calibration-data)")
    if held_out.labels is None and len(held_out.items) < MIN_SAMPLES:
        cautions.append(f"INT8 is judged by top-1 agreement on {len(held_out.items)} unlabelled samples, where one sample "
                        f"is {100 / len(held_out.items):.0f} points: the figure is noise below {MIN_SAMPLES} samples")
    for line in cautions:
        warnings.warn(line, stacklevel=2)
    return cautions


def _head_refit(source: ExportSource, float_path: Path, maker: InputMaker, target: QuantTarget, always: bool,
                log: Log) -> HeadRefit | None:
    """The data of a head refit, for a run whose backbone was frozen (only the head trained), whose
    training split is readable here and whose graph ends in a head the refit handles."""
    import onnx

    from edgeft.export.refit import head_node

    freeze = source.description.get("run_config", {}).get("freeze", {})
    if source.train is None or not len(source.train) or not freeze or freeze.get("frozen_groups") != freeze.get("groups"):
        return None
    if head_node(onnx.load(str(float_path))) is None:
        return None
    items, labels = list(source.train.items[:REFIT_SAMPLES]), list(source.train.labels[:REFIT_SAMPLES])
    log(f"head refit: {'every INT8 recipe' if always else 'an INT8 recipe that misses the budget is tried again'} "
        f"with the head refitted on its own features of {len(items)} training samples ({target.numerics} numerics)")
    return HeadRefit(list(maker.batches(items, BATCH)), labels, target.numerics, always)


def _qat(source: ExportSource, maker: InputMaker, float_graph: Callable[[Backbone, str], Path], always: bool,
         log: Log) -> QatGraphs | None:
    """Quantization-aware fine-tunes, for a run that trained backbone groups and whose labelled
    training split is readable here (``edgeft.export.qat``)."""
    freeze = source.description.get("run_config", {}).get("freeze", {})
    trained = tuple(g for g in freeze.get("groups", []) if g not in freeze.get("frozen_groups", []))
    if source.train is None or not len(source.train) or not trained:
        return None
    items, labels = list(source.train.items[:REFIT_SAMPLES]), list(source.train.labels[:REFIT_SAMPLES])
    batches = [(maker.feeds(items[i:i + QAT_BATCH]), labels[i:i + QAT_BATCH]) for i in range(0, len(items), QAT_BATCH)]
    log(f"quantization-aware fine-tune: {'every static recipe' if always else 'a static recipe that misses the budget'}"
        f" is tried again from {', '.join(trained)} fine-tuned under fake quantization on {len(items)} training samples")
    return QatGraphs(QatPlan(source.model, trained, batches, always=always), float_graph, log)


def _reach(config: ExportConfig, log: Log) -> Device | None:
    """The device of a ``qemu-arm64`` or ``ssh://`` target, reached and read; None for a profile."""
    if not is_device(config.target):
        return None
    from edgeft.bench.targets import TargetOptions

    device = Device(config.target, TargetOptions(ssh_config=config.ssh_config, remote_python=config.remote_python))
    log(f"reaching {device.where} to read its CPU and onnxruntime")
    cpu = device.probe()
    log(f"device: {cpu.model} ({cpu.arch}), {device.runtime}")
    return device


def _select(config: ExportConfig, recipe: QuantizeRecipe, builder: Builder, target: QuantTarget, modality: str, latency_sets: list[Feeds], log: Log, confirm: Confirmer | None = None) -> Selection:
    """The requested recipe with its fallbacks, or for ``--quantize auto`` the fastest of the
    candidates the target's preflight allows; with a device, the kept one is confirmed there."""
    if not config.auto:
        return with_fallbacks(recipe, builder, log, confirm)
    pre = preflight(target.cpu, modality, op_counts(builder.float_path))
    for line in pre.findings:
        log(f"preflight: {line}")
    if target.name != "cpu":
        log(f"latency is measured on this machine, not on {target.name}: the choice among accurate candidates "
            "follows this CPU's speed")
    selection = fastest(pre, builder, latency_sets, target.cpu.cores, log, confirm=confirm)
    log(f"chose {selection.chosen.name} ({selection.chosen.latency_ms:.2f} ms) in {selection.seconds:.0f} s")
    return selection
