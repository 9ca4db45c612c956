"""The GPU backend: Triton kernels for the forward and the pseudogradient backward.

Importing this module needs ``triton``. The kernels run on CUDA tensors, or on CPU tensors when
``TRITON_INTERPRET=1`` was set before the import (Triton's interpreter, used by the tests here:
this session had no GPU, so GPU speed is unmeasured; see docs/kernels.md).

Kernels (float32, contiguous):
- forward: grid (B / BB, M / BM); each program keeps a (BB, BM) running max (and first arg-max)
  over (BB, BM, BN) tiles of s = (u (x - w))^2.
- dx: grid (B / BB, N / BN); loops over units: dx[b, i] = sum_j q u with
  q = 2 g exp(beta (s - z)) u (x - w).
- dw, du: grid (M / BM, N / BN); loops over the batch: Q = sum_b q, du = sum_b q (x - w),
  dw = -u Q. Two kernels, so each exp is computed twice, but no atomics and deterministic sums.
True-gradient backward (eq. 10) is O(B M) gather/scatter work, done in PyTorch
(:func:`rbfi.ops.chunked.argmax_backward`).

The interval version (:data:`TRITON_INTERVAL_OPS`, the range [z_lo, z_hi] of z over a box
[lo, hi]) has the same three kernels: forward (both maxes and their optional arg-maxes),
dlo/dhi (grid over (B, N) tiles, loop over units) and dw/du (grid over (M, N) tiles, loop over
the batch); eq. (10) is :func:`rbfi.ops.chunked.interval_argmax_backward`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from rbfi.ops.chunked import argmax_backward, interval_argmax_backward
from rbfi.ops.fused import (
    FusedIntervalOps,
    FusedOps,
    require_contiguous_float32,
    require_contiguous_float32_box,
)
from rbfi.ops.triton_tiles import launch, load_tile, store_tile

LOG2E = 1.4426950408889634


@triton.jit
def _forward_kernel(
    x_ptr,
    w_ptr,
    u_ptr,
    z_ptr,
    idx_ptr,
    B,
    M,
    N,
    WANT_IDX: tl.constexpr,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rb = (tl.program_id(0) * BB + tl.arange(0, BB)).to(tl.int64)
    rm = (tl.program_id(1) * BM + tl.arange(0, BM)).to(tl.int64)
    best = tl.full((BB, BM), -1.0, tl.float32)
    best_i = tl.zeros((BB, BM), tl.int32)
    for n0 in range(0, N, BN):
        rn = n0 + tl.arange(0, BN)
        mn = rn < N
        x = load_tile(x_ptr, rb, rn, B, N)
        w = load_tile(w_ptr, rm, rn, M, N)
        u = load_tile(u_ptr, rm, rn, M, N)
        t = u[None, :, :] * (x[:, None, :] - w[None, :, :])
        s = tl.where(mn[None, None, :], t * t, -1.0)
        blk = tl.max(s, axis=2)
        if WANT_IDX:
            blk_i = tl.argmax(s, axis=2, tie_break_left=True).to(tl.int32) + n0
            best_i = tl.where(blk > best, blk_i, best_i)
        best = tl.maximum(best, blk)
    store_tile(z_ptr, best, rb, rm, B, M)
    if WANT_IDX:
        store_tile(idx_ptr, best_i, rb, rm, B, M)


@triton.jit
def _q_tile(x, w, u, z, g, c):
    """q = 2 g exp2(c (t^2 - z)) t, t = u (x - w), on a (BB, BM, BN) tile; returns (q, x - w)."""
    d = x[:, None, :] - w[None, :, :]
    t = u[None, :, :] * d
    e = tl.exp2(tl.minimum(c * (t * t - z[:, :, None]), 0.0))  # <= 1; masked rows cannot overflow
    return e * t * (2.0 * g)[:, :, None], d


@triton.jit
def _backward_dx_kernel(
    x_ptr,
    w_ptr,
    u_ptr,
    z_ptr,
    g_ptr,
    dx_ptr,
    B,
    M,
    N,
    c,
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
        u = load_tile(u_ptr, rm, rn, M, N)
        z = load_tile(z_ptr, rb, rm, B, M)
        g = load_tile(g_ptr, rb, rm, B, M)
        q, d = _q_tile(x, w, u, z, g, c)
        acc += tl.sum(q * u[None, :, :], axis=1)
    store_tile(dx_ptr, acc, rb, rn, B, N)


@triton.jit
def _backward_params_kernel(
    x_ptr,
    w_ptr,
    u_ptr,
    z_ptr,
    g_ptr,
    dw_ptr,
    du_ptr,
    B,
    M,
    N,
    c,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rm = (tl.program_id(0) * BM + tl.arange(0, BM)).to(tl.int64)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    w = load_tile(w_ptr, rm, rn, M, N)
    u = load_tile(u_ptr, rm, rn, M, N)
    acc_q = tl.zeros((BM, BN), tl.float32)
    acc_du = tl.zeros((BM, BN), tl.float32)
    for b0 in range(0, B, BB):
        rb = (b0 + tl.arange(0, BB)).to(tl.int64)
        x = load_tile(x_ptr, rb, rn, B, N)
        z = load_tile(z_ptr, rb, rm, B, M)
        g = load_tile(g_ptr, rb, rm, B, M)
        q, d = _q_tile(x, w, u, z, g, c)
        acc_q += tl.sum(q, axis=0)
        acc_du += tl.sum(q * d, axis=0)
    store_tile(dw_ptr, -u * acc_q, rm, rn, M, N)
    store_tile(du_ptr, acc_du, rm, rn, M, N)


def triton_forward(x: Tensor, w: Tensor, u: Tensor, want_idx: bool) -> tuple[Tensor, Tensor | None]:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and (optionally) the first arg-max."""
    require_contiguous_float32("triton", x, w, u)
    (B, N), M = x.shape, w.shape[0]
    z = torch.empty(B, M, dtype=torch.float32, device=x.device)
    idx = torch.empty(B, M, dtype=torch.int32, device=x.device) if want_idx else z
    launch(_forward_kernel, "BM", (x, w, u, z, idx), B, M, N, WANT_IDX=want_idx)
    return z, idx if want_idx else None


