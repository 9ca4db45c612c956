"""Which backend computes z = max_i (u (x - w))^2 (its interval version, and the l_p distance
||x - w||_p of l_inf-distance nets), with one policy.

Backends:
- "reference": the materialising reference (ground truth, slow, memory B M N).
- "cpu": the fused C kernel (``rbfi_cpu.c``, compiled at first use; float32 CPU tensors).
- "chunked" (alias "torch"): pure PyTorch over bounded tiles; any device and dtype.
- "triton": Triton kernels (CUDA float32 tensors; CPU tensors under ``TRITON_INTERPRET=1``).
- "auto": the first of "cpu", "triton", "chunked" that can run these tensors.

The policy, the same for every backend and every op: "auto" never fails for want of a kernel
(if the C kernel cannot be built — its source missing or unreadable, no working compiler, or no
flag set that compiles — :mod:`rbfi.ops._build` warns once and "auto" uses the next backend);
a backend named explicitly runs or raises a ValueError saying why it cannot.
"""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable

import torch
from torch import Tensor

import rbfi.ops._build as _build
import rbfi.ops.cpu as cpu_backend
from rbfi.ops._build import load_library
from rbfi.ops.chunked import TILE_ELEMENTS, chunked_interval_ops, chunked_lp_ops, chunked_ops
from rbfi.ops.fused import FusedIntervalOps, FusedLpOps, FusedOps

BACKENDS = ("auto", "reference", "cpu", "chunked", "torch", "triton")
AUTO_ORDER = ("cpu", "triton", "chunked")


def cpu_kernel_available() -> bool:
    """True when the C kernel is built and loaded (builds it on the first call)."""
    return load_library().lib is not None


@functools.lru_cache(maxsize=1)
def _triton_import() -> tuple[object | None, str | None]:
    try:
        triton_backend = importlib.import_module("rbfi.ops.triton")
    except Exception as err:  # ImportError, or a broken Triton install
        return None, f"{type(err).__name__}: {err}"
    return triton_backend, None


def triton_available() -> bool:
    """True when Triton imports (the GPU backend can then run on CUDA tensors)."""
    return _triton_import()[0] is not None


def _float32_on(device_type: str, tensors: tuple[Tensor, ...]) -> str | None:
    if any(t.dtype != torch.float32 for t in tensors):
        return "it needs float32 tensors"
    if device_type and any(t.device.type != device_type for t in tensors):
        return f"it needs {device_type.upper()} tensors"
    return None


def _cpu_unusable(tensors: tuple[Tensor, ...]) -> str | None:
    """Why the C kernel cannot run ``tensors`` (checked before building it, so float64 or
    CUDA work never compiles it)."""
    reason = _float32_on("cpu", tensors)
    if reason is None and not cpu_kernel_available():
        reason = "the C kernel could not be built (`rbfi doctor` says why)"
    return reason


def _triton_unusable(tensors: tuple[Tensor, ...]) -> str | None:
    module, err = _triton_import()
    if module is None:
        return f"it needs triton: {err}"
    interpret = _interpreting()
    return _float32_on("" if interpret else "cuda", tensors)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


_CHUNKED, _CHUNKED_INTERVAL, _CHUNKED_LP = chunked_ops(), chunked_interval_ops(), chunked_lp_ops()


@functools.lru_cache(maxsize=1)
def _triton_lp_ops() -> FusedLpOps:
    return importlib.import_module("rbfi.ops.triton_lp").TRITON_LP_OPS


# name -> (why it cannot run these tensors or None, point ops, interval ops, l_p distance ops);
# every backend has every kernel.
_REGISTRY: dict[
    str,
    tuple[
        Callable,
        Callable[[], FusedOps],
        Callable[[], FusedIntervalOps],
        Callable[[], FusedLpOps],
    ],
] = {
    "cpu": (
        _cpu_unusable,
        lambda: cpu_backend.CPU_OPS,
        lambda: cpu_backend.CPU_INTERVAL_OPS,
        lambda: cpu_backend.CPU_LP_OPS,
    ),
    "triton": (
        _triton_unusable,
        lambda: _triton_import()[0].TRITON_OPS,
        lambda: _triton_import()[0].TRITON_INTERVAL_OPS,
        _triton_lp_ops,
    ),
    "chunked": (
        lambda tensors: None,
        lambda: _CHUNKED,
        lambda: _CHUNKED_INTERVAL,
        lambda: _CHUNKED_LP,
    ),
}


def resolve(backend: str, tensors: tuple[Tensor, ...], *, beta_ok: bool = True) -> str:
    """The backend that runs ``tensors``: ``backend`` itself, or for "auto" the first of
    :data:`AUTO_ORDER` that can ("chunked" always can). ``beta_ok=False`` (pseudogradients with
    beta < 0) rules out the fused kernels. Raises ValueError for an unknown or unusable explicit
    backend."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "chunked"
    if backend in ("reference", "chunked"):
        return backend
    if backend == "auto":
        if not beta_ok or any(t.numel() == 0 for t in tensors):
            return "chunked"
        return next(name for name in AUTO_ORDER if _REGISTRY[name][0](tensors) is None)
    if not beta_ok:
        raise ValueError(f"the {backend} backend needs beta >= 0")
    reason = _REGISTRY[backend][0](tensors)
    if reason is not None:
        raise ValueError(f"backend={backend!r} cannot run here: {reason}")
    return backend


def auto_backend(x: Tensor, w: Tensor, u: Tensor) -> str:
    """The backend that ``backend="auto"`` uses for these tensors."""
    return resolve("auto", (x, w, u))


def vector_width(backend: str, tensors: tuple[Tensor, ...]) -> int:
    """The C kernel's SIMD width when ``backend`` runs ``tensors`` on it, else 1. Callers that
    can pad the input dimension N to a multiple of it for free (conv patches, copied anyway)
    spare the kernel its scalar tail loop."""
    if resolve(backend, tensors) != "cpu":
        return 1
    return load_library().simd_width or 1


def ops(name: str) -> FusedOps:
    return _REGISTRY[name][1]()


def interval_ops(name: str) -> FusedIntervalOps:
    return _REGISTRY[name][2]()


def lp_ops(name: str) -> FusedLpOps:
    return _REGISTRY[name][3]()


def kernel_info() -> dict:
    """Which kernels are available here, how the CPU one was built, and its first-use cost.

    Builds the CPU kernel if that has not happened yet. ``cpu.compile_seconds`` is the compile
    time paid in this process (None when the library came from the cache); ``auto`` is the
    backend ``backend="auto"`` picks for float32 CPU tensors, and ``cpu.errors`` says why the C
    kernel is missing when it is.
    """
    triton_mod, triton_err = _triton_import()
    triton_info: dict = {"available": triton_mod is not None, "error": triton_err}
    if triton_mod is not None:
        import triton

        triton_info["version"] = triton.__version__
    triton_info["cuda"] = torch.cuda.is_available()
    cpu_info = load_library().as_dict()
    cpu_info["source"] = str(_build.SOURCE)
    cpu_info["cache_dir"] = str(_build.cache_dir())
    probe = torch.zeros(1, 1)
    return {
        "auto": resolve("auto", (probe, probe, probe)),
        "cpu": cpu_info,
        "triton": triton_info,
        "num_threads": torch.get_num_threads(),
        "skip_threshold": cpu_backend.SKIP_THRESHOLD,
        "chunk_tile_elements": TILE_ELEMENTS,
    }
