"""Where a bundle is timed: ``@register_target(name)`` on a class that stages files and says how
to start a runner there. ``cpu`` and ``cuda`` run here; ``ssh://[user@]host[:port]`` copies the
bundle and the runner to a device; ``qemu-arm64`` runs the runner under user-mode QEMU."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from edgeft.errors import DeviceError, TargetError, UsageError
from edgeft.manifest import GOLDEN, MANIFEST, read_manifest
from edgeft.outputs import scratch
from edgeft.registry import Registry

RUNNER = Path(__file__).with_name("runner.py")
CPU_MODULE = Path(__file__).resolve().parent.parent / "runtime" / "cpu.py"
SESSIONS_MODULE = CPU_MODULE.with_name("sessions.py")
ARM64_ROOT_ENV = "EDGEFT_ARM64_ROOT"


@dataclass(frozen=True)
class TargetOptions:
    """Settings some targets take: the ssh config file and remote Python; the emulator's root and core."""

    ssh_config: str | None = None
    remote_python: str = "python3"
    arm64_root: str | None = None
    # QEMU's own default core, "max", advertises SVE and i8mm; with it onnxruntime's INT8 MiniLM
    # gave garbage under QEMU 7.2 here (cortex-a72 and neoverse-n1 agree with x86 and float)
    qemu_cpu: str | None = "neoverse-n1"


@dataclass(frozen=True)
class Launch:
    """How to start one runner: its command line and environment (None: inherit)."""

    command: list[str]
    env: dict[str, str] | None = None


TARGETS: Registry[Callable[[str, TargetOptions], "Target"]] = Registry("target")


def register_target(name: str) -> Callable[[type], type]:
    return TARGETS.register(name)


def _stage_runner(folder: Path) -> None:
    """The runner and the two runtime modules it imports (the CPU reader and the session factory),
    ready to run where edgeft is not installed."""
    shutil.copy2(RUNNER, folder / "runner.py")
    shutil.copy2(CPU_MODULE, folder / "_edgeft_cpu.py")
    shutil.copy2(SESSIONS_MODULE, folder / "_edgeft_sessions.py")


def _bundle_files(bundle: Path) -> list[Path]:
    if bundle.is_file():  # a bare model file
        return [bundle]
    manifest = read_manifest(bundle)
    return [bundle / MANIFEST, bundle / manifest.model_file, bundle / manifest.golden.get("file", GOLDEN)]


class Target:
    """A place to run benchmarks. ``open`` stages what the runners need, ``launch`` starts one
    runner per bundle, ``close`` removes what was staged."""

    name = "cpu"
    provider = "cpu"
    emulated = False
    local = True

    def __init__(self, spec: str, options: TargetOptions) -> None:
        self.spec, self.options = spec, options

    @property
    def where(self) -> str:
        return "this machine"

    def open(self, bundles: list[Path], feeds: Path) -> None:
        self.bundles, self.feeds = bundles, feeds

    def launch(self, index: int) -> Launch:
        return Launch([sys.executable, str(RUNNER), str(self.bundles[index]), str(self.feeds)])

    def close(self) -> None:
        pass


@register_target("cpu")
class CpuTarget(Target):
    """onnxruntime's CPU provider, on this machine."""


@register_target("cuda")
class CudaTarget(Target):
    """onnxruntime's CUDA provider (TensorRT's first where present), timed with IO binding."""

    name = provider = "cuda"

    def open(self, bundles: list[Path], feeds: Path) -> None:
        import onnxruntime as ort

        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise DeviceError(
                f"--target cuda is not available here: onnxruntime {ort.__version__} has no CUDA provider "
                "(it needs onnxruntime-gpu, a CUDA GPU and its driver: pip install onnxruntime-gpu)")
        super().open(bundles, feeds)

    @property
    def where(self) -> str:
        return "this machine's GPU"


