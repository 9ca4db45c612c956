"""Pure-PyTorch tiled backend: any device, any floating dtype, never the full (B, M, N) tensor.

Forward and backward walk (batch, unit) tiles of at most ``tile_elements`` scaled distances, so
peak extra memory is a few tiles whatever B, M and N are. It computes exactly what the reference
computes (no skipping, same float operations per element), only in pieces. It is the fallback for
float64, for CUDA without Triton, and for CPUs where the C kernel cannot be built.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import torch
from torch import Tensor

from rbfi.ops.fused import FusedIntervalOps, FusedLpOps, FusedOps
from rbfi.ops.reference import interval_offsets, near_far

TILE_ELEMENTS = 1 << 20  # about 4 MB per float32 temporary


def tiles(B: int, M: int, N: int, tile_elements: int = TILE_ELEMENTS) -> Iterator[tuple[int, ...]]:
    """(j0, j1, b0, b1) blocks with (b1 - b0) (j1 - j0) N <= max(tile_elements, N)."""
    mc = max(1, min(M, tile_elements // max(N, 1)))
    bc = max(1, min(B, tile_elements // (mc * max(N, 1))))
    for j0 in range(0, M, mc):
        for b0 in range(0, B, bc):
            yield j0, min(M, j0 + mc), b0, min(B, b0 + bc)


def chunked_forward(
    x: Tensor, w: Tensor, u: Tensor, want_idx: bool, tile_elements: int = TILE_ELEMENTS
) -> tuple[Tensor, Tensor | None]:
    """z[b, j] = max_i (u[j, i] (x[b, i] - w[j, i]))^2 and (optionally) the arg-max (int64)."""
    (B, N), M = x.shape, w.shape[0]
    z = x.new_empty(B, M)
    idx = torch.empty(B, M, dtype=torch.int64, device=x.device) if want_idx else None
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        s = (u[j0:j1] * (x[b0:b1].unsqueeze(1) - w[j0:j1])).square()
        if want_idx:
            vals, ind = s.max(dim=-1)
            z[b0:b1, j0:j1] = vals
            idx[b0:b1, j0:j1] = ind
        else:
            z[b0:b1, j0:j1] = s.amax(dim=-1)
    return z, idx


def chunked_backward_pseudo(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    z: Tensor,
    g: Tensor,
    beta: float,
    need_x: bool,
    need_params: bool,
    tile_elements: int = TILE_ELEMENTS,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (11): ds = g exp(beta (s - z)) for every i, then with t = u (x - w), q = 2 ds t:
    dx = sum_j q u, dw = -u sum_b q, du = sum_b q (x - w). Dense (nothing skipped)."""
    (B, N), M = x.shape, w.shape[0]
    dx = torch.zeros_like(x) if need_x else None
    q_sum = torch.zeros_like(w) if need_params else None
    du = torch.zeros_like(u) if need_params else None
    g2 = 2.0 * g.to(x.dtype)
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        wt, ut = w[j0:j1], u[j0:j1]
        d = x[b0:b1].unsqueeze(1) - wt  # (b, m, N)
        t = ut * d
        q = torch.exp(beta * (t.square() - z[b0:b1, j0:j1].unsqueeze(-1)))
        q.mul_(t).mul_(g2[b0:b1, j0:j1].unsqueeze(-1))
        if need_x:
            dx[b0:b1] += torch.einsum("bjn,jn->bn", q, ut)
        if need_params:
            q_sum[j0:j1] += q.sum(dim=0)
            du[j0:j1] += torch.einsum("bjn,bjn->jn", q, d)
    dw = -u * q_sum if need_params else None
    return dx, dw, du


