"""The fused CPU backend: ctypes calls into ``rbfi_cpu.c`` on contiguous float32 tensors.

Forward saves z (B, M) and, in true-gradient mode, the arg-max (B, M) int32; backward recomputes
s = (u (x - w))^2 tile by tile, so nothing of size B x M x N is ever held. The interval version
(:data:`CPU_INTERVAL_OPS`) does the same for the range [z_lo, z_hi] of z over a box [lo, hi];
:data:`CPU_LP_OPS` computes y = ||x - w||_p (1 <= p < inf) and its true gradients.
"""

from __future__ import annotations

import ctypes

import torch
from torch import Tensor

from rbfi.ops._build import load_library
from rbfi.ops.fused import (
    FusedIntervalOps,
    FusedLpOps,
    FusedOps,
    require_contiguous_float32,
    require_contiguous_float32_box,
    require_contiguous_float32_pair,
)

# Pseudogradient terms with beta (s - z) < -SKIP_THRESHOLD are dropped: their weight is below
# exp(-40) = 4.2e-18, i.e. < 2^-24 (float32 resolution) times 1e-10 of the arg-max term's
# weight 1. See docs/kernels.md for the bound.
SKIP_THRESHOLD = 40.0


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _lib() -> ctypes.CDLL:
    lib = load_library().lib
    if lib is None:
        raise RuntimeError("the rbfi CPU kernel is not available (see rbfi.ops.kernel_info())")
    return lib


def _run(kernel: str, *args) -> None:
    """Call ``kernel`` of the C library; its nonzero return code is an error."""
    rc = getattr(_lib(), kernel)(*args)
    if rc != 0:
        raise RuntimeError(f"{kernel} failed (code {rc})")


def _gradients(
    B: int, M: int, N: int, need_x: bool, need_params: bool, inputs: int = 1
) -> list[Tensor | None]:
    """Uninitialised float32 outputs of a backward kernel: ``inputs`` (B, N) gradients of the
    input (dx; or dlo and dhi) when ``need_x``, then dw and du (M, N) when ``need_params``."""
    x_grads = [torch.empty(B, N, dtype=torch.float32) if need_x else None for _ in range(inputs)]
    params = [torch.empty(M, N, dtype=torch.float32) if need_params else None for _ in range(2)]
    return x_grads + params


def cpu_forward(x: Tensor, w: Tensor, u: Tensor, want_idx: bool) -> tuple[Tensor, Tensor | None]:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and (optionally) the first arg-max."""
    require_contiguous_float32("cpu", x, w, u, "cpu")
    (B, N), M = x.shape, w.shape[0]
    z = torch.empty(B, M, dtype=torch.float32)
    idx = torch.empty(B, M, dtype=torch.int32) if want_idx else None
    _run(
        "rbfi_forward",
        _ptr(x),
        _ptr(w),
        _ptr(u),
        B,
        M,
        N,
        _ptr(z),
        _ptr(idx),
        torch.get_num_threads(),
    )
    return z, idx


def cpu_backward_pseudo(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    z: Tensor,
    g: Tensor,
    beta: float,
    need_x: bool,
    need_params: bool,
    skip_threshold: float = SKIP_THRESHOLD,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, int]:
    """Eq. (11) backward: ds = g exp(beta (s - z)); returns (dx, dw, du, number of skipped terms).

    dx = sum_j ds 2 u^2 (x - w); dw = -sum_b ds 2 u^2 (x - w); du = sum_b ds 2 u (x - w)^2.
    Terms with beta (s - z) < -skip_threshold are dropped (``float("inf")`` keeps all).
    """
    require_contiguous_float32("cpu", x, w, u, "cpu")
    (B, N), M = x.shape, w.shape[0]
    z, g = z.contiguous(), g.to(torch.float32).contiguous()
    dx, dw, du = _gradients(B, M, N, need_x, need_params)
    skipped = ctypes.c_int64(0)
    _run(
        "rbfi_backward_pseudo",
        _ptr(x),
        _ptr(w),
        _ptr(u),
        _ptr(z),
        _ptr(g),
        B,
        M,
        N,
        float(beta),
        float(skip_threshold),
        _ptr(dx),
        _ptr(dw),
        _ptr(du),
        torch.get_num_threads(),
        ctypes.byref(skipped),
    )
    return dx, dw, du, skipped.value


def cpu_backward_argmax(
    x: Tensor, w: Tensor, u: Tensor, idx: Tensor, g: Tensor, need_x: bool, need_params: bool
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (10) backward: ds = g at the arg-max only; O(B M) work."""
    require_contiguous_float32("cpu", x, w, u, "cpu")
    (B, N), M = x.shape, w.shape[0]
    idx, g = idx.to(torch.int32).contiguous(), g.to(torch.float32).contiguous()
    dx, dw, du = _gradients(B, M, N, need_x, need_params)
    _run(
        "rbfi_backward_argmax",
        _ptr(x),
        _ptr(w),
        _ptr(u),
        _ptr(idx),
        _ptr(g),
        B,
        M,
        N,
        _ptr(dx),
        _ptr(dw),
        _ptr(du),
        torch.get_num_threads(),
    )
    return dx, dw, du


