"""Triton kernels for the l_p distance y[b, j] = ||x[b] - w[j]||_p, 1 <= p < inf (the
l_p-relaxation of l_inf-distance nets, issue 26), forward and true-gradient backward.

Importing this module needs ``triton``; the kernels run on CUDA tensors, or on CPU tensors
under ``TRITON_INTERPRET=1`` (how the tests run them; GPU speed is unmeasured).

- forward: grid (B / BB, M / BM); a max pass over N gives m = max_i |x_i - w_ji|, a second pass
  sums (|d| / m)^p in [1, N] (stable for any p); y = m s^(1/p).
- dx: grid (B / BB, N / BN), loop over units; dw: grid (M / BM, N / BN), loop over the batch;
  both with q = g sign(d) (|d| / y)^(p - 1) (0 where y = 0 or d = 0). No atomics.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from rbfi.ops.fused import FusedLpOps, require_contiguous_float32_pair
from rbfi.ops.triton_tiles import launch, load_tile, store_tile


@triton.jit
def _pow01(r, q):
    """r^q for r in [0, 1] and q >= 0 (0 where r = 0, whatever q)."""
    return tl.where(r > 0.0, tl.exp2(q * tl.log2(tl.maximum(r, 1e-38))), 0.0)


@triton.jit
def _abs_diff_tile(x_ptr, w_ptr, rb, rm, n0, B, M, N, BN: tl.constexpr):
    """|x - w| on the (BB, BM, BN) tile of inputs n0 .. n0 + BN (0 outside the arrays)."""
    rn = n0 + tl.arange(0, BN)
    x = load_tile(x_ptr, rb, rn, B, N)
    w = load_tile(w_ptr, rm, rn, M, N)
    return tl.abs(x[:, None, :] - w[None, :, :])


@triton.jit
def _lp_forward_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    B,
    M,
    N,
    p,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rb = (tl.program_id(0) * BB + tl.arange(0, BB)).to(tl.int64)
    rm = (tl.program_id(1) * BM + tl.arange(0, BM)).to(tl.int64)
    m = tl.zeros((BB, BM), tl.float32)
    for n0 in range(0, N, BN):  # pass 1: the row maximum of |x - w|
        m = tl.maximum(m, tl.max(_abs_diff_tile(x_ptr, w_ptr, rb, rm, n0, B, M, N, BN), axis=2))
    inv_m = tl.where(m > 0.0, 1.0 / tl.where(m > 0.0, m, 1.0), 0.0)
    s = tl.zeros((BB, BM), tl.float32)
    for n0 in range(0, N, BN):  # pass 2: sum of (|x - w| / m)^p, in [1, N]
        r = _abs_diff_tile(x_ptr, w_ptr, rb, rm, n0, B, M, N, BN) * inv_m[:, :, None]
        s += tl.sum(_pow01(r, p), axis=2)
    y = tl.where(m > 0.0, m * tl.exp2(tl.log2(tl.maximum(s, 1.0)) / p), 0.0)
    store_tile(y_ptr, y, rb, rm, B, M)


@triton.jit
def _lp_q_tile(x, w, gy, iy, q):
    """g sign(d) (|d| / y)^q on a (BB, BM, BN) tile, d = x - w."""
    d = x[:, None, :] - w[None, :, :]
    e = _pow01(tl.abs(d) * iy[:, :, None], q) * gy[:, :, None]
    return tl.where(d > 0.0, e, tl.where(d < 0.0, -e, 0.0))


@triton.jit
def _lp_backward_dx_kernel(
    x_ptr,
    w_ptr,
    gy_ptr,
    iy_ptr,
    dx_ptr,
    B,
    M,
    N,
    q,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rb = (tl.program_id(0) * BB + tl.arange(0, BB)).to(tl.int64)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    x = load_tile(x_ptr, rb, rn, B, N)
    acc = tl.zeros((BB, BN), tl.float32)
    for m0 in range(0, M, BM):
        rm = (m0 + tl.arange(0, BM)).to(tl.int64)
        w = load_tile(w_ptr, rm, rn, M, N)
        gy = load_tile(gy_ptr, rb, rm, B, M)
        iy = load_tile(iy_ptr, rb, rm, B, M)
        acc += tl.sum(_lp_q_tile(x, w, gy, iy, q), axis=1)
    store_tile(dx_ptr, acc, rb, rn, B, N)


@triton.jit
def _lp_backward_dw_kernel(
    x_ptr,
    w_ptr,
    gy_ptr,
    iy_ptr,
    dw_ptr,
    B,
    M,
    N,
    q,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rm = (tl.program_id(0) * BM + tl.arange(0, BM)).to(tl.int64)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    w = load_tile(w_ptr, rm, rn, M, N)
    acc = tl.zeros((BM, BN), tl.float32)
    for b0 in range(0, B, BB):
        rb = (b0 + tl.arange(0, BB)).to(tl.int64)
        x = load_tile(x_ptr, rb, rn, B, N)
        gy = load_tile(gy_ptr, rb, rm, B, M)
        iy = load_tile(iy_ptr, rb, rm, B, M)
        acc += tl.sum(_lp_q_tile(x, w, gy, iy, q), axis=0)
    store_tile(dw_ptr, -acc, rm, rn, M, N)


def triton_lp_forward(x: Tensor, w: Tensor, p: float) -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p (1 <= p < inf)."""
    require_contiguous_float32_pair("triton", x, w)
    (B, N), M = x.shape, w.shape[0]
    y = torch.empty(B, M, dtype=torch.float32, device=x.device)
    launch(_lp_forward_kernel, "BM", (x, w, y), B, M, N, float(p))
    return y


def triton_lp_backward(
    x: Tensor, w: Tensor, y: Tensor, g: Tensor, p: float, need_x: bool, need_w: bool
) -> tuple[Tensor | None, Tensor | None]:
    """dx = sum_j q, dw = -sum_b q with q = g sign(d) (|d| / y)^(p - 1)."""
    require_contiguous_float32_pair("triton", x, w)
    (B, N), M = x.shape, w.shape[0]
    positive = y > 0
    gy = torch.where(positive, g.to(torch.float32), 0.0).contiguous()
    iy = torch.where(positive, 1.0 / torch.where(positive, y, 1.0), 0.0).contiguous()
    dx = dw = None
    if need_x:
        dx = torch.empty_like(x)
        launch(_lp_backward_dx_kernel, "BN", (x, w, gy, iy, dx), B, M, N, float(p) - 1.0)
    if need_w:
        dw = torch.empty_like(w)
        launch(_lp_backward_dw_kernel, "MN", (x, w, gy, iy, dw), B, M, N, float(p) - 1.0)
    return dx, dw


TRITON_LP_OPS = FusedLpOps(triton_lp_forward, triton_lp_backward)