def argmax_backward(
    x: Tensor, w: Tensor, u: Tensor, idx: Tensor, g: Tensor, need_x: bool, need_params: bool
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (10): ds = g at i* = idx[b, j] only. With d = x[b, i*] - w[j, i*], q = 2 g u d:
    dx[b, i*] += q u, dw[j, i*] -= q u, du[j, i*] += q d. O(B M) work, any device."""
    (B, N), M = x.shape, w.shape[0]
    idx = idx.long()
    units = torch.arange(M, device=x.device).expand(B, M)
    u_sel, w_sel = u[units, idx], w[units, idx]
    d = x.gather(1, idx) - w_sel
    q = 2.0 * g.to(x.dtype) * u_sel * d
    dx = dw = du = None
    if need_x:
        dx = torch.zeros_like(x).scatter_add_(1, idx, q * u_sel)
    if need_params:
        flat = (units * N + idx).reshape(-1)
        dw = torch.zeros(M * N, dtype=w.dtype, device=w.device)
        dw.index_add_(0, flat, (-q * u_sel).reshape(-1))
        du = torch.zeros(M * N, dtype=u.dtype, device=u.device)
        du.index_add_(0, flat, (q * d).reshape(-1))
        dw, du = dw.view(M, N), du.view(M, N)
    return dx, dw, du


def chunked_ops(tile_elements: int = TILE_ELEMENTS) -> FusedOps:
    """The chunked backend's pieces, walking tiles of at most ``tile_elements``."""
    return FusedOps(
        partial(chunked_forward, tile_elements=tile_elements),
        partial(chunked_backward_pseudo, tile_elements=tile_elements),
        argmax_backward,
        contiguous=False,
    )


# --- the interval version ---------------------------------------------------------------------


def chunked_interval_forward(
    lo: Tensor, hi: Tensor, w: Tensor, u: Tensor, want_idx: bool, tile_elements: int = TILE_ELEMENTS
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    """z_lo = max_i (u near)^2 and z_hi = max_i (u far)^2, tile by tile (and the arg-maxes)."""
    (B, N), M = lo.shape, w.shape[0]
    z_lo, z_hi = lo.new_empty(B, M), lo.new_empty(B, M)
    idx_lo = torch.empty(B, M, dtype=torch.int64, device=lo.device) if want_idx else None
    idx_hi = torch.empty(B, M, dtype=torch.int64, device=lo.device) if want_idx else None
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        near, far = interval_offsets(lo[b0:b1], hi[b0:b1], w[j0:j1])
        for z, idx, d in ((z_lo, idx_lo, near), (z_hi, idx_hi, far)):
            s = (u[j0:j1] * d).square()
            if want_idx:
                vals, ind = s.max(dim=-1)
                z[b0:b1, j0:j1] = vals
                idx[b0:b1, j0:j1] = ind
            else:
                z[b0:b1, j0:j1] = s.amax(dim=-1)
    return z_lo, z_hi, idx_lo, idx_hi


def chunked_interval_backward_pseudo(
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
    tile_elements: int = TILE_ELEMENTS,
) -> tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]:
    """Eq. (11) for both maxes. With q = 2 g exp(beta (s - z)) u d for d = near (g_lo, z_lo)
    and d = far (g_hi, z_hi): dw = -u sum_b q, du = sum_b q d, and q u goes to lo or hi,
    whichever end of the interval d was measured to. Dense (nothing skipped)."""
    (B, N), M = lo.shape, w.shape[0]
    dlo = torch.zeros_like(lo) if need_x else None
    dhi = torch.zeros_like(hi) if need_x else None
    q_sum = torch.zeros_like(w) if need_params else None
    du = torch.zeros_like(u) if need_params else None
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        ut = u[j0:j1]
        d_lo, d_hi = lo[b0:b1].unsqueeze(1) - w[j0:j1], hi[b0:b1].unsqueeze(1) - w[j0:j1]
        near, far, far_is_hi = near_far(d_lo, d_hi)
        for d, z, g, which in ((near, z_lo, g_lo, "near"), (far, z_hi, g_hi, "far")):
            t = ut * d
            q = torch.exp(beta * (t.square() - z[b0:b1, j0:j1].unsqueeze(-1)))
            q.mul_(t).mul_(2.0 * g.to(lo.dtype)[b0:b1, j0:j1].unsqueeze(-1))
            if need_x:
                qu = q * ut
                to_hi = far_is_hi if which == "far" else d < 0
                dhi[b0:b1] += torch.where(to_hi, qu, 0.0).sum(dim=1)
                dlo[b0:b1] += torch.where(to_hi, 0.0, qu).sum(dim=1)
            if need_params:
                q_sum[j0:j1] += q.sum(dim=0)
                du[j0:j1] += (q * d).sum(dim=0)
    dw = -u * q_sum if need_params else None
    return dlo, dhi, dw, du


def interval_argmax_backward(
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
    """Eq. (10) for both maxes: the gradient goes to the arg-max input only. O(B M), any
    device (the chunked and Triton backends; the CPU backend runs the same arithmetic in C,
    :func:`rbfi.ops.cpu.cpu_interval_backward_argmax`)."""
    (B, N), M = lo.shape, w.shape[0]
    units = torch.arange(M, device=lo.device).expand(B, M)
    dlo = torch.zeros_like(lo) if need_x else None
    dhi = torch.zeros_like(hi) if need_x else None
    dw = torch.zeros(M * N, dtype=w.dtype, device=w.device) if need_params else None
    du = torch.zeros(M * N, dtype=u.dtype, device=u.device) if need_params else None
    for idx, g, which in ((idx_lo, g_lo, "near"), (idx_hi, g_hi, "far")):
        idx = idx.long()
        u_sel, w_sel = u[units, idx], w[units, idx]
        near, far, far_is_hi = near_far(lo.gather(1, idx) - w_sel, hi.gather(1, idx) - w_sel)
        d, to_hi = (near, near < 0) if which == "near" else (far, far_is_hi)
        q = 2.0 * g.to(lo.dtype) * u_sel * d
        if need_x:
            dhi.scatter_add_(1, idx, torch.where(to_hi, q * u_sel, 0.0))
            dlo.scatter_add_(1, idx, torch.where(to_hi, 0.0, q * u_sel))
        if need_params:
            flat = (units * N + idx).reshape(-1)
            dw.index_add_(0, flat, (-q * u_sel).reshape(-1))
            du.index_add_(0, flat, (q * d).reshape(-1))
    if need_params:
        dw, du = dw.view(M, N), du.view(M, N)
    return dlo, dhi, dw, du


def chunked_interval_ops(tile_elements: int = TILE_ELEMENTS) -> FusedIntervalOps:
    """The chunked backend's interval pieces."""
    return FusedIntervalOps(
        partial(chunked_interval_forward, tile_elements=tile_elements // 2),
        partial(chunked_interval_backward_pseudo, tile_elements=tile_elements // 4),
        interval_argmax_backward,
        contiguous=False,
    )


# --- the l_p distance (l_inf-distance nets, issue 26) -----------------------------------------


def _lp_tile(x: Tensor, w: Tensor) -> tuple[Tensor, Tensor]:
    """(d, |d|) for d = x - w on a (b, m, N) tile."""
    d = x.unsqueeze(1) - w
    return d, d.abs()


def chunked_lp_forward(
    x: Tensor, w: Tensor, p: float, tile_elements: int = TILE_ELEMENTS
) -> Tensor:
    """y[b, j] = m (sum_i (|x - w| / m)^p)^(1/p), m = max_i |x_i - w_ji| (0 where m = 0)."""
    (B, N), M = x.shape, w.shape[0]
    y = x.new_empty(B, M)
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        _, a = _lp_tile(x[b0:b1], w[j0:j1])
        m = a.amax(dim=-1, keepdim=True)
        s = (a / m.clamp_min(torch.finfo(a.dtype).tiny)).pow(p).sum(dim=-1)
        y[b0:b1, j0:j1] = torch.where(m.squeeze(-1) > 0, m.squeeze(-1) * s.pow(1.0 / p), 0.0)
    return y


def chunked_lp_backward(
    x: Tensor,
    w: Tensor,
    y: Tensor,
    g: Tensor,
    p: float,
    need_x: bool,
    need_w: bool,
    tile_elements: int = TILE_ELEMENTS,
) -> tuple[Tensor | None, Tensor | None]:
    """q = g sign(d) (|d| / y)^(p - 1) (0 where y = 0); dx = sum_j q, dw = -sum_b q."""
    (B, N), M = x.shape, w.shape[0]
    dx = torch.zeros_like(x) if need_x else None
    dw = torch.zeros_like(w) if need_w else None
    positive = y > 0
    gy = torch.where(positive, g.to(x.dtype), 0.0)
    inv_y = torch.where(positive, 1.0 / torch.where(positive, y, 1.0), 0.0)
    for j0, j1, b0, b1 in tiles(B, M, N, tile_elements):
        d, a = _lp_tile(x[b0:b1], w[j0:j1])
        t = a * inv_y[b0:b1, j0:j1].unsqueeze(-1)
        q = t.pow(p - 1.0).mul_(d.sign()).mul_(gy[b0:b1, j0:j1].unsqueeze(-1))
        if need_x:
            dx[b0:b1] += q.sum(dim=1)
        if need_w:
            dw[j0:j1] -= q.sum(dim=0)
    return dx, dw


def chunked_lp_ops(tile_elements: int = TILE_ELEMENTS) -> FusedLpOps:
    """The chunked backend's l_p-distance pieces."""
    return FusedLpOps(
        partial(chunked_lp_forward, tile_elements=tile_elements),
        partial(chunked_lp_backward, tile_elements=tile_elements // 2),
        contiguous=False,
    )
