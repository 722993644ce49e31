"""The target's CPU as the bench's runner reads it there (this machine, an ssh device, QEMU)."""

from __future__ import annotations

from pathlib import Path

from edgeft.runtime.cpu import CpuInfo


def target_cpu(target: str, bundle: Path | None) -> tuple[CpuInfo, str | None, list[str] | None]:
    """CPU facts, onnxruntime version and providers of ``target`` (None, None for a profile: read
    here). A device (ssh, QEMU, cuda) is read with ``edgeft.export.device.Device``, for a bundle
    only, as ``edgeft doctor --help`` says."""
    from edgeft.export.device import Device, is_device
    from edgeft.export.targets import TARGETS, resolve_target

    if target in TARGETS and not is_device(target):
        return resolve_target(target).cpu, None, None
    if bundle is None:
        from edgeft.errors import UsageError

        raise UsageError(f"--target {target} needs a bundle: export first, then `edgeft doctor BUNDLE --target {target}`")
    device = Device(target)
    cpu = device.probe()
    return cpu, device.runtime_version, device.fingerprint["available_providers"]
