"""The PyTorch eager baseline (``--baseline torch``): the bundle's source model, served with the
runner's protocol in its own process. The only place the bench imports torch.

Usage: ``python -m edgeft.bench.torch_runner BUNDLE FEEDS.npz``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from edgeft.bench.runner import TimedRunner, fingerprint, peak_rss_bytes, serve
from edgeft.errors import UsageError
from edgeft.manifest import read_manifest, sha256_file


def load_source_model(bundle: Path) -> Any:
    """The float PyTorch model the bundle was exported from: its run's best weights, or the
    backbone with its pretrained head. Refuses a run whose weights changed since the export."""
    from edgeft.backbones import load_backbone
    from edgeft.finetune import RunDir

    source = read_manifest(bundle).source
    if source.get("kind") == "backbone":
        return load_backbone(source["backbone"]["name"])
    run = RunDir(source.get("run_dir", ""))
    if not run.weights_file.is_file():
        raise UsageError(f"--baseline torch: the bundle's run {run.path} is not on this machine")
    if source.get("weights_sha256") and sha256_file(run.weights_file) != source["weights_sha256"]:
        raise UsageError(f"--baseline torch: the weights in {run.path} changed since the bundle was exported")
    return RunDir.open(run.path).load().model


class TorchRunner(TimedRunner):
    def __init__(self, bundle: Path, feeds_file: Path) -> None:
        import torch

        self.torch = torch
        self.bundle = bundle
        self.feeds = dict(np.load(feeds_file))
        self.model: Any = None
        self.device = "cpu"
        self.once: Callable[[], Any] | None = None

    def ready(self) -> dict[str, Any]:
        return {"ready": 1, "fingerprint": fingerprint("torch", self.torch.__version__, ["eager"])}

    def load(self, threads: int, provider: str = "cpu") -> dict[str, Any]:
        torch = self.torch
        if provider == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("torch sees no CUDA device")
        self.device = "cuda" if provider == "cuda" else "cpu"
        torch.set_num_threads(max(1, threads))
        start = time.perf_counter()
        self.model = load_source_model(self.bundle).float().eval().to(self.device)
        return {"load_s": time.perf_counter() - start, "providers": [f"torch-eager-{self.device}"]}

    def prepare(self, key: str, warmup: int) -> dict[str, Any]:
        torch = self.torch
        sets = sorted({k.split("/")[1] for k in self.feeds if k.startswith(key + "/")}, key=int)
        if not sets:
            raise KeyError(f"no inputs for {key} in the feeds file")
        prefix = [f"{key}/{s}/" for s in sets]
        inputs = [{k[len(p):]: torch.from_numpy(v).to(self.device) for k, v in self.feeds.items() if k.startswith(p)}
                  for p in prefix]
        sync = torch.cuda.synchronize if self.device == "cuda" else (lambda: None)
        model, turn = self.model, iter(range(1 << 62))

        def once() -> None:
            with torch.inference_mode():
                model(**inputs[next(turn) % len(inputs)])
            sync()

        self.once = once
        return self.warm(warmup)

    def golden(self) -> dict[str, Any]:
        raise RuntimeError("the torch baseline has no golden check")

    def stats(self) -> dict[str, Any]:
        return {"peak_rss_bytes": peak_rss_bytes()}


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m edgeft.bench.torch_runner BUNDLE FEEDS.npz")
    serve(TorchRunner(Path(sys.argv[1]), Path(sys.argv[2])))
