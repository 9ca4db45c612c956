"""Functional twins of the RBFI / RBF units (de Alfaro 2018, eq. 1-3, 9-11).

Notation, for one unit with centre ``w`` and scales ``u`` (both in R^n) and input ``x``:

    s_i = (u_i (x_i - w_i))^2                  squared scaled distances
    z   = max_i s_i                            (p = inf, RBFI)  or  sum_i s_i  (p = 2, RBF)
    y   = exp(-z)                              And unit, eq. (2)
    y   = 1 - exp(-z)                          Or unit,  eq. (3)

Training uses *pseudogradients*: in backward, the derivative of ``exp(-z)`` is replaced by
``-(1 + z)^-alpha`` (eq. 9, alpha = 1/2) and the derivative of ``max_i s_i`` with respect to
``s_i`` by ``exp(beta (s_i - max_j s_j))`` (eq. 11, beta = 1). With ``pseudogradient=False``
the true derivatives are used: ``-exp(-z)`` and the max's subgradient, 1 at the arg-max (eq. 10).

:func:`rbfi_interval` gives, for inputs known only to lie in a box [lo, hi], the exact range of
every unit's output: the building block of interval bound propagation (:mod:`rbfi.bounds`).

The l_inf-distance neuron of RBFI's closest modern relative (Zhang et al. 2021, 2022; issue 26),
y = ||x - w||_p + b with p annealed to inf during training: :func:`linf_dist`,
:func:`linf_dist_interval` and its mean-shift normalisation :func:`mean_shift`
(docs/linf-dist.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from rbfi.ops import (
    PSEUDO_EXP_ALPHA,
    PSEUDO_MAX_BETA,
    PseudoExpNeg,
    PseudoMax,
    exp_neg,
    lp_distance,
    lp_distance_interval,
    max_last,
    scaled_sqdist_max,
    scaled_sqdist_max_interval,
    vector_width,
)
from rbfi.ops.cpu import cpu_im2row, cpu_row2im
from rbfi.ops.dispatch import cpu_kernel_available
from rbfi.ops.reference import interval_offsets

__all__ = [
    "PSEUDO_EXP_ALPHA",
    "PSEUDO_MAX_BETA",
    "PseudoExpNeg",
    "PseudoMax",
    "exp_neg",
    "linf_dist",
    "linf_dist_interval",
    "max_last",
    "mean_shift",
    "rbfi",
    "rbfi_conv2d",
    "rbfi_conv2d_interval",
    "rbfi_interval",
    "scaled_sqdist_sum",
    "scaled_sqdist_sum_interval",
]

NORMS = ("inf", "l2")


def scaled_sqdist_sum(x: Tensor, w: Tensor, u: Tensor) -> Tensor:
    """z[b, j] = sum_i (u[j, i] (x[b, i] - w[j, i]))^2 (RBF, p = 2), by the matrix expansion

    z = x^2 (u^2)^T - 2 x (u^2 w)^T + sum_i u^2 w^2, clamped at 0 against rounding.
    Never materialises (B, M, N); gradients are the true ones, through autograd.
    """
    u2 = u.square()
    z = x.square() @ u2.T - 2.0 * (x @ (u2 * w).T) + (u2 * w.square()).sum(dim=1)
    return z.clamp_min(0.0)


def scaled_sqdist_sum_interval(
    lo: Tensor, hi: Tensor, w: Tensor, u: Tensor
) -> tuple[Tensor, Tensor]:
    """The exact range of z = sum_i (u_i (x_i - w_i))^2 over the box lo <= x <= hi: each term
    depends on x_i alone, so z_lo sums the terms' minima (nearest points) and z_hi their maxima
    (farthest points). Materialises (B, M, N); true gradients through autograd."""
    near, far = interval_offsets(lo, hi, w)
    return (u * near).square().sum(dim=-1), (u * far).square().sum(dim=-1)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be 'inf' or 'l2', got {norm!r}")


def _select(is_or: Tensor, when_or: Callable[[], Tensor], when_and: Callable[[], Tensor]):
    """``torch.where(is_or, when_or(), when_and())``: the same values and gradients, without the
    select (and the other branch) when every unit is of one kind (CPU masks only: on a GPU the
    check would wait for the device)."""
    if is_or.device.type == "cpu" and is_or.numel():
        if not is_or.any():
            return when_and()
        if is_or.all():
            return when_or()
    return torch.where(is_or, when_or(), when_and())


def rbfi(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    *,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> Tensor:
    """Output of a layer of RBFI (norm="inf", eq. 2/3) or RBF (norm="l2", eq. 1, p = 2) units.

    x: (B, N); w, u: (M, N); is_or: (M,) bool. Returns (B, M) with values in [0, 1]:
    exp(-z) for And units and 1 - exp(-z) for Or units.

    ``backend`` picks the implementation of z for norm="inf" (:mod:`rbfi.ops.dispatch`).
    """
    _check_norm(norm)
    if norm == "inf":
        z = scaled_sqdist_max(x, w, u, pseudogradient=pseudogradient, backend=backend)
    else:
        z = scaled_sqdist_sum(x, w, u)
    y = exp_neg(z, pseudogradient)
    return _select(is_or, lambda: 1.0 - y, lambda: y)


def rbfi_interval(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    *,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The exact range [y_lo, y_hi] of every unit's output over the input box [lo, hi].

    Per unit the range of z is exact (see :func:`rbfi.ops.scaled_sqdist_max_interval`) and
    y is monotone in z: And units (exp(-z), decreasing) give [exp(-z_hi), exp(-z_lo)], Or units
    (1 - exp(-z), increasing) [1 - exp(-z_lo), 1 - exp(-z_hi)]. Gradients flow through eq. (9)
    and (11) when ``pseudogradient`` (the certified-training default), else the true ones.
    """
    _check_norm(norm)
    if norm == "inf":
        z_lo, z_hi = scaled_sqdist_max_interval(
            lo, hi, w, u, pseudogradient=pseudogradient, backend=backend
        )
    else:
        z_lo, z_hi = scaled_sqdist_sum_interval(lo, hi, w, u)
    y_of_lo, y_of_hi = exp_neg(z_lo, pseudogradient), exp_neg(z_hi, pseudogradient)
    y_lo = _select(is_or, lambda: 1.0 - y_of_lo, lambda: y_of_hi)
    y_hi = _select(is_or, lambda: 1.0 - y_of_hi, lambda: y_of_lo)
    return y_lo, y_hi


