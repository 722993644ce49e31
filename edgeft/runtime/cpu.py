"""What this CPU can do for quantized kernels: model name and ISA flags (stdlib only).

Used by export (to choose a recipe that is exact here), bench (fingerprints) and doctor.
``cpu_info()`` is the one reader of this machine's CPU; ``PROFILES`` are the CPU classes a bundle
can be made for (the targets ``x86-avx2``, ``x86-vnni`` and ``arm64`` use them, and the test suite
replaces the reader by one of them: ``EDGEFT_TEST_CPU``).
"""

from __future__ import annotations

import os
import platform
from dataclasses import asdict, dataclass, replace
from typing import Any

_X86_FLAGS = {"avx2": "avx2", "avx512f": "avx512", "avx512_vnni": "avx512_vnni", "avx_vnni": "avx_vnni",
              "amx_int8": "amx"}
_ARM_FLAGS = {"asimddp": "dotprod", "i8mm": "i8mm", "sve": "sve"}


@dataclass(frozen=True)
class CpuInfo:
    """The machine's architecture, CPU model, logical cores and the ISA features that matter.

    ``ident`` tells apart CPUs that share a marketing name (a VM's "AMD EPYC" may be Zen 1 with
    128-bit AVX units or Zen 3 with 256-bit ones: twice the GEMM speed): x86 family/model/stepping,
    ARM implementer/part."""

    arch: str
    model: str
    cores: int
    features: tuple[str, ...]
    ident: str = ""

    @property
    def vnni(self) -> bool:
        return "avx512_vnni" in self.features or "avx_vnni" in self.features

    @property
    def u8s8_saturates(self) -> bool:
        """x86 without VNNI multiplies u8 by s8 in pairs summed to int16 (``vpmaddubsw``): large
        activations times large weights saturate. 7-bit weights (reduce_range) avoid it."""
        return self.arch in ("x86_64", "amd64") and not self.vnni

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features)}


_IDENT_KEYS = {"cpu family": "family", "model": "model", "stepping": "stepping",
               "cpu implementer": "implementer", "cpu part": "part", "cpu variant": "variant"}


def _cpuinfo() -> tuple[str, set[str], str]:
    model, flags, ident = "", set(), {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                if key in ("model name", "cpu model", "hardware") and not model:
                    model = value.strip()
                elif key in ("flags", "features") and not flags:
                    flags = set(value.split())
                elif key in _IDENT_KEYS and _IDENT_KEYS[key] not in ident:
                    ident[_IDENT_KEYS[key]] = value.strip()
    except OSError:
        pass
    return model, flags, " ".join(f"{k} {v}" for k, v in ident.items())


def _arm_hwcaps() -> set[str]:
    """aarch64 Linux: the kernel's HWCAP bits (what an emulator or a container's cpuinfo may not list)."""
    try:
        import ctypes

        getauxval = ctypes.CDLL(None).getauxval
        getauxval.restype = ctypes.c_ulong
        hwcap, hwcap2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    except (OSError, AttributeError):
        return set()
    found = set()
    if hwcap & (1 << 20):
        found.add("asimddp")
    if hwcap & (1 << 22):
        found.add("sve")
    if hwcap2 & (1 << 13):
        found.add("i8mm")
    return found


def cpu_info() -> CpuInfo:
    """This machine's CPU: ``/proc/cpuinfo`` where there is one (Linux), elsewhere what ``platform``
    says. Every decision about this machine's kernels reads it here, through ``_read_host``."""
    return _read_host()


# The CPU classes whose INT8 kernels differ in what they compute exactly (``cpu_class``), as generic
# profiles: what export, the doctor and verify decide for a class depends on these fields alone.
PROFILES: dict[str, CpuInfo] = {
    "x86-avx2": CpuInfo("x86_64", "x86 with AVX2, without VNNI", 1, ("avx2",), "generic"),
    "x86-vnni": CpuInfo("x86_64", "x86 with AVX-512 VNNI or AVX-VNNI", 1, ("avx2", "avx512", "avx512_vnni"), "generic"),
    "arm64": CpuInfo("aarch64", "generic ARMv8-A (onnxruntime's ARM kernels)", 1, ("dotprod",), "generic"),
}


def profile(name: str, cores: int) -> CpuInfo:
    """The generic CPU of class ``name`` (a key of ``PROFILES``) with ``cores`` logical cores."""
    return replace(PROFILES[name], cores=cores)


def cpu_class(cpu: CpuInfo) -> str:
    """The class whose INT8 numerics ``cpu`` has: ``x86-avx2`` (u8s8 saturates; any x86 without
    VNNI), ``x86-vnni``, ``arm64``, or the architecture's own name for anything else."""
    if cpu.arch in ("x86_64", "amd64"):
        return "x86-avx2" if cpu.u8s8_saturates else "x86-vnni"
    if cpu.arch in ("aarch64", "arm64"):
        return "arm64"
    return cpu.arch or "unknown"


def _read_host() -> CpuInfo:
    arch = platform.machine().lower()
    model, flags, ident = _cpuinfo()
    if arch in ("aarch64", "arm64") and platform.system() == "Linux":
        flags |= _arm_hwcaps()
    table = _X86_FLAGS if arch in ("x86_64", "amd64") else _ARM_FLAGS
    features = tuple(sorted({name for flag, name in table.items() if flag in flags}))
    return CpuInfo(arch=arch, model=model or platform.processor() or arch, cores=os.cpu_count() or 1,
                   features=features, ident=ident)
