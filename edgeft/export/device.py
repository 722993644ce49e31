"""The device an export confirms on: a bench target (``qemu-arm64``, ``ssh://[user@]host[:port]``)
that reads its CPU and runs a candidate on held-out samples with its own onnxruntime, through the
bench's runner (plain onnxruntime and numpy there, nothing of edgeft)."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft.errors import DeviceError, TargetError, UsageError
from edgeft.export.inputs import Feeds
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
    """A bench target used by export; ``cpu`` and ``runtime`` are read there by ``probe``."""

    spec: str
    options: Any = None  # edgeft.bench.TargetOptions: the ssh config and remote Python, the emulator's root
    cpu: CpuInfo | None = field(default=None, init=False)
    runtime: str = field(default="", init=False)

    def __post_init__(self) -> None:
        from edgeft.bench.targets import resolve_target

        self.target = resolve_target(self.spec, self.options)  # a bad ssh spec or a missing emulator: exit 2

    @property
    def where(self) -> str:
        return self.target.where

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
        with tempfile.TemporaryDirectory(prefix="edgeft-device-") as tmp:
            try:
                fp = self._session(_probe_model(Path(tmp) / "probe.onnx"), [], Path(tmp),
                                   lambda p: p.ready["fingerprint"])
            except TargetError as exc:
                raise DeviceError(f"--target {self.spec}: cannot reach the device: {exc}") from None
        self.cpu = CpuInfo(arch=fp["arch"], model=fp["cpu"], cores=fp["logical_cores"],
                           features=tuple(fp["cpu_features"]), ident=fp.get("cpu_id", ""))
        self.runtime = f"{fp['runtime']} {fp['runtime_version']}"
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

        with tempfile.TemporaryDirectory(prefix="edgeft-device-") as tmp:
            return self._session(model, sets, Path(tmp), run)