# --- l_inf-distance neurons (Zhang et al. 2021, 2022; issue 26) --------------------------------


def linf_dist(x: Tensor, w: Tensor, *, p: float = float("inf"), backend: str = "auto") -> Tensor:
    """y[b, j] = ||x[b] - w[j]||_p, x (B, N), w (M, N) -> (B, M), true gradients.

    p = inf is the l_inf-distance neuron (the RBFI max kernel with u = 1); 1 <= p < inf its
    l_p-relaxation used in training (:func:`rbfi.ops.lp_distance`)."""
    return lp_distance(x, w, p, backend=backend)


def linf_dist_interval(
    lo: Tensor, hi: Tensor, w: Tensor, *, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """The exact range of ||x - w||_inf over the box [lo, hi]: [max_i dist(w_i, [lo_i, hi_i]),
    max_i max(|lo_i - w_i|, |hi_i - w_i|)] (each term depends on x_i alone)."""
    return lp_distance_interval(lo, hi, w, backend=backend)


def mean_shift(y: Tensor, running_mean: Tensor, *, training: bool, momentum: float = 0.1) -> Tensor:
    """Mean-shift normalisation (batch normalisation without the scaling): y - mean, the mean
    over the batch (dim 0 of y (B, M)) in training, ``running_mean`` in eval. In training
    ``running_mean`` is updated in place: (1 - momentum) running_mean + momentum batch mean."""
    if not training:
        return y - running_mean
    mean = y.mean(dim=0)
    with torch.no_grad():
        running_mean.mul_(1.0 - momentum).add_(mean.detach(), alpha=momentum)
    return y - mean


# --- convolutional layers: the dense units applied to every patch ------------------------------

Pair = tuple[int, int]


def _pair(value: int | Sequence[int], name: str, minimum: int) -> Pair:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair  # type: ignore[return-value]


def conv_arguments(
    kernel_size: int | Sequence[int], stride: int | Sequence[int], padding: int | Sequence[int]
) -> tuple[Pair, Pair, Pair]:
    """Checked (kernel, stride, padding) pairs; padding < kernel, so every window holds at least
    one pixel of the image (a window of padding only would be a max over nothing)."""
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride_ = _pair(stride, "stride", 1)
    pad = _pair(padding, "padding", 0)
    if pad[0] >= kernel[0] or pad[1] >= kernel[1]:
        raise ValueError(f"padding must be smaller than the kernel {kernel}, got {pad}")
    return kernel, stride_, pad


def conv_output_size(size: Sequence[int], kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    """(H', W') = ((H + 2 p - k) // s + 1, ...), as for ``torch.nn.Conv2d``."""
    return tuple(  # type: ignore[return-value]
        (n + 2 * p - k) // s + 1 for n, k, s, p in zip(size, kernel, stride, padding)
    )


def _check_image(x: Tensor, w: Tensor, kernel: Pair, padding: Pair, what: str = "x") -> None:
    window = kernel[0] * kernel[1]
    if w.dim() != 2 or w.shape[1] % window:
        raise ValueError(
            f"w must be (out_channels, in_channels*{kernel[0]}*{kernel[1]}), got {tuple(w.shape)}"
        )
    channels = w.shape[1] // window
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"expected {what} of shape (B, {channels}, H, W) for {channels} input channel(s), "
            f"got {tuple(x.shape)}"
        )
    padded = (x.shape[2] + 2 * padding[0], x.shape[3] + 2 * padding[1])
    if padded[0] < kernel[0] or padded[1] < kernel[1]:
        raise ValueError(
            f"the image {tuple(x.shape[2:])} (padded: {padded}) is smaller than the kernel {kernel}"
        )


def _valid_rows(size: int, n_out: int, k: int, s: int, p: int) -> list[Pair]:
    """For every output index o, the window offsets [a, b) that fall inside the image."""
    return [(max(0, p - o * s), min(k, size + p - o * s)) for o in range(n_out)]


def _pad_columns(t: Tensor, multiple: int) -> Tensor:
    """``t`` (..., N) with zero columns up to a multiple of ``multiple`` (a contiguous copy)."""
    extra = -t.shape[-1] % multiple
    return torch.nn.functional.pad(t, (0, extra)) if extra else t.contiguous()


def _use_c(x: Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32 and cpu_kernel_available()


class _Patches(torch.autograd.Function):
    """(B, C, H, W) -> (B*P, N') patches, row (b, oy, ox), columns in ``unfold``'s order
    (channel, kernel row, kernel column) and N' - C kh kw zero columns after them. On CPU
    float32 the C kernel's im2row / row2im (memcpy of kernel rows; ~20x a strided torch copy);
    elsewhere one copy from a strided view, and a backward of kh kw strided-slice additions."""

    @staticmethod
    def forward(ctx, x: Tensor, kernel: Pair, stride: Pair, width: int) -> Tensor:
        B, C, H, W = x.shape
        Ho, Wo = (H - kernel[0]) // stride[0] + 1, (W - kernel[1]) // stride[1] + 1
        ctx.geometry = (B, C, H, W, kernel, stride, Ho, Wo, C * kernel[0] * kernel[1])
        if _use_c(x):
            return cpu_im2row(x, kernel, stride, width)
        view = x.unfold(2, kernel[0], stride[0]).unfold(3, kernel[1], stride[1])
        n = ctx.geometry[-1]
        out = x.new_empty(B, Ho, Wo, width)
        out[..., :n].view(B, Ho, Wo, C, *kernel).copy_(view.permute(0, 2, 3, 1, 4, 5))
        out[..., n:].zero_()
        return out.view(B * Ho * Wo, width)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        B, C, H, W, (kh, kw), (sh, sw), Ho, Wo, n = ctx.geometry
        if _use_c(grad):
            return cpu_row2im(grad, (B, C, H, W), (kh, kw), (sh, sw)), None, None, None
        g = grad.reshape(B, Ho, Wo, -1)[..., :n].reshape(B, Ho, Wo, C, kh, kw)
        out = grad.new_zeros(B, C, H, W)
        for dy in range(kh):
            for dx in range(kw):
                rows = slice(dy, dy + sh * (Ho - 1) + 1, sh)
                cols = slice(dx, dx + sw * (Wo - 1) + 1, sw)
                out[:, :, rows, cols] += g[..., dy, dx].permute(0, 3, 1, 2)
        return out, None, None, None


def _patchwise(
    fn: Callable[..., tuple[Tensor, ...]],
    images: Sequence[Tensor],
    w: Tensor,
    u: Tensor,
    kernel: Pair,
    stride: Pair,
    padding: Pair,
    pad_value: float | None,
    multiple: int = 1,
) -> tuple[Tensor, ...]:
    """Apply the dense op ``fn(flat patches..., w, u) -> (B*P, O) tensors`` to every patch of
    ``images`` (each (B, C, H, W)); returns (B, O, H', W') tensors.

    The patches are laid out as (B*P, C*kh*kw), the shape the dense kernels take, so nothing of
    size patches x out x window is ever made. With ``pad_value`` None the padded positions are
    excluded from the unit: output positions are grouped by which window offsets lie inside the
    image (at most (1 + 2 ceil(p/s))^2 groups), and each group runs on those columns of its
    patches and of w and u only. ``multiple``: the window (of patches, w, u) is padded with zero
    columns to a multiple of it, in the copy that lays the patches out anyway; a zero column
    (x = w = u = 0) adds s = 0 to a max of non-negative terms and q = 0 to every gradient.
    """
    B, _, H, W = images[0].shape
    out_hw = conv_output_size((H, W), kernel, stride, padding)
    n_pos, M, n = out_hw[0] * out_hw[1], w.shape[0], w.shape[1]
    if padding != (0, 0):
        pads = (padding[1], padding[1], padding[0], padding[0])
        fill = 0.0 if pad_value is None else pad_value  # excluded pixels are never read
        images = [torch.nn.functional.pad(x, pads, value=fill) for x in images]

    def finish(ys: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        return tuple(y.reshape(B, n_pos, M).transpose(1, 2).reshape(B, M, *out_hw) for y in ys)

    def padded(t: Tensor) -> Tensor:
        return _pad_columns(t, multiple)

    if pad_value is not None or padding == (0, 0):
        width = n + -n % multiple
        flats = [_Patches.apply(x, kernel, stride, width) for x in images]
        return finish(fn(*flats, padded(w), padded(u)))
    patches = [_Patches.apply(x, kernel, stride, n).view(B, n_pos, n) for x in images]
    rows = _valid_rows(H, out_hw[0], kernel[0], stride[0], padding[0])
    cols = _valid_rows(W, out_hw[1], kernel[1], stride[1], padding[1])
    groups: dict[tuple[Pair, Pair], list[int]] = {}
    for oy, row in enumerate(rows):
        for ox, col in enumerate(cols):
            groups.setdefault((row, col), []).append(oy * out_hw[1] + ox)
    channels = n // (kernel[0] * kernel[1])
    offsets = torch.arange(n, device=w.device).reshape(channels, *kernel)
    order, pieces = [], []
    for ((ra, rb), (ca, cb)), positions in groups.items():
        index = torch.tensor(positions, device=w.device)
        columns = offsets[:, ra:rb, ca:cb].reshape(-1)
        views = [p.index_select(1, index) for p in patches]
        wg, ug = w, u
        if columns.numel() < n:
            views = [v.index_select(2, columns) for v in views]
            wg, ug = w.index_select(1, columns), u.index_select(1, columns)
        flats = [padded(v).reshape(B * len(positions), -1) for v in views]
        ys = fn(*flats, padded(wg), padded(ug))
        pieces.append([y.reshape(B, len(positions), M) for y in ys])
        order.extend(positions)
    inverse = torch.empty(n_pos, dtype=torch.long)
    inverse[torch.tensor(order)] = torch.arange(n_pos)
    inverse = inverse.to(w.device)
    joined = [torch.cat(parts, dim=1).index_select(1, inverse) for parts in zip(*pieces)]
    return finish(tuple(y.reshape(B * n_pos, M) for y in joined))


def _rbfi_conv(
    dense: Callable[..., tuple[Tensor, ...]],
    images: list[Tensor],
    w: Tensor,
    u: Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    pad_value: float | None,
    norm: str,
    backend: str,
    what: str,
) -> tuple[Tensor, ...]:
    """The dense op ``dense`` on every patch of ``images`` (checked against w's window; the
    first is named ``what`` in errors), with the window padded to the kernels' SIMD width for
    RBFI (inf) units: what :func:`rbfi_conv2d` and its interval twin share."""
    kernel, stride_, pad = conv_arguments(kernel_size, stride, padding)
    _check_image(images[0], w, kernel, pad, what)
    multiple = vector_width(backend, (*images, w, u)) if norm == "inf" else 1
    return _patchwise(dense, images, w, u, kernel, stride_, pad, pad_value, multiple)


def rbfi_conv2d(
    x: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    *,
    pad_value: float | None = None,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> Tensor:
    """A convolutional layer of RBFI (or RBF) units: :func:`rbfi` on every patch.

    x: (B, C, H, W); w, u: (O, C*kh*kw), row j the unit of output channel j over the window in
    the order of ``torch.nn.functional.unfold`` (channel, then kernel row, then column: w[j]
    reshaped to (C, kh, kw) is channel j's kernel); is_or: (O,) bool. Returns (B, O, H', W')
    with y[b, j, oy, ox] = the unit j on the patch at (oy, ox).

    Padding (``padding`` < ``kernel_size``): with ``pad_value`` None (default) the positions
    outside the image are excluded from the unit, z = max over the window's pixels inside the
    image (l2: their sum); with a number, they are pixels of that known value.
    """
    _check_norm(norm)

    def dense(flat: Tensor, wg: Tensor, ug: Tensor) -> tuple[Tensor]:
        return (
            rbfi(flat, wg, ug, is_or, norm=norm, pseudogradient=pseudogradient, backend=backend),
        )

    conv = (kernel_size, stride, padding, pad_value, norm, backend)
    return _rbfi_conv(dense, [x], w, u, *conv, "x")[0]


def rbfi_conv2d_interval(
    lo: Tensor,
    hi: Tensor,
    w: Tensor,
    u: Tensor,
    is_or: Tensor,
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    *,
    pad_value: float | None = None,
    norm: str = "inf",
    pseudogradient: bool = True,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """The exact range of every output of :func:`rbfi_conv2d` over the box [lo, hi] (both
    (B, C, H, W)): each output is one dense unit on one patch, so its range is
    :func:`rbfi_interval` on the patch view of lo and hi (padded pixels of a ``pad_value`` are
    the point [pad_value, pad_value]; excluded ones stay excluded)."""
    _check_norm(norm)
    if lo.shape != hi.shape:
        raise ValueError(f"lo and hi differ in shape: {tuple(lo.shape)}, {tuple(hi.shape)}")

    def dense(flat_lo: Tensor, flat_hi: Tensor, wg: Tensor, ug: Tensor) -> tuple[Tensor, Tensor]:
        return rbfi_interval(
            flat_lo,
            flat_hi,
            wg,
            ug,
            is_or,
            norm=norm,
            pseudogradient=pseudogradient,
            backend=backend,
        )

    conv = (kernel_size, stride, padding, pad_value, norm, backend)
    return _rbfi_conv(dense, [lo, hi], w, u, *conv, "lo")  # type: ignore[return-value]
