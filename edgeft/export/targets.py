"""The device class a bundle is made for, and what that decides for quantization.

A target names the CPU profile whose kernels run the bundle (which recipes are exact there) and the
numerics that judge a candidate's accuracy on this machine:

- ``host``: this machine's own onnxruntime kernels (the target is this CPU, or ``x86-avx2``, whose
  recipes use 7-bit or uint8 weights that every x86 and ARM kernel computes exactly);
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
from edgeft.runtime.cpu import CpuInfo, cpu_class, cpu_info, profile

NUMERICS = ("host", "simulated")


@dataclass(frozen=True)
class QuantTarget:
    """A device class: its CPU profile and the numerics that judge accuracy here."""

    name: str
    description: str
    cpu: CpuInfo
    numerics: str
    device: str | None = None  # the bench target that confirms (edgeft.export.device)
    # the full-range repair (8-bit weights on chosen nodes of a 7-bit recipe) is judged here as the target
    # computes it: not where the target's u8s8 kernels saturate and this machine's do not
    full_range_judged: bool = True

    def __post_init__(self) -> None:
        if self.numerics not in NUMERICS:
            raise ValueError(f"unknown numerics {self.numerics!r}")

    @property
    def simulated(self) -> bool:
        return self.numerics == "simulated"

    def reduce_range(self, mode: str) -> bool:
        """7-bit weights for an INT8 ``mode``: where the target's u8s8 kernels saturate."""
        return mode in ("dynamic", "static") and self.cpu.u8s8_saturates

    @property
    def cpu_class(self) -> str:
        """The class of kernels the bundle is made for (``x86-avx2``, ``x86-vnni``, ``arm64``...):
        for ``cpu``, the class this machine was when the bundle was made."""
        return cpu_class(self.cpu)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "class": self.cpu_class, "description": self.description,
                "numerics": self.numerics, "cpu": self.cpu.to_dict(), "device": self.device}


def _exact_numerics(host: CpuInfo) -> str:
    """An exact target's numerics here: this machine's kernels where they are exact too."""
    return "simulated" if host.u8s8_saturates else "host"


TARGETS: Registry[Callable[[CpuInfo], QuantTarget]] = Registry("target")


@TARGETS.register("cpu")
def _this_cpu(host: CpuInfo) -> QuantTarget:
    return QuantTarget("cpu", f"this machine ({host.model}, {cpu_class(host)})", host, "host")


@TARGETS.register("arm64")
def _arm64(host: CpuInfo) -> QuantTarget:
    return QuantTarget("arm64", "ARM64 phones and boards: exact int8 arithmetic", profile("arm64", host.cores),
                       _exact_numerics(host))


@TARGETS.register("x86-vnni")
def _x86_vnni(host: CpuInfo) -> QuantTarget:
    return QuantTarget("x86-vnni", "x86 CPUs with VNNI: exact int8 arithmetic", profile("x86-vnni", host.cores),
                       _exact_numerics(host))


@TARGETS.register("x86-avx2")
def _x86_avx2(host: CpuInfo) -> QuantTarget:
    """x86 without VNNI, whose u8s8 kernels saturate with 8-bit weights: its recipes keep weights to
    7 bits (or uint8), on which no kernel saturates, so every host computes them as it does."""
    return QuantTarget("x86-avx2", "x86 CPUs with AVX2 and no VNNI: u8s8 kernels saturate, so INT8 weights are "
                       "7-bit (or uint8)", profile("x86-avx2", host.cores), "host",
                       full_range_judged=host.u8s8_saturates)


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
                       numerics, device=spec, full_range_judged=exact or host.u8s8_saturates)
