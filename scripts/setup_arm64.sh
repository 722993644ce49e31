#!/usr/bin/env bash
# Builds the emulated ARM64 environment for `edgeft bench --target qemu-arm64`:
#   - Debian's qemu-user (user-mode QEMU 7.2),
#   - a sysroot of Debian arm64 packages (Python 3.11 and the libraries it needs), unpacked with dpkg -x,
#   - aarch64 wheels of numpy and onnxruntime (the runner needs nothing else),
#   - an ARM /proc/cpuinfo in the sysroot: with QEMU 7.2 the guest otherwise reads the host's x86 one
#     and `import onnxruntime` dies with SIGSEGV (see shared notes: arm64-emulation).
# Usage: bash scripts/setup_arm64.sh [ROOT]   (default: $EDGEFT_ARM64_ROOT or ~/.cache/edgeft/arm64)
# Needs root for apt (Debian/Ubuntu). Safe to run again: a finished ROOT is kept.
set -euo pipefail
ROOT="${1:-${EDGEFT_ARM64_ROOT:-$HOME/.cache/edgeft/arm64}}"
ORT_VERSION="${EDGEFT_ARM64_ORT:-onnxruntime}"   # e.g. onnxruntime==1.20.1
if [ -f "$ROOT/.complete" ]; then echo "arm64 environment ready at $ROOT"; exit 0; fi
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi

command -v qemu-aarch64 >/dev/null || $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user
if ! dpkg --print-foreign-architectures | grep -qx arm64; then $SUDO dpkg --add-architecture arm64; fi
$SUDO apt-get update -qq

rm -rf "$ROOT.partial" && mkdir -p "$ROOT.partial/debs" "$ROOT.partial/sysroot" "$ROOT.partial/site"
cd "$ROOT.partial/debs"
apt-get download -qq python3.11-minimal:arm64 libpython3.11-minimal:arm64 libpython3.11-stdlib:arm64 \
  libc6:arm64 libgcc-s1:arm64 libstdc++6:arm64 zlib1g:arm64 libexpat1:arm64 libffi8:arm64 libssl3:arm64 \
  liblzma5:arm64 libbz2-1.0:arm64 libsqlite3-0:arm64 libtinfo6:arm64 libncursesw6:arm64 libreadline8:arm64 \
  libuuid1:arm64 libnsl2:arm64 libtirpc3:arm64 libdb5.3:arm64 libgssapi-krb5-2:arm64 libkrb5-3:arm64 \
  libk5crypto3:arm64 libkrb5support0:arm64 libcom-err2:arm64 libkeyutils1:arm64
for deb in *.deb; do dpkg -x "$deb" ../sysroot; done
cd .. && rm -rf debs

mkdir -p sysroot/proc
: > sysroot/proc/cpuinfo
for core in 0 1 2 3; do
  printf 'processor\t: %s\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd07\nCPU revision\t: 0\n\n' "$core" >> sysroot/proc/cpuinfo
done

PY="${PYTHON:-python3}"
"$PY" -m pip install -q --target site --only-binary=:all: --platform manylinux2014_aarch64 \
  --platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311 "$ORT_VERSION" numpy

cd / && rm -rf "$ROOT" && mv "$ROOT.partial" "$ROOT"
# prove it: the emulated Python imports onnxruntime and reads the ARM cpuinfo
PYTHONPATH="$ROOT/site" PYTHONNOUSERSITE=1 qemu-aarch64 -L "$ROOT/sysroot" "$ROOT/sysroot/usr/bin/python3.11" -c \
  "import platform, onnxruntime, numpy; print('arm64 environment ready:', platform.machine(), 'onnxruntime', onnxruntime.__version__, 'numpy', numpy.__version__)"
touch "$ROOT/.complete"
echo "at $ROOT (edgeft bench --target qemu-arm64 finds it there, or set EDGEFT_ARM64_ROOT)"