@register_target("ssh")
class SshTarget(Target):
    """A device reached with the system's ssh and scp, key-based (BatchMode: never a password
    prompt). The device needs Python 3 with numpy and onnxruntime; nothing of edgeft."""

    name = "ssh"
    local = False

    def __init__(self, spec: str, options: TargetOptions) -> None:
        super().__init__(spec, options)
        parts = urlsplit(spec)
        if parts.scheme != "ssh" or not parts.hostname or parts.path not in ("", "/"):
            raise UsageError(f"--target {spec!r}: write ssh://[user@]host[:port]")
        try:
            self.port = parts.port
        except ValueError:
            raise UsageError(f"--target {spec!r}: the port is not a number") from None
        self.destination = f"{parts.username}@{parts.hostname}" if parts.username else parts.hostname
        self.remote_dir: str | None = None

    @property
    def where(self) -> str:
        return self.destination + (f":{self.port}" if self.port else "")

    def _common(self) -> list[str]:
        args = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        return args + (["-F", self.options.ssh_config] if self.options.ssh_config else [])

    def ssh(self, *remote: str) -> list[str]:
        args = ["ssh", *self._common(), "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"]
        return args + (["-p", str(self.port)] if self.port else []) + [self.destination, *remote]

    def _run(self, command: list[str], what: str, timeout: float = 600) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TargetError(f"{self.where}: {what} timed out after {timeout:.0f} s") from None
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise TargetError(f"{self.where}: {what} failed: {lines[-1] if lines else f'exit {done.returncode}'}")
        return done.stdout

    def open(self, bundles: list[Path], feeds: Path) -> None:
        for tool in ("ssh", "scp"):
            if shutil.which(tool) is None:
                raise DeviceError(f"--target {self.spec}: the {tool} command is not installed here (OpenSSH client)")
        super().open(bundles, feeds)
        self.remote_dir = self._run(self.ssh("mktemp -d /tmp/edgeft-bench.XXXXXX"), "connecting", 60).strip()
        with scratch("stage") as tmp:
            stage = Path(tmp)
            _stage_runner(stage)
            shutil.copy2(feeds, stage / "feeds.npz")
            for i, bundle in enumerate(bundles):
                (stage / f"b{i}").mkdir()
                for file in _bundle_files(bundle):
                    shutil.copy2(file, stage / f"b{i}" / file.name)
            scp = ["scp", "-q", "-r", *self._common()] + (["-P", str(self.port)] if self.port else [])
            sources = [str(p) for p in sorted(stage.iterdir())]
            self._run(scp + sources + [f"{self.destination}:{self.remote_dir}/"], "copying the bundles")

    def launch(self, index: int) -> Launch:
        python = self.options.remote_python
        model = f"b{index}" + (f"/{self.bundles[index].name}" if self.bundles[index].is_file() else "")
        script = f"cd {shlex.quote(self.remote_dir or '')} && exec {shlex.quote(python)} runner.py {model} feeds.npz"
        return Launch(self.ssh(script))

    def close(self) -> None:
        if self.remote_dir:
            try:
                subprocess.run(self.ssh("rm", "-rf", shlex.quote(self.remote_dir)), capture_output=True, timeout=30)
            except (subprocess.TimeoutExpired, OSError):
                pass  # the device went away; its /tmp keeps a folder
            self.remote_dir = None


def arm64_root(options: TargetOptions) -> Path:
    """Where ``scripts/setup_arm64.sh`` put the sysroot and the aarch64 wheels."""
    root = options.arm64_root or os.environ.get(ARM64_ROOT_ENV) or Path.home() / ".cache/edgeft/arm64"
    return Path(root)


@register_target("qemu-arm64")
class QemuArm64Target(Target):
    """The runner under user-mode QEMU with the aarch64 onnxruntime wheel: proves the bundle loads
    and agrees on an ARM64 runtime. Its timings are emulated, never comparable with native ones."""

    name = "qemu-arm64"
    emulated = True

    def __init__(self, spec: str, options: TargetOptions) -> None:
        super().__init__(spec, options)
        self.root = arm64_root(options)
        self.python = self.root / "sysroot/usr/bin/python3.11"
        self.qemu = shutil.which("qemu-aarch64") or shutil.which("qemu-aarch64-static")
        if self.qemu is None or not self.python.is_file() or not (self.root / "site").is_dir():
            raise DeviceError(f"--target qemu-arm64 needs the emulated environment at {self.root} "
                              "(run: bash scripts/setup_arm64.sh; or set EDGEFT_ARM64_ROOT)")
        self.stage: tempfile.TemporaryDirectory[str] | None = None

    @property
    def where(self) -> str:
        return "emulated ARM64 (QEMU)"

    def open(self, bundles: list[Path], feeds: Path) -> None:
        super().open(bundles, feeds)
        self.stage = tempfile.TemporaryDirectory(prefix="edgeft-arm64-")
        _stage_runner(Path(self.stage.name))

    def launch(self, index: int) -> Launch:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        env.update(PYTHONPATH=str(self.root / "site"), PYTHONNOUSERSITE="1", EDGEFT_EMULATED="1")
        if self.options.qemu_cpu:
            env["QEMU_CPU"] = self.options.qemu_cpu
        runner = Path(self.stage.name) / "runner.py"  # type: ignore[union-attr]
        return Launch([self.qemu or "qemu-aarch64", "-L", str(self.root / "sysroot"), str(self.python), str(runner),
                       str(self.bundles[index]), str(self.feeds)], env)

    def close(self) -> None:
        if self.stage is not None:
            self.stage.cleanup()
            self.stage = None


def resolve_target(spec: str, options: TargetOptions | None = None) -> Target:
    """``cpu``, ``cuda``, ``qemu-arm64`` or ``ssh://[user@]host[:port]``; close names suggested."""
    name = "ssh" if spec.startswith("ssh://") else spec
    if name == "ssh" and not spec.startswith("ssh://"):
        raise UsageError("--target ssh needs a host: ssh://[user@]host[:port]")
    return TARGETS.get(name)(spec, options or TargetOptions())
