"""The benchmark runner: one bundle in one process, driven by JSON lines on stdin.

Self-contained on purpose: stdlib, numpy and onnxruntime only, no edgeft import it cannot do
without. It is copied as-is (with ``_edgeft_cpu.py`` beside it) to remote devices and run under
emulation, where edgeft is not installed. Usage: ``python runner.py BUNDLE [FEEDS.npz]``.

Protocol: the runner answers each request line with one JSON line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``; it first sends ``{"ok": true, "ready": ..., "fingerprint": ...}``.
Requests: ``load`` (threads, provider), ``prepare`` (key, warmup), ``time`` (runs or min_time),
``golden``, ``stats``, ``quit``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnxruntime as ort

try:
    from edgeft.runtime.cpu import cpu_info
    from edgeft.runtime.sessions import open_session, providers_for
except ImportError:  # copied alone to a device: the same modules, staged beside this file
    from _edgeft_cpu import cpu_info  # type: ignore[no-redef]
    from _edgeft_sessions import open_session, providers_for  # type: ignore[no-redef]

PROTOCOL = 1
MAX_RUNS = 100_000


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size. Linux: ``VmHWM``, which starts afresh at exec
    (``ru_maxrss`` would carry the forking parent's peak); elsewhere ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def fingerprint(runtime: str, version: str, providers: list[str]) -> dict[str, Any]:
    """What a timing depends on besides the model: CPU, ISA, OS, Python and the runtime."""
    cpu = cpu_info()
    return {
        "arch": cpu.arch, "cpu": cpu.model, "cpu_id": cpu.ident, "cpu_features": list(cpu.features),
        "logical_cores": cpu.cores,
        "os": platform.platform(), "python": platform.python_version(), "runtime": runtime,
        "runtime_version": version, "available_providers": providers,
        "emulated": bool(os.environ.get("EDGEFT_EMULATED")),
        "emulated_cpu": os.environ.get("QEMU_CPU") if os.environ.get("EDGEFT_EMULATED") else None,
    }


def timed_runs(once: Callable[[], Any], runs: int | None, min_time: float | None, prewarm: int = 2) -> list[float]:
    """Seconds per call: ``runs`` calls, or calls until ``min_time`` seconds have passed (at least 3)."""
    for _ in range(prewarm):  # wake the thread pool and caches after another process ran
        once()
    times: list[float] = []
    clock = time.perf_counter
    total = 0.0
    while True:
        start = clock()
        once()
        elapsed = clock() - start
        times.append(elapsed)
        total += elapsed
        if runs is not None:
            if len(times) >= runs:
                return times
        elif (total >= (min_time or 0.0) and len(times) >= 3) or len(times) >= MAX_RUNS:
            return times


class TimedRunner:
    """What every runner shares once ``prepare`` has set ``once`` (one call on the prepared input)."""

    once: Callable[[], Any] | None = None

    def warm(self, warmup: int) -> dict[str, Any]:
        """Time the first call, then warm up."""
        start = time.perf_counter()
        self.once()  # type: ignore[misc]
        first = time.perf_counter() - start
        for _ in range(warmup):
            self.once()  # type: ignore[misc]
        return {"first_run_s": first}

    def time(self, runs: int | None = None, min_time: float | None = None, prewarm: int = 2) -> dict[str, Any]:
        if self.once is None:
            raise RuntimeError("prepare an input before timing")
        return {"times": timed_runs(self.once, runs, min_time, prewarm)}


class OrtRunner(TimedRunner):
    """Serves one bundle's ``model.onnx`` with onnxruntime."""

    def __init__(self, bundle: Path, feeds_file: Path | None) -> None:
        self.bundle = bundle  # a bundle folder, or a bare model file (no golden vectors then)
        self.manifest = json.loads((bundle / "edgeft.json").read_text(encoding="utf-8")) if bundle.is_dir() else {}
        self.feeds = dict(np.load(feeds_file)) if feeds_file else {}
        self.session: Any = None
        self.provider = "cpu"
        self.once: Callable[[], Any] | None = None

    def ready(self) -> dict[str, Any]:
        return {"ready": PROTOCOL, "fingerprint": fingerprint("onnxruntime", ort.__version__, ort.get_available_providers())}

    def load(self, threads: int, provider: str = "cpu") -> dict[str, Any]:
        providers = providers_for("cuda" if provider == "cuda" else "cpu")
        self.provider = provider
        self.session = None
        start = time.perf_counter()
        model = self.bundle / self.manifest.get("files", {}).get("model", "model.onnx") if self.manifest else self.bundle
        self.session = open_session(model, threads, providers)
        load_s = time.perf_counter() - start
        used = self.session.get_providers()
        if provider == "cuda" and "CUDAExecutionProvider" not in used and "TensorrtExecutionProvider" not in used:
            raise RuntimeError(f"onnxruntime did not take the CUDA provider (it runs on {used[0]})")
        return {"load_s": load_s, "providers": used}

    def _bind(self, feeds: dict[str, np.ndarray]) -> Callable[[], Any]:
        session = self.session
        if self.provider != "cuda":
            return lambda: session.run(None, feeds)
        # IO binding: inputs live on the GPU, outputs stay there, and each call waits for the device
        binding = session.io_binding()
        for name, value in feeds.items():
            binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0))
        for out in session.get_outputs():
            binding.bind_output(out.name, "cuda")

        def once() -> None:
            session.run_with_iobinding(binding)
            binding.synchronize_outputs()

        return once

    def prepare(self, key: str, warmup: int) -> dict[str, Any]:
        """Bind the input sets of one sweep point (``key/<set>/<input>``), time the first call, warm up."""
        names = [i.name for i in self.session.get_inputs()]
        sets = sorted({k.split("/")[1] for k in self.feeds if k.startswith(key + "/")}, key=int)
        if not sets:
            raise KeyError(f"no inputs for {key} in the feeds file")
        missing = [n for n in names if f"{key}/{sets[0]}/{n}" not in self.feeds]
        if missing:
            raise KeyError(f"no input {missing[0]!r} for {key} in the feeds file")
        calls = [self._bind({n: self.feeds[f"{key}/{s}/{n}"] for n in names}) for s in sets]
        if len(calls) == 1:
            self.once = calls[0]
        else:
            turn = iter(range(1 << 62))
            self.once = lambda: calls[next(turn) % len(calls)]()
        return self.warm(warmup)

    def golden(self) -> dict[str, Any]:
        """The bundle's golden inputs run as one batch, as the export ran them."""
        if not self.manifest:
            raise RuntimeError("a bare model file has no golden vectors")
        golden = np.load(self.bundle / self.manifest["golden"]["file"])
        names = [i.name for i in self.session.get_inputs()]
        if self.manifest.get("app"):  # what an app passes, one image at a time
            count = self.manifest["golden"]["count"]
            logits = np.concatenate([self.session.run(None, {"pixels": golden[f"image_{i}"]})[0] for i in range(count)])
            return {"logits": np.asarray(logits, dtype=np.float64).tolist()}
        if "crops" in golden.files:
            pre = self.manifest["preprocessing"]
            x = (golden["crops"].astype(np.float32) - np.asarray(pre["mean"], np.float32)) / np.asarray(pre["std"], np.float32)
            feeds = {names[0]: np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
        else:
            feeds = {n: golden[n] for n in names}
        logits = self.session.run(None, feeds)[0]
        return {"logits": np.asarray(logits, dtype=np.float64).tolist()}

    def outputs(self, key: str) -> dict[str, Any]:
        """The first output of each input set of ``key``, in set order: a candidate's numerics as
        this device computes them (export's confirmation)."""
        names = [i.name for i in self.session.get_inputs()]
        sets = sorted({k.split("/")[1] for k in self.feeds if k.startswith(key + "/")}, key=int)
        rows = [self.session.run(None, {n: self.feeds[f"{key}/{s}/{n}"] for n in names})[0] for s in sets]
        return {"logits": np.concatenate(rows).astype(np.float64).tolist()}

    def stats(self) -> dict[str, Any]:
        return {"peak_rss_bytes": peak_rss_bytes()}


def serve(runner: Any, stdin: Any = None, stdout: Any = None) -> None:
    """Answer requests until ``quit`` or the end of stdin. Errors are answered, never raised."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout

    def send(message: dict[str, Any]) -> None:
        stdout.write(json.dumps(message) + "\n")
        stdout.flush()

    send({"ok": True, **runner.ready()})
    for line in stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            command = request.pop("cmd")
            if command == "quit":
                send({"ok": True})
                return
            if command not in ("load", "prepare", "time", "golden", "outputs", "stats"):
                raise ValueError(f"unknown command {command!r}")
            send({"ok": True, **getattr(runner, command)(**request)})
        except Exception as exc:  # reported to the driver, which names the bundle and the step
            send({"ok": False, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"})


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if not args or len(args) > 2:
        sys.exit("usage: runner.py BUNDLE|MODEL.onnx [FEEDS.npz]")
    serve(OrtRunner(Path(args[0]), Path(args[1]) if len(args) > 1 else None))


if __name__ == "__main__":
    main()
