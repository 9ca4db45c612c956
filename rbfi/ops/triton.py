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
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from rbfi.ops.chunked import argmax_backward
from rbfi.ops.fused import FusedOps, require_contiguous_float32

LOG2E = 1.4426950408889634
BLOCK_B, BLOCK_M, BLOCK_N = 16, 16, 16
NUM_WARPS = 4


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
        x = tl.load(
            x_ptr + rb[:, None] * N + rn[None, :], mask=(rb[:, None] < B) & mn[None, :], other=0.0
        )
        wu_mask = (rm[:, None] < M) & mn[None, :]
        w = tl.load(w_ptr + rm[:, None] * N + rn[None, :], mask=wu_mask, other=0.0)
        u = tl.load(u_ptr + rm[:, None] * N + rn[None, :], mask=wu_mask, other=0.0)
        t = u[None, :, :] * (x[:, None, :] - w[None, :, :])
        s = tl.where(mn[None, None, :], t * t, -1.0)
        blk = tl.max(s, axis=2)
        if WANT_IDX:
            blk_i = tl.argmax(s, axis=2, tie_break_left=True).to(tl.int32) + n0
            best_i = tl.where(blk > best, blk_i, best_i)
        best = tl.maximum(best, blk)
    out = rb[:, None] * M + rm[None, :]
    out_mask = (rb[:, None] < B) & (rm[None, :] < M)
    tl.store(z_ptr + out, best, mask=out_mask)
    if WANT_IDX:
        tl.store(idx_ptr + out, best_i, mask=out_mask)


@triton.jit
def _q_tile(x, w, u, z, g, c):
    """q = 2 g exp2(c (t^2 - z)) t, t = u (x - w), on a (BB, BM, BN) tile; returns (q, x - w)."""
    d = x[:, None, :] - w[None, :, :]
    t = u[None, :, :] * d
    e = tl.exp2(c * (t * t - z[:, :, None]))
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
    mb, mn = rb < B, rn < N
    x = tl.load(x_ptr + rb[:, None] * N + rn[None, :], mask=mb[:, None] & mn[None, :], other=0.0)
    acc = tl.zeros((BB, BN), tl.float32)
    for m0 in range(0, M, BM):
        rm = (m0 + tl.arange(0, BM)).to(tl.int64)
        mm = rm < M
        w = tl.load(
            w_ptr + rm[:, None] * N + rn[None, :], mask=mm[:, None] & mn[None, :], other=0.0
        )
        u = tl.load(
            u_ptr + rm[:, None] * N + rn[None, :], mask=mm[:, None] & mn[None, :], other=0.0
        )
        zg_mask = mb[:, None] & mm[None, :]
        z = tl.load(z_ptr + rb[:, None] * M + rm[None, :], mask=zg_mask, other=0.0)
        g = tl.load(g_ptr + rb[:, None] * M + rm[None, :], mask=zg_mask, other=0.0)
        q, d = _q_tile(x, w, u, z, g, c)
        acc += tl.sum(q * u[None, :, :], axis=1)
    tl.store(dx_ptr + rb[:, None] * N + rn[None, :], acc, mask=mb[:, None] & mn[None, :])


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
    mm, mn = rm < M, rn < N
    wu_mask = mm[:, None] & mn[None, :]
    w = tl.load(w_ptr + rm[:, None] * N + rn[None, :], mask=wu_mask, other=0.0)
    u = tl.load(u_ptr + rm[:, None] * N + rn[None, :], mask=wu_mask, other=0.0)
    acc_q = tl.zeros((BM, BN), tl.float32)
    acc_du = tl.zeros((BM, BN), tl.float32)
    for b0 in range(0, B, BB):
        rb = (b0 + tl.arange(0, BB)).to(tl.int64)
        mb = rb < B
        x = tl.load(
            x_ptr + rb[:, None] * N + rn[None, :], mask=mb[:, None] & mn[None, :], other=0.0
        )
        zg_mask = mb[:, None] & mm[None, :]
        z = tl.load(z_ptr + rb[:, None] * M + rm[None, :], mask=zg_mask, other=0.0)
        g = tl.load(g_ptr + rb[:, None] * M + rm[None, :], mask=zg_mask, other=0.0)
        q, d = _q_tile(x, w, u, z, g, c)
        acc_q += tl.sum(q, axis=0)
        acc_du += tl.sum(q * d, axis=0)
    out = rm[:, None] * N + rn[None, :]
    tl.store(dw_ptr + out, -u * acc_q, mask=wu_mask)
    tl.store(du_ptr + out, acc_du, mask=wu_mask)


def triton_forward(x: Tensor, w: Tensor, u: Tensor, want_idx: bool) -> tuple[Tensor, Tensor | None]:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and (optionally) the first arg-max."""
    require_contiguous_float32("triton", x, w, u)
    (B, N), M = x.shape, w.shape[0]
    z = torch.empty(B, M, dtype=torch.float32, device=x.device)
    idx = torch.empty(B, M, dtype=torch.int32, device=x.device) if want_idx else z
    grid = (triton.cdiv(B, BLOCK_B), triton.cdiv(M, BLOCK_M))
    _forward_kernel[grid](
        x,
        w,
        u,
        z,
        idx,
        B,
        M,
        N,
        WANT_IDX=want_idx,
        BB=BLOCK_B,
        BM=BLOCK_M,
        BN=BLOCK_N,
        num_warps=NUM_WARPS,
    )
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
        grid = (triton.cdiv(B, BLOCK_B), triton.cdiv(N, BLOCK_N))
        _backward_dx_kernel[grid](
            x, w, u, z, g, dx, B, M, N, c, BB=BLOCK_B, BM=BLOCK_M, BN=BLOCK_N, num_warps=NUM_WARPS
        )
    if need_params:
        dw, du = torch.empty_like(w), torch.empty_like(u)
        grid = (triton.cdiv(M, BLOCK_M), triton.cdiv(N, BLOCK_N))
        _backward_params_kernel[grid](
            x,
            w,
            u,
            z,
            g,
            dw,
            du,
            B,
            M,
            N,
            c,
            BB=BLOCK_B,
            BM=BLOCK_M,
            BN=BLOCK_N,
            num_warps=NUM_WARPS,
        )
    return dx, dw, du


TRITON_OPS = FusedOps(triton_forward, triton_backward_pseudo, argmax_backward)
