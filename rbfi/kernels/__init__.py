"""Fast implementations of z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and its backward.

Every backend computes the same function as
:func:`rbfi.nn.functional.scaled_sqdist_max_reference` (the plain, materialising reference)
with the same gradients (eq. 10 or eq. 11 for the max); none but "reference" ever holds the
(B, M, N) tensor of scaled distances.

Backends (``backend=``):
- "reference": the materialising reference (ground truth, slow, memory B M N).
- "cpu": the fused C kernel (``rbfi_cpu.c``, compiled at first use; float32 CPU tensors).
- "chunked" (alias "torch"): pure PyTorch over bounded tiles; any device and dtype.
- "triton": Triton kernels (CUDA float32 tensors; CPU tensors under ``TRITON_INTERPRET=1``).
- "auto": :func:`auto_backend` picks: "cpu" for CPU float32 when the C kernel builds, "triton"
  for CUDA float32 when Triton imports, else "chunked" (float64 always goes to "chunked").
See docs/kernels.md.
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

from rbfi.kernels._build import load_library
from rbfi.kernels.chunked import TILE_ELEMENTS, chunked_ops
from rbfi.kernels.cpu import CPU_OPS, SKIP_THRESHOLD
from rbfi.kernels.fused import FusedScaledSqdistMax
from rbfi.nn.functional import PSEUDO_MAX_BETA, scaled_sqdist_max_reference

_CHUNKED_OPS = chunked_ops()

BACKENDS = ("auto", "reference", "cpu", "chunked", "torch", "triton")

__all__ = [
    "BACKENDS",
    "SKIP_THRESHOLD",
    "auto_backend",
    "cpu_kernel_available",
    "kernel_info",
    "scaled_sqdist_max",
    "triton_available",
]


def cpu_kernel_available() -> bool:
    """True when the C kernel is built and loaded (builds it on the first call)."""
    return load_library().lib is not None


@functools.lru_cache(maxsize=1)
def _triton_import() -> tuple[object | None, str | None]:
    try:
        from rbfi.kernels import triton_kernels
    except Exception as err:  # ImportError, or a broken Triton install
        return None, f"{type(err).__name__}: {err}"
    return triton_kernels, None


def triton_available() -> bool:
    """True when Triton imports (the GPU backend can then run on CUDA tensors)."""
    return _triton_import()[0] is not None


def auto_backend(x: Tensor, w: Tensor, u: Tensor) -> str:
    """The backend that ``backend="auto"`` uses for these tensors."""
    dtypes = {x.dtype, w.dtype, u.dtype}
    if x.numel() == 0 or w.numel() == 0:
        return "chunked"
    if x.device.type == "cpu" and dtypes == {torch.float32} and cpu_kernel_available():
        return "cpu"
    if x.device.type == "cuda" and dtypes == {torch.float32} and triton_available():
        return "triton"
    return "chunked"


def kernel_info() -> dict:
    """Which kernels are available here, how the CPU one was built, and its first-use cost.

    Builds the CPU kernel if that has not happened yet. ``cpu.compile_seconds`` is the compile
    time paid in this process (None when the library came from the cache).
    """
    triton_mod, triton_err = _triton_import()
    triton_info: dict = {"available": triton_mod is not None, "error": triton_err}
    if triton_mod is not None:
        import triton

        triton_info["version"] = triton.__version__
        triton_info["cuda"] = torch.cuda.is_available()
    return {
        "cpu": load_library().as_dict(),
        "triton": triton_info,
        "num_threads": torch.get_num_threads(),
        "skip_threshold": SKIP_THRESHOLD,
        "chunk_tile_elements": TILE_ELEMENTS,
    }


def _validate(x: Tensor, w: Tensor, u: Tensor) -> None:
    if x.dim() != 2 or w.dim() != 2 or u.shape != w.shape or x.shape[1] != w.shape[1]:
        raise ValueError(
            f"expected x (B, N), w and u (M, N); got {tuple(x.shape)}, {tuple(w.shape)}, "
            f"{tuple(u.shape)}"
        )
    if x.shape[1] == 0:
        raise ValueError("the max over an empty input dimension (N = 0) is undefined")
    if not (x.device == w.device == u.device) or not (x.dtype == w.dtype == u.dtype):
        raise ValueError("x, w and u must share device and dtype")


def scaled_sqdist_max(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    *,
    pseudogradient: bool = True,
    beta: float = PSEUDO_MAX_BETA,
    backend: str = "auto",
) -> Tensor:
    """z = max_i (u (x - w))^2 for x (B, N), w and u (M, N); returns (B, M).

    Backward: eq. (11) ``g exp(beta (s - z))`` for every i when ``pseudogradient`` (beta >= 0
    for the fused backends), else eq. (10), the gradient at the first arg-max only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "reference":
        return scaled_sqdist_max_reference(x, w, u, pseudogradient, beta)
    _validate(x, w, u)
    pseudogradient, beta = bool(pseudogradient), float(beta)
    if backend == "auto":
        backend = auto_backend(x, w, u)
        if backend != "chunked" and pseudogradient and beta < 0:
            backend = "chunked"
    elif backend in ("cpu", "triton") and pseudogradient and beta < 0:
        raise ValueError(f"the {backend} backend needs beta >= 0, got {beta}")
    if backend == "cpu":
        if not cpu_kernel_available():  # warned once by the build; fall back
            backend = "chunked"
        else:
            return FusedScaledSqdistMax.apply(x, w, u, pseudogradient, beta, CPU_OPS)
    if backend == "triton":
        triton_mod, err = _triton_import()
        if triton_mod is None:
            raise RuntimeError(f"backend='triton' needs triton: {err}")
        return FusedScaledSqdistMax.apply(x, w, u, pseudogradient, beta, triton_mod.TRITON_OPS)
    return FusedScaledSqdistMax.apply(x, w, u, pseudogradient, beta, _CHUNKED_OPS)