def _cpu_backward_pseudo_skipping(x, w, u, z, g, beta, need_x, need_params):
    return cpu_backward_pseudo(x, w, u, z, g, beta, need_x, need_params, SKIP_THRESHOLD)[:3]


CPU_OPS = FusedOps(cpu_forward, _cpu_backward_pseudo_skipping, cpu_backward_argmax)


# --- the interval version ---------------------------------------------------------------------


def cpu_interval_forward(
    lo: Tensor, hi: Tensor, w: Tensor, u: Tensor, want_idx: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """z_lo = max_i (u near)^2, z_hi = max_i (u far)^2 over the box [lo, hi] (near, far: the
    offsets from w of the nearest and farthest point), and optionally the first arg-maxes."""
    require_contiguous_float32_box("cpu", lo, hi, w, u, "cpu")
    (B, N), M = lo.shape, w.shape[0]
    z_lo = torch.empty(B, M, dtype=torch.float32)
    z_hi = torch.empty(B, M, dtype=torch.float32)
    idx_lo = torch.empty(B, M, dtype=torch.int32) if want_idx else None
    idx_hi = torch.empty(B, M, dtype=torch.int32) if want_idx else None
    _run(
        "rbfi_interval_forward",
        *map(_ptr, (lo, hi, w, u)),
        B,
        M,
        N,
        *map(_ptr, (z_lo, z_hi, idx_lo, idx_hi)),
        torch.get_num_threads(),
    )
    return z_lo, z_hi, idx_lo, idx_hi


def cpu_interval_backward_pseudo(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    z_lo: Tensor,
    z_hi: Tensor,
    g_lo: Tensor,
    g_hi: Tensor,
    beta: float,
    need_x: bool,
    need_params: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (11) for both maxes, one pass: q = 2 g exp(beta (t^2 - z)) t with t = u d, for
    (d, z, g) = (near, z_lo, g_lo) and (far, z_hi, g_hi); dw = -u sum_b q, du = sum_b q d, and
    q u goes to dlo or dhi, whichever end d was measured to. Dense (nothing skipped)."""
    require_contiguous_float32_box("cpu", lo, hi, w, u, "cpu")
    (B, N), M = lo.shape, w.shape[0]
    zg = [t.to(torch.float32).contiguous() for t in (z_lo, z_hi, g_lo, g_hi)]
    dlo, dhi, dw, du = _gradients(B, M, N, need_x, need_params, inputs=2)
    _run(
        "rbfi_interval_backward_pseudo",
        *map(_ptr, (lo, hi, w, u, *zg)),
        B,
        M,
        N,
        float(beta),
        *map(_ptr, (dlo, dhi, dw, du)),
        torch.get_num_threads(),
    )
    return dlo, dhi, dw, du


def cpu_interval_backward_argmax(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    idx_lo: Tensor,
    idx_hi: Tensor,
    g_lo: Tensor,
    g_hi: Tensor,
    need_x: bool,
    need_params: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (10) for both maxes: the gradient goes to the arg-max input only; O(B M) work. The
    arithmetic of :func:`rbfi.ops.chunked.interval_argmax_backward` term by term, summed per row
    (dlo, dhi) and per unit (dw, du) without atomics."""
    require_contiguous_float32_box("cpu", lo, hi, w, u, "cpu")
    (B, N), M = lo.shape, w.shape[0]
    idx = [t.to(torch.int32).contiguous() for t in (idx_lo, idx_hi)]
    gs = [t.to(torch.float32).contiguous() for t in (g_lo, g_hi)]
    dlo, dhi, dw, du = _gradients(B, M, N, need_x, need_params, inputs=2)
    _run(
        "rbfi_interval_backward_argmax",
        *map(_ptr, (lo, hi, w, u, *idx, *gs)),
        B,
        M,
        N,
        *map(_ptr, (dlo, dhi, dw, du)),
        torch.get_num_threads(),
    )
    return dlo, dhi, dw, du


CPU_INTERVAL_OPS = FusedIntervalOps(
    cpu_interval_forward, cpu_interval_backward_pseudo, cpu_interval_backward_argmax
)


# --- the l_p distance (l_inf-distance nets, issue 26) -----------------------------------------


def cpu_lp_forward(x: Tensor, w: Tensor, p: float) -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p = m (sum_i (|x - w| / m)^p)^(1/p), m the row maximum."""
    require_contiguous_float32_pair("cpu", x, w, "cpu")
    (B, N), M = x.shape, w.shape[0]
    y = torch.empty(B, M, dtype=torch.float32)
    _run("rbfi_lp_forward", _ptr(x), _ptr(w), B, M, N, float(p), _ptr(y), torch.get_num_threads())
    return y


def cpu_lp_backward(
    x: Tensor, w: Tensor, y: Tensor, g: Tensor, p: float, need_x: bool, need_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    """dx = sum_j g sign(d) (|d| / y)^(p - 1) and dw = -sum_b (the same), d = x - w; each pass
    only when asked for (bitwise reproducible: no atomics)."""
    require_contiguous_float32_pair("cpu", x, w, "cpu")
    (B, N), M = x.shape, w.shape[0]
    y, g = y.to(torch.float32).contiguous(), g.to(torch.float32).contiguous()
    dx = torch.empty(B, N, dtype=torch.float32) if need_x else None
    dw = torch.empty(M, N, dtype=torch.float32) if need_w else None
    _run(
        "rbfi_lp_backward",
        *map(_ptr, (x, w, y, g)),
        B,
        M,
        N,
        float(p),
        _ptr(dx),
        _ptr(dw),
        torch.get_num_threads(),
    )
    return dx, dw


CPU_LP_OPS = FusedLpOps(cpu_lp_forward, cpu_lp_backward)


# --- conv patches -----------------------------------------------------------------------------


def cpu_im2row(x: Tensor, kernel: tuple[int, int], stride: tuple[int, int], width: int) -> Tensor:
    """(B, C, H, W) float32 -> (B*H'*W', width) rows: each position's window in ``unfold``'s
    column order (channel, kernel row, column), then zero columns up to ``width``."""
    x = x.contiguous()
    B, C, H, W = x.shape
    Ho, Wo = (H - kernel[0]) // stride[0] + 1, (W - kernel[1]) // stride[1] + 1
    out = torch.empty(B * Ho * Wo, width, dtype=torch.float32)
    _run("rbfi_im2row", _ptr(x), B, C, H, W, *kernel, *stride, width, _ptr(out),
         torch.get_num_threads())  # fmt: skip
    return out


def cpu_row2im(rows: Tensor, shape: tuple[int, ...], kernel: tuple[int, int],
               stride: tuple[int, int]) -> Tensor:  # fmt: skip
    """The adjoint of :func:`cpu_im2row`: the (B, C, H, W) sums of the rows' entries."""
    rows = rows.to(torch.float32).contiguous()
    B, C, H, W = shape
    dx = torch.empty(B, C, H, W, dtype=torch.float32)
    _run("rbfi_row2im", _ptr(rows), B, C, H, W, *kernel, *stride, rows.shape[1], _ptr(dx),
         torch.get_num_threads())  # fmt: skip
    return dx
