"""The device class a bundle is made for, and what that decides for quantization.

A target names the CPU profile whose kernels run the bundle (which recipes are exact there) and the
numerics that judge a candidate's accuracy on this machine:

- ``host``: this machine's own onnxruntime kernels (the target is this CPU);
- ``simulated``: exact int8 arithmetic, which ARM, VNNI and GPU kernels compute, reproduced on an x86
  CPU whose u8s8 kernels saturate by re-encoding the int8 weights as uint8 (the same values), which
  its fused kernels compute exactly (``edgeft.export.exact_int8``: bit-identical to onnxruntime's
  aarch64 kernels on the measured models). Static and dynamic recipes get 8-bit weights there.

A target may also name a device to confirm on (``qemu-arm64``, ``ssh://[user@]host[:port]``,
``edgeft.export.device``): its CPU is read there, and the candidate kept must also meet the budget
on a sample of the held-out set run with the device's own onnxruntime.

The rules live here and nowhere else, one preset per target (as optimum's
``AutoQuantizationConfig.arm64()/avx2()/avx512_vnni()``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from edgeft.errors import UnknownNameError
from edgeft.registry import Registry
from edgeft.runtime.cpu import CpuInfo, cpu_info

NUMERICS = ("host", "simulated")


@dataclass(frozen=True)
class QuantTarget:
    """A device class: its CPU profile and the numerics that judge accuracy here."""

    name: str
    description: str
    cpu: CpuInfo
    numerics: str
    device: str | None = None  # the bench target that confirms (edgeft.export.device)

    def __post_init__(self) -> None:
        if self.numerics not in NUMERICS:
            raise ValueError(f"unknown numerics {self.numerics!r}")

    @property
    def simulated(self) -> bool:
        return self.numerics == "simulated"

    def reduce_range(self, mode: str) -> bool:
        """7-bit weights for an INT8 ``mode``: where the target's u8s8 kernels saturate."""
        return mode in ("dynamic", "static") and self.cpu.u8s8_saturates

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "numerics": self.numerics,
                "cpu": self.cpu.to_dict(), "device": self.device}


def _exact_numerics(host: CpuInfo) -> str:
    """An exact target's numerics here: this machine's kernels where they are exact too."""
    return "simulated" if host.u8s8_saturates else "host"


TARGETS: Registry[Callable[[CpuInfo], QuantTarget]] = Registry("target")


@TARGETS.register("cpu")
def _this_cpu(host: CpuInfo) -> QuantTarget:
    return QuantTarget("cpu", f"this machine ({host.model})", host, "host")


@TARGETS.register("arm64")
def _arm64(host: CpuInfo) -> QuantTarget:
    cpu = CpuInfo("aarch64", "generic ARMv8-A (onnxruntime's ARM kernels)", host.cores, ("dotprod",), "generic")
    return QuantTarget("arm64", "ARM64 phones and boards: exact int8 arithmetic", cpu, _exact_numerics(host))


@TARGETS.register("x86-vnni")
def _x86_vnni(host: CpuInfo) -> QuantTarget:
    cpu = CpuInfo("x86_64", "x86 with AVX-512 VNNI or AVX-VNNI", host.cores, ("avx2", "avx512", "avx512_vnni"), "generic")
    return QuantTarget("x86-vnni", "x86 CPUs with VNNI: exact int8 arithmetic", cpu, _exact_numerics(host))


@TARGETS.register("qemu-arm64")
def _qemu_arm64(host: CpuInfo) -> QuantTarget:
    arm = _arm64(host)
    return replace(arm, name="qemu-arm64", device="qemu-arm64",
                   description=arm.description + "; confirmed under emulation (QEMU, onnxruntime's aarch64 wheel)")


def check_target(name: str) -> None:
    """An unknown target: one UsageError naming the known ones."""
    if name.startswith("ssh://"):
        return
    try:
        TARGETS.get(name)
    except UnknownNameError as exc:
        raise UnknownNameError(f"{str(exc)[:-1]}; or ssh://[user@]host[:port].") from None


def resolve_target(name: str, host: CpuInfo | None = None) -> QuantTarget:
    """The target registered as ``name`` (an UnknownNameError lists the known ones)."""
    return TARGETS.get(name)(host or cpu_info())


def device_target(spec: str, device_cpu: CpuInfo, host: CpuInfo) -> QuantTarget:
    """The target of a device read over ``spec`` (its CPU as its runner reports it): its kernels'
    rules, judged here with simulated exact numerics where they are exact, and confirmed there."""
    exact = not device_cpu.u8s8_saturates
    numerics = _exact_numerics(host) if exact else "host"
    kind = "exact int8 arithmetic" if exact else "u8s8 kernels that saturate with 8-bit weights"
    return QuantTarget(spec, f"{device_cpu.model} ({device_cpu.arch}), read over {spec}: {kind}", device_cpu,
                       numerics, device=spec)
