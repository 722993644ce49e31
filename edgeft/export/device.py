"""The device an export confirms on: a bench target (``qemu-arm64``, ``ssh://[user@]host[:port]``)
that reads its CPU and runs a candidate on held-out samples with its own onnxruntime, through the
bench's runner (plain onnxruntime and numpy there, nothing of edgeft)."""

from __future__ import annotations

import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgeft.errors import DeviceError, TargetError, UsageError
from edgeft.export.candidate import Candidate
from edgeft.export.inputs import Feeds, InputMaker
from edgeft.export.select import Judge
from edgeft.export.verify import accuracy
from edgeft.outputs import scratch
from edgeft.runtime.cpu import CpuInfo

DEVICE_TARGETS = ("qemu-arm64",)  # and ssh://[user@]host[:port]
KEY = "confirm"
_MISSING = re.compile(r"implementation for (\w+)\((\d+)\) node with name '([^']*)'")


def is_device(spec: str) -> bool:
    return spec in DEVICE_TARGETS or spec.startswith("ssh://")


class MissingOperatorError(UsageError):
    """The device's onnxruntime has no kernel for an operator of the graph (exit 2)."""


def _probe_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), path)
    return path


@dataclass
class Device:
    """A bench target used by export and the doctor; ``cpu`` and ``fingerprint`` are read there by ``probe``."""

    spec: str
    options: Any = None  # edgeft.bench.TargetOptions: the ssh config and remote Python, the emulator's root
    cpu: CpuInfo | None = field(default=None, init=False)
    fingerprint: dict[str, Any] = field(default_factory=dict, init=False)  # the runner's, read by probe

    def __post_init__(self) -> None:
        from edgeft.bench.targets import resolve_target

        self.target = resolve_target(self.spec, self.options)  # a bad ssh spec or a missing emulator: exit 2

    @property
    def where(self) -> str:
        return self.target.where

    @property
    def runtime_version(self) -> str:
        return self.fingerprint.get("runtime_version", "")

    @property
    def runtime(self) -> str:
        return f"{self.fingerprint['runtime']} {self.runtime_version}" if self.fingerprint else ""

    def _session(self, model: Path, sets: list[Feeds], work: Path, action: Callable[[Any], Any]) -> Any:
        from edgeft.bench.feeds import write_feeds
        from edgeft.bench.process import RunnerProcess

        feeds = work / "feeds.npz"
        write_feeds(feeds, {KEY: sets})
        self.target.open([model], feeds)
        try:
            launch = self.target.launch(0)
            process = RunnerProcess(model.name, launch.command, launch.env, where=self.where)
            try:
                return action(process)
            finally:
                process.close()
        finally:
            self.target.close()

    def probe(self) -> CpuInfo:
        """Reach the device and read its CPU and onnxruntime; unreachable: DeviceError (exit 2)."""
        with scratch("device") as tmp:
            try:
                fp = self._session(_probe_model(Path(tmp) / "probe.onnx"), [], Path(tmp),
                                   lambda p: p.ready["fingerprint"])
            except TargetError as exc:
                raise DeviceError(f"--target {self.spec}: cannot reach the device: {exc}") from None
        self.fingerprint = fp
        self.cpu = CpuInfo(arch=fp["arch"], model=fp["cpu"], cores=fp["logical_cores"],
                           features=tuple(fp["cpu_features"]), ident=fp.get("cpu_id", ""))
        return self.cpu

    def outputs(self, model: Path, sets: list[Feeds], threads: int = 0) -> np.ndarray:
        """``model``'s first output on each of ``sets``, computed on the device. An operator the
        device's onnxruntime lacks raises ``MissingOperatorError`` naming it."""

        def run(process: Any) -> np.ndarray:
            try:
                process.request("load", threads=threads)
            except TargetError as exc:
                found = _MISSING.search(str(exc))
                if found is None:
                    raise
                op, version, node = found.groups()
                raise MissingOperatorError(
                    f"{self.runtime or 'onnxruntime'} on {self.where} has no kernel for operator {op} "
                    f"(opset {version}, node {node!r}) of this graph") from None
            return np.asarray(process.request("outputs", key=KEY)["logits"], dtype=np.float32)

        with scratch("device") as tmp:
            return self._session(model, sets, Path(tmp), run)


class Confirmer:
    """A candidate kept here, run on the device over the first held-out samples: its accuracy (or
    agreement) there must meet the same budget, against float's on the same samples."""

    def __init__(self, device: Device, judge: Judge, items: Sequence[str], maker: InputMaker, samples: int,
                 log: Callable[[str], None]) -> None:
        self.device, self.log, self.numerics = device, log, judge.numerics
        self.count = min(samples, len(items))
        self.sets = [maker.feeds([item]) for item in items[:self.count]]
        labels = judge.labels[:self.count] if judge.labels else None
        reference = judge.reference[:self.count]
        self.judge = Judge([], reference, accuracy(reference, labels) if labels else None, labels, judge.max_drop)
        self.outputs: dict[int, np.ndarray] = {}  # by id() of the candidate

    def __call__(self, c: Candidate) -> bool:
        where = self.device.where
        self.log(f"confirming {c.name} on {where} ({self.count} held-out samples)")
        began = time.perf_counter()
        try:
            logits = self.device.outputs(c.path, self.sets)  # type: ignore[arg-type]
        except MissingOperatorError as exc:
            c.confirmation = {"where": where, "within_budget": False, "error": str(exc), "summary": str(exc)}
            self.log(f"not confirmed: {exc}")
            return False
        self.outputs[id(c)] = logits
        v = self.judge.assess(logits)
        gap = float(np.abs(logits - c.logits[:self.count]).max())  # type: ignore[index]
        summary = (f"{v.describe()} on {self.count} samples; max abs diff {gap:.3g} to the {self.numerics} numerics "
                   "judged here")
        c.confirmation = {"where": where, "runtime": self.device.runtime, "samples": self.count,
                          "accuracy": v.accuracy, "drop_points": v.drop_points,
                          "top1_agreement": v.comparison.top1_agreement, "max_abs_diff_to_judged": gap,
                          "within_budget": v.within_budget, "summary": summary,
                          "seconds": round(time.perf_counter() - began, 1)}
        self.log(("confirmed" if v.within_budget else "not confirmed") + f" on {where}: {summary}")
        return v.within_budget

    def golden_check(self, chosen: Candidate, picked: list[int], golden: dict[str, Any], stored: np.ndarray,
                     cautions: list[str]) -> dict[str, Any]:
        """The device's outputs for the golden samples against the stored ones (the judged
        numerics): the golden tolerance must hold there, else a warning says so."""
        device = self.outputs[id(chosen)][picked]
        gap = float(np.abs(device - stored).max())
        ok = gap <= golden["atol"] and device.argmax(-1).tolist() == golden["top1"]
        if not ok:
            cautions.append(f"the golden vectors differ from {self.device.where}'s outputs by {gap:.3g} "
                            f"(tolerance {golden['atol']:.3g}): `edgeft verify` there will report it")
            warnings.warn(cautions[-1], stacklevel=2)
        return {"where": self.device.where, "runtime": self.device.runtime, "max_abs_diff": gap, "within_tolerance": ok}
