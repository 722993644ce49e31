"""The target's CPU as the bench's runner reads it there (this machine, an ssh device, QEMU)."""

from __future__ import annotations

from pathlib import Path

from edgeft.runtime.cpu import CpuInfo, cpu_info


def target_cpu(target: str, bundle: Path | None) -> tuple[CpuInfo, str | None, list[str] | None]:
    """CPU facts, onnxruntime version and providers of ``target``; remote targets need a bundle
    to start the runner with (None for this machine: read here)."""
    from edgeft.export.device import is_device
    from edgeft.export.targets import TARGETS, resolve_target

    if target in TARGETS and not is_device(target):
        return resolve_target(target).cpu, None, None
    if bundle is None:
        from edgeft.errors import UsageError

        raise UsageError(f"--target {target} needs a bundle: export first, then `edgeft doctor BUNDLE --target {target}`")
    import tempfile

    import numpy as np

    from edgeft.bench.process import RunnerProcess
    from edgeft.bench.targets import resolve_target

    t = resolve_target(target)
    with tempfile.TemporaryDirectory(prefix="edgeft-doctor-") as tmp:
        feeds = Path(tmp) / "feeds.npz"
        np.savez(feeds)  # no inputs: the runner is asked for its fingerprint only
        t.open([bundle], feeds)
        try:
            launch = t.launch(0)
            process = RunnerProcess(bundle.name, launch.command, launch.env, where=t.where)
            fp = process.ready["fingerprint"]
            process.close()
        finally:
            t.close()
    cpu = CpuInfo(arch=fp["arch"], model=fp["cpu"], cores=fp["logical_cores"], features=tuple(fp["cpu_features"]),
                  ident=fp.get("cpu_id", ""))
    return cpu, fp["runtime_version"], fp["available_providers"]
