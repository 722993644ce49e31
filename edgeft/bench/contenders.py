"""What a benchmark compares: bundles, bare model files shaped by the first bundle, and the
PyTorch baseline. Each kind is a small class behind one interface (``Contender``): its name,
the model file FLOPs are counted on, how its runner starts, whether it carries golden vectors,
and its entry in the report's ``bundles``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from edgeft.bench.process import RunnerProcess
from edgeft.bench.targets import Target
from edgeft.errors import UsageError
from edgeft.manifest import Manifest, checked_golden, read_manifest, sha256_file


class Contender:
    """What every kind answers. By default a contender is staged and launched by the target and
    carries no golden vectors; ``model_file`` is what FLOPs are counted on."""

    kind: ClassVar[str]  # the report's "kind": onnx, model or torch
    on_target: ClassVar[bool] = True  # staged and launched by the target (False: runs on this machine)
    name: str
    path: Path

    @property
    def model_file(self) -> Path:
        return self.path

    @property
    def golden(self) -> dict[str, Any] | None:
        return None

    def start(self, target: Target, index: int, feeds_file: Path) -> RunnerProcess:
        """The runner process: the ``index``-th bundle the target staged."""
        launch = target.launch(index)
        return RunnerProcess(self.name, launch.command, launch.env, where=target.where)

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass
class BundleContender(Contender):
    """An edgeft bundle: its manifest shapes the inputs and its golden vectors are checked."""

    kind: ClassVar[str] = "onnx"
    name: str
    path: Path
    manifest: Manifest

    @property
    def model_file(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def golden(self) -> dict[str, Any] | None:
        return self.manifest.golden

    def describe(self) -> dict[str, Any]:
        q, model = self.manifest.quantization, self.model_file
        return {"name": self.name, "kind": self.kind, "path": str(self.path), "task": self.manifest.task,
                "quantization": q.get("name", q.get("mode")), "mode": q.get("mode"),
                "model_file": self.manifest.model_file, "size_bytes": model.stat().st_size, "sha256": sha256_file(model)}


@dataclass
class ModelFileContender(Contender):
    """A bare .onnx file (a peer's export, say), fed what the first bundle is fed."""

    kind: ClassVar[str] = "model"
    name: str
    path: Path

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "path": str(self.path),
                "size_bytes": self.path.stat().st_size, "sha256": sha256_file(self.path)}


@dataclass
class TorchBaseline(Contender):
    """The float PyTorch model the first bundle was exported from, in eager mode on this machine.
    Its model file is the bundle's (the same work, for GFLOP/s)."""

    kind: ClassVar[str] = "torch"
    on_target: ClassVar[bool] = False
    name: str
    bundle: BundleContender

    @property
    def path(self) -> Path:  # type: ignore[override]
        return self.bundle.path

    @property
    def model_file(self) -> Path:
        return self.bundle.model_file

    def start(self, target: Target, index: int, feeds_file: Path) -> RunnerProcess:
        command = [sys.executable, "-m", "edgeft.bench.torch_runner", str(self.path), str(feeds_file)]
        return RunnerProcess(self.name, command, where=target.where)

    def describe(self) -> dict[str, Any]:
        source = self.bundle.manifest.source
        return {"name": self.name, "kind": self.kind,
                "source": source.get("run_dir") or source.get("backbone", {}).get("name")}


def contenders_of(paths: tuple[str, ...]) -> list[BundleContender | ModelFileContender]:
    """The bundles (and bare .onnx files after the first bundle) named on the command line."""
    found: list[BundleContender | ModelFileContender] = []
    for i, text in enumerate(paths):
        path = Path(text)
        bare = path.is_file() and path.suffix == ".onnx" and i > 0
        if not path.is_dir() and not bare:
            raise UsageError(f"{text} is not a bundle folder" + (" (a bare .onnx file may follow a bundle, whose "
                                                                  "manifest shapes the inputs)" if path.is_file() else ""))
        name = path.resolve().name
        if any(c.name == name for c in found):
            name = f"{name}#{len(found) + 1}"
        if bare:
            found.append(ModelFileContender(name, path))
            continue
        manifest = read_manifest(path)
        if manifest.golden:
            checked_golden(path, manifest)  # a changed golden file is refused before anything is timed
        found.append(BundleContender(name, path, manifest))
    first = found[0]
    assert isinstance(first, BundleContender)  # a bare file never comes first
    for c in found[1:]:
        if isinstance(c, BundleContender) and (c.manifest.task != first.manifest.task or
                                               [t.name for t in c.manifest.inputs] != [t.name for t in first.manifest.inputs]):
            raise UsageError(f"{c.name} does not take the same inputs as {first.name}; "
                             "bench different models in separate calls")
    return found