def triton_backward_pseudo(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    z: Tensor,
    g: Tensor,
    beta: float,
    need_x: bool,
    need_params: bool,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (11) backward, dense (nothing skipped): dx and/or (dw, du)."""
    require_contiguous_float32("triton", x, w, u)
    (B, N), M = x.shape, w.shape[0]
    z, g = z.contiguous(), g.to(torch.float32).contiguous()
    c = float(beta) * LOG2E
    dx = dw = du = None
    if need_x:
        dx = torch.empty_like(x)
        launch(_backward_dx_kernel, "BN", (x, w, u, z, g, dx), B, M, N, c)
    if need_params:
        dw, du = torch.empty_like(w), torch.empty_like(u)
        launch(_backward_params_kernel, "MN", (x, w, u, z, g, dw, du), B, M, N, c)
    return dx, dw, du


TRITON_OPS = FusedOps(triton_forward, triton_backward_pseudo, argmax_backward)


# --- the interval version ---------------------------------------------------------------------


@triton.jit
def _near_far_tile(lo, hi, w):
    """The interval offsets (:func:`rbfi.ops.reference.near_far`) on a (BB, BM, BN) tile, from
    dl = lo - w, dh = hi - w: near = max(dl, min(dh, 0)), far = dh if dl + dh >= 0 else dl;
    returns (near, far, far is hi)."""
    dl = lo[:, None, :] - w[None, :, :]
    dh = hi[:, None, :] - w[None, :, :]
    far_hi = dl + dh >= 0.0
    return tl.maximum(dl, tl.minimum(dh, 0.0)), tl.where(far_hi, dh, dl), far_hi


@triton.jit
def _interval_forward_kernel(
    lo_ptr,
    hi_ptr,
    w_ptr,
    u_ptr,
    zl_ptr,
    zh_ptr,
    il_ptr,
    ih_ptr,
    B,
    M,
    N,
    WANT_IDX: tl.constexpr,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rb = (tl.program_id(0) * BB + tl.arange(0, BB)).to(tl.int64)
    rm = (tl.program_id(1) * BM + tl.arange(0, BM)).to(tl.int64)
    best_n = tl.full((BB, BM), -1.0, tl.float32)
    best_f = tl.full((BB, BM), -1.0, tl.float32)
    idx_n = tl.zeros((BB, BM), tl.int32)
    idx_f = tl.zeros((BB, BM), tl.int32)
    for n0 in range(0, N, BN):
        rn = n0 + tl.arange(0, BN)
        mn = rn < N
        lo = load_tile(lo_ptr, rb, rn, B, N)
        hi = load_tile(hi_ptr, rb, rn, B, N)
        w = load_tile(w_ptr, rm, rn, M, N)
        u = load_tile(u_ptr, rm, rn, M, N)
        d_n, d_f, _ = _near_far_tile(lo, hi, w)
        t_n = u[None, :, :] * d_n
        t_f = u[None, :, :] * d_f
        s_n = tl.where(mn[None, None, :], t_n * t_n, -1.0)
        s_f = tl.where(mn[None, None, :], t_f * t_f, -1.0)
        blk_n = tl.max(s_n, axis=2)
        blk_f = tl.max(s_f, axis=2)
        if WANT_IDX:
            blk_in = tl.argmax(s_n, axis=2, tie_break_left=True).to(tl.int32) + n0
            blk_if = tl.argmax(s_f, axis=2, tie_break_left=True).to(tl.int32) + n0
            idx_n = tl.where(blk_n > best_n, blk_in, idx_n)
            idx_f = tl.where(blk_f > best_f, blk_if, idx_f)
        best_n = tl.maximum(best_n, blk_n)
        best_f = tl.maximum(best_f, blk_f)
    store_tile(zl_ptr, best_n, rb, rm, B, M)
    store_tile(zh_ptr, best_f, rb, rm, B, M)
    if WANT_IDX:
        store_tile(il_ptr, idx_n, rb, rm, B, M)
        store_tile(ih_ptr, idx_f, rb, rm, B, M)


@triton.jit
def _interval_q_tile(lo, hi, w, u, zl, zh, gl, gh, c):
    """On a (BB, BM, BN) tile: d_n = near, d_f = far, q = 2 g exp2(c (t^2 - z)) t with t = u d
    for (d_n, z_lo, g_lo) and (d_f, z_hi, g_hi); returns (q_n, q_f, d_n, d_f, far is hi).

    The exponent is capped at 0 (t^2 <= z wherever z is the max): masked-out rows load z = 0,
    and exp2(c t^2) could overflow there and turn q = inf * 0 into NaN."""
    d_n, d_f, far_hi = _near_far_tile(lo, hi, w)
    t_n = u[None, :, :] * d_n
    t_f = u[None, :, :] * d_f
    e_n = tl.exp2(tl.minimum(c * (t_n * t_n - zl[:, :, None]), 0.0))
    e_f = tl.exp2(tl.minimum(c * (t_f * t_f - zh[:, :, None]), 0.0))
    q_n = e_n * t_n * (2.0 * gl)[:, :, None]
    q_f = e_f * t_f * (2.0 * gh)[:, :, None]
    return q_n, q_f, d_n, d_f, far_hi


@triton.jit
def _interval_backward_x_kernel(
    lo_ptr,
    hi_ptr,
    w_ptr,
    u_ptr,
    zl_ptr,
    zh_ptr,
    gl_ptr,
    gh_ptr,
    dlo_ptr,
    dhi_ptr,
    B,
    M,
    N,
    c,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rb = (tl.program_id(0) * BB + tl.arange(0, BB)).to(tl.int64)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    lo = load_tile(lo_ptr, rb, rn, B, N)
    hi = load_tile(hi_ptr, rb, rn, B, N)
    acc_lo = tl.zeros((BB, BN), tl.float32)
    acc_hi = tl.zeros((BB, BN), tl.float32)
    for m0 in range(0, M, BM):
        rm = (m0 + tl.arange(0, BM)).to(tl.int64)
        w = load_tile(w_ptr, rm, rn, M, N)
        u = load_tile(u_ptr, rm, rn, M, N)
        zl = load_tile(zl_ptr, rb, rm, B, M)
        zh = load_tile(zh_ptr, rb, rm, B, M)
        gl = load_tile(gl_ptr, rb, rm, B, M)
        gh = load_tile(gh_ptr, rb, rm, B, M)
        q_n, q_f, d_n, d_f, far_hi = _interval_q_tile(lo, hi, w, u, zl, zh, gl, gh, c)
        # near and far ends are opposite whenever q_n != 0 (w inside the interval: q_n = 0)
        acc_hi += tl.sum(tl.where(far_hi, q_f, q_n) * u[None, :, :], axis=1)
        acc_lo += tl.sum(tl.where(far_hi, q_n, q_f) * u[None, :, :], axis=1)
    store_tile(dlo_ptr, acc_lo, rb, rn, B, N)
    store_tile(dhi_ptr, acc_hi, rb, rn, B, N)


@triton.jit
def _interval_backward_params_kernel(
    lo_ptr,
    hi_ptr,
    w_ptr,
    u_ptr,
    zl_ptr,
    zh_ptr,
    gl_ptr,
    gh_ptr,
    dw_ptr,
    du_ptr,
    B,
    M,
    N,
    c,
    BB: tl.constexpr,
    BM: tl.constexpr,
    BN: tl.constexpr,
):
    rm = (tl.program_id(0) * BM + tl.arange(0, BM)).to(tl.int64)
    rn = tl.program_id(1) * BN + tl.arange(0, BN)
    w = load_tile(w_ptr, rm, rn, M, N)
    u = load_tile(u_ptr, rm, rn, M, N)
    acc_q = tl.zeros((BM, BN), tl.float32)
    acc_du = tl.zeros((BM, BN), tl.float32)
    for b0 in range(0, B, BB):
        rb = (b0 + tl.arange(0, BB)).to(tl.int64)
        lo = load_tile(lo_ptr, rb, rn, B, N)
        hi = load_tile(hi_ptr, rb, rn, B, N)
        zl = load_tile(zl_ptr, rb, rm, B, M)
        zh = load_tile(zh_ptr, rb, rm, B, M)
        gl = load_tile(gl_ptr, rb, rm, B, M)
        gh = load_tile(gh_ptr, rb, rm, B, M)
        q_n, q_f, d_n, d_f, far_hi = _interval_q_tile(lo, hi, w, u, zl, zh, gl, gh, c)
        acc_q += tl.sum(q_n + q_f, axis=0)
        acc_du += tl.sum(q_n * d_n + q_f * d_f, axis=0)
    store_tile(dw_ptr, -u * acc_q, rm, rn, M, N)
    store_tile(du_ptr, acc_du, rm, rn, M, N)


def triton_interval_forward(
    lo: Tensor, hi: Tensor, w: Tensor, u: Tensor, want_idx: bool
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """z_lo = max_i (u near)^2, z_hi = max_i (u far)^2 over the box [lo, hi], and optionally
    the first arg-maxes (int32)."""
    require_contiguous_float32_box("triton", lo, hi, w, u)
    (B, N), M = lo.shape, w.shape[0]
    z_lo = torch.empty(B, M, dtype=torch.float32, device=lo.device)
    z_hi = torch.empty(B, M, dtype=torch.float32, device=lo.device)
    idx_lo = torch.empty(B, M, dtype=torch.int32, device=lo.device) if want_idx else z_lo
    idx_hi = torch.empty(B, M, dtype=torch.int32, device=lo.device) if want_idx else z_hi
    arrays = (lo, hi, w, u, z_lo, z_hi, idx_lo, idx_hi)
    launch(_interval_forward_kernel, "BM", arrays, B, M, N, WANT_IDX=want_idx)
    if not want_idx:
        return z_lo, z_hi, None, None
    return z_lo, z_hi, idx_lo, idx_hi


def triton_interval_backward_pseudo(
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
    """Eq. (11) for both maxes, dense: q = 2 g exp(beta (t^2 - z)) t, t = u d, for (near, z_lo,
    g_lo) and (far, z_hi, g_hi); dw = -u sum_b q, du = sum_b q d, q u to the end d points to."""
    require_contiguous_float32_box("triton", lo, hi, w, u)
    (B, N), M = lo.shape, w.shape[0]
    zl, zh, gl, gh = (t.to(torch.float32).contiguous() for t in (z_lo, z_hi, g_lo, g_hi))
    c = float(beta) * LOG2E
    dlo = dhi = dw = du = None
    if need_x:
        dlo, dhi = torch.empty_like(lo), torch.empty_like(hi)
        arrays = (lo, hi, w, u, zl, zh, gl, gh, dlo, dhi)
        launch(_interval_backward_x_kernel, "BN", arrays, B, M, N, c)
    if need_params:
        dw, du = torch.empty_like(w), torch.empty_like(u)
        arrays = (lo, hi, w, u, zl, zh, gl, gh, dw, du)
        launch(_interval_backward_params_kernel, "MN", arrays, B, M, N, c)
    return dlo, dhi, dw, du


TRITON_INTERVAL_OPS = FusedIntervalOps(
    triton_interval_forward, triton_interval_backward_pseudo, interval_argmax_backward
)
