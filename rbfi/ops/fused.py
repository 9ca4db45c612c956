"""The autograd plumbing shared by every fused backend (cpu, chunked, triton).

Forward saves x, w, u (references), z and, only when true gradients will be needed, the
arg-max; backward asks the backend for exactly the gradients autograd needs
(``ctx.needs_input_grad``): dx only for attacks, dw and du only for a first layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

Grads = tuple[Tensor | None, Tensor | None, Tensor | None]


def require_contiguous_float32(
    backend: str, x: Tensor, w: Tensor, u: Tensor, device: str = ""
) -> None:
    """Raise unless x, w, u are contiguous float32 tensors (on ``device`` when given)."""
    for name, t in (("x", x), ("w", w), ("u", u)):
        if t.dtype != torch.float32 or not t.is_contiguous() or device not in ("", t.device.type):
            raise ValueError(
                f"{backend} backend needs contiguous float32 {device.upper() or 'device'} "
                f"tensors; {name} is {t.dtype} on {t.device}, contiguous={t.is_contiguous()}"
            )


def require_contiguous_float32_box(
    backend: str, lo: Tensor, hi: Tensor, w: Tensor, u: Tensor, device: str = ""
) -> None:
    """Raise unless lo, hi, w, u are contiguous float32 tensors (on ``device`` when given)."""
    for name, t in (("lo", lo), ("hi", hi), ("w", w), ("u", u)):
        if t.dtype != torch.float32 or not t.is_contiguous() or device not in ("", t.device.type):
            raise ValueError(
                f"{backend} backend needs contiguous float32 {device.upper() or 'device'} "
                f"tensors; {name} is {t.dtype} on {t.device}, contiguous={t.is_contiguous()}"
            )


@dataclass(frozen=True)
class FusedOps:
    """A backend's three pieces.

    forward(x, w, u, want_idx) -> (z, argmax or None)
    backward_pseudo(x, w, u, z, g, beta, need_x, need_params) -> (dx, dw, du)   eq. (11)
    backward_argmax(x, w, u, idx, g, need_x, need_params) -> (dx, dw, du)       eq. (10)
    """

    forward: Callable[[Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]
    backward_pseudo: Callable[..., Grads]
    backward_argmax: Callable[..., Grads]
    contiguous: bool = True  # make x, w, u contiguous before the forward


class FusedScaledSqdistMax(torch.autograd.Function):
    """z = max_i (u (x - w))^2 by a fused backend ``ops``; backward eq. (11) or eq. (10)."""

    @staticmethod
    def forward(
        ctx, x: Tensor, w: Tensor, u: Tensor, pseudogradient: bool, beta: float, ops: FusedOps
    ) -> Tensor:
        if ops.contiguous:
            x, w, u = x.contiguous(), w.contiguous(), u.contiguous()
        want_idx = not pseudogradient and any(ctx.needs_input_grad[:3])
        z, idx = ops.forward(x, w, u, want_idx)
        ctx.save_for_backward(x, w, u, z, idx)
        ctx.pseudogradient, ctx.beta, ctx.ops = pseudogradient, beta, ops
        return z

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        x, w, u, z, idx = ctx.saved_tensors
        need_x, need_w, need_u = ctx.needs_input_grad[:3]
        need_params = need_w or need_u
        if ctx.pseudogradient:
            dx, dw, du = ctx.ops.backward_pseudo(x, w, u, z, g, ctx.beta, need_x, need_params)
        else:
            dx, dw, du = ctx.ops.backward_argmax(x, w, u, idx, g, need_x, need_params)
        return dx, dw if need_w else None, du if need_u else None, None, None, None


# --- the interval version ---------------------------------------------------------------------

IntervalGrads = tuple[Tensor | None, Tensor | None, Tensor | None, Tensor | None]


@dataclass(frozen=True)
class FusedIntervalOps:
    """A backend's pieces for the interval version (see :mod:`rbfi.ops`, "The interval version").

    forward(lo, hi, w, u, want_idx) -> (z_lo, z_hi, idx_lo or None, idx_hi or None)
    backward_pseudo(lo, hi, w, u, z_lo, z_hi, g_lo, g_hi, beta, need_x, need_params)
        -> (dlo, dhi, dw, du)                                                      eq. (11)
    backward_argmax(lo, hi, w, u, idx_lo, idx_hi, g_lo, g_hi, need_x, need_params)
        -> (dlo, dhi, dw, du)                                                      eq. (10)
    """

    forward: Callable[..., tuple[Tensor, Tensor, Tensor | None, Tensor | None]]
    backward_pseudo: Callable[..., IntervalGrads]
    backward_argmax: Callable[..., IntervalGrads]
    contiguous: bool = True


class FusedScaledSqdistMaxInterval(torch.autograd.Function):
    """(z_lo, z_hi) of z = max_i (u (x - w))^2 over the box lo <= x <= hi, by a fused backend."""

    @staticmethod
    def forward(ctx, lo, hi, w, u, pseudogradient: bool, beta: float, ops: FusedIntervalOps):
        if ops.contiguous:
            lo, hi, w, u = lo.contiguous(), hi.contiguous(), w.contiguous(), u.contiguous()
        want_idx = not pseudogradient and any(ctx.needs_input_grad[:4])
        z_lo, z_hi, idx_lo, idx_hi = ops.forward(lo, hi, w, u, want_idx)
        ctx.save_for_backward(lo, hi, w, u, z_lo, z_hi, idx_lo, idx_hi)
        ctx.pseudogradient, ctx.beta, ctx.ops = pseudogradient, beta, ops
        return z_lo, z_hi

    @staticmethod
    @once_differentiable
    def backward(ctx, g_lo: Tensor | None, g_hi: Tensor | None):
        lo, hi, w, u, z_lo, z_hi, idx_lo, idx_hi = ctx.saved_tensors
        g_lo = torch.zeros_like(z_lo) if g_lo is None else g_lo
        g_hi = torch.zeros_like(z_hi) if g_hi is None else g_hi
        need_lo, need_hi, need_w, need_u = ctx.needs_input_grad[:4]
        need_x, need_params = need_lo or need_hi, need_w or need_u
        if ctx.pseudogradient:
            grads = ctx.ops.backward_pseudo(
                lo, hi, w, u, z_lo, z_hi, g_lo, g_hi, ctx.beta, need_x, need_params
            )
        else:
            grads = ctx.ops.backward_argmax(
                lo, hi, w, u, idx_lo, idx_hi, g_lo, g_hi, need_x, need_params
            )
        dlo, dhi, dw, du = grads
        return (
            dlo if need_lo else None,
            dhi if need_hi else None,
            dw if need_w else None,
            du if need_u else None,
            None,
            None,
            None,
        )


# --- the l_p distance (l_inf-distance nets, issue 26) -----------------------------------------

LpGrads = tuple[Tensor | None, Tensor | None]


@dataclass(frozen=True)
class FusedLpOps:
    """A backend's pieces for y[b, j] = ||x[b] - w[j]||_p, 1 <= p < inf.

    forward(x, w, p) -> y (B, M)
    backward(x, w, y, g, p, need_x, need_w) -> (dx, dw)
        dx[b, i] = sum_j g sign(d) (|d| / y)^(p - 1), dw[j, i] = -sum_b (the same), d = x - w
    """

    forward: Callable[[Tensor, Tensor, float], Tensor]
    backward: Callable[..., LpGrads]
    contiguous: bool = True


def require_contiguous_float32_pair(backend: str, x: Tensor, w: Tensor, device: str = "") -> None:
    """Raise unless x and w are contiguous float32 tensors (on ``device`` when given)."""
    for name, t in (("x", x), ("w", w)):
        if t.dtype != torch.float32 or not t.is_contiguous() or device not in ("", t.device.type):
            raise ValueError(
                f"{backend} backend needs contiguous float32 {device.upper() or 'device'} "
                f"tensors; {name} is {t.dtype} on {t.device}, contiguous={t.is_contiguous()}"
            )


class FusedLpDistance(torch.autograd.Function):
    """y = ||x - w||_p (1 <= p < inf) by a fused backend ``ops``; true gradients."""

    @staticmethod
    def forward(ctx, x: Tensor, w: Tensor, p: float, ops: FusedLpOps) -> Tensor:
        if ops.contiguous:
            x, w = x.contiguous(), w.contiguous()
        y = ops.forward(x, w, p)
        ctx.save_for_backward(x, w, y)
        ctx.p, ctx.ops = p, ops
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):
        x, w, y = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[:2]
        dx, dw = ctx.ops.backward(x, w, y, g, ctx.p, need_x, need_w)
        return dx if need_x else None, dw if need_w else None, None, None
