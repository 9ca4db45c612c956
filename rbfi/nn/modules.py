"""The RBFI layer as a ``torch.nn`` module (state here, math in :mod:`rbfi.nn.functional`)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

import rbfi.nn.functional as F

UNIT_KINDS = ("and", "or", "mixed")
NORMS = F.NORMS
U_INIT = (0.2, 0.7)  # the author's code: u ~ U[0.2, 0.7]
U_BOUNDS = (0.01, 3.0)  # u is kept in [0.01, 3] (Sec. 4.2)
W_BOUNDS = (0.0, 1.0)  # w is kept in [0, 1], the pixels' range
# how u starts: "rbfi" U[0.2, 0.7] (the author's, for any n), "sqrt-n" the same times
# rbf_u_scale(n) (of order 1 / sqrt(n): for RBF units, which sum n terms)
U_INITS = ("rbfi", "sqrt-n")


def default_u_init(norm: str) -> str:
    """The initialisation a layer of ``norm`` units gets unless told: "sqrt-n" for RBF (l2)
    units, "rbfi" for RBFI (inf) units."""
    return "sqrt-n" if norm == "l2" else "rbfi"


def rbf_u_scale(in_features: int, u_range: tuple[float, float] = U_INIT) -> float:
    """The factor c / sqrt(n) by which RBF (l2) units scale RBFI's u ~ U[a, b] at
    initialisation, c = sqrt(6 / E[u^2]) with E[u^2] = (a^2 + a b + b^2) / 3.

    An RBF unit sums n terms, z = sum_i u_i^2 (x_i - w_i)^2, where an RBFI unit takes their
    max; with RBFI's u ~ U[0.2, 0.7] a unit on 784 inputs starts at z ~ 50 and exp(-z) ~ 0.
    As the RBF literature sets a Gaussian's width from the typical distance between inputs
    and centres (so that z = ||x - c||^2 / sigma^2 is of order 1 where the data are), u is
    scaled so that E[z] = 1 for x and w independent and uniform on [0, 1]
    (E[(x - w)^2] = 1/6): u of order 1 / sqrt(n), z of order 1 for any n.
    """
    a, b = u_range
    mean_square = (a * a + a * b + b * b) / 3.0
    return math.sqrt(6.0 / mean_square) / math.sqrt(in_features)


def input_rows(x: Tensor, in_features: int, layer: str) -> Tensor:
    """``x`` of shape (*, in_features) as rows (-1, in_features); ValueError naming ``layer``
    for any other shape."""
    if x.dim() < 1 or x.shape[-1] != in_features:
        raise ValueError(f"{layer} expects input of shape (*, {in_features}), got {tuple(x.shape)}")
    return x.reshape(-1, in_features)


def _check_interval(name: str, bounds: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(b) for b in bounds)
    if not (lo <= hi) or lo != lo or hi != hi:
        raise ValueError(f"{name} must be (low, high) with low <= high, got {bounds!r}")
    return lo, hi


class RBFI(nn.Module):
    """A layer of RBFI units (eq. 2/3) or, with ``norm="l2"``, RBF units (eq. 1, p = 2).

    y_j = exp(-z_j) (And) or 1 - exp(-z_j) (Or), z_j = max_i (u_ji (x_i - w_ji))^2.

    Parameters ``w`` and ``u`` have shape (out_features, in_features). The boolean buffer
    ``is_or`` (out_features,) says which units are Or units: all False for ``kind="and"``,
    all True for ``"or"``, drawn at random (then fixed, and saved with the model) for
    ``"mixed"``. ``u_init`` says how u starts (:data:`U_INITS`; default by ``norm``:
    :func:`default_u_init`). ``u`` and ``w`` are kept in ``u_bounds`` and ``w_bounds`` by
    :meth:`project_`, which the trainer calls after every optimiser step (see
    :func:`rbfi.nn.project_`). The bounds are buffers, so they travel with ``state_dict``,
    ``deepcopy`` and ``.to()``.

    ``pseudogradient`` is a plain attribute, switchable at run time: True backpropagates
    through eq. (9) and (11); False through the true derivatives.

    Shape:
        - Input: (*, in_features), any number of leading dimensions (like ``nn.Linear``).
        - Output: (*, out_features), values in [0, 1].
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        kind: str = "and",
        *,
        norm: str = "inf",
        u_bounds: tuple[float, float] = U_BOUNDS,
        w_bounds: tuple[float, float] = W_BOUNDS,
        u_init: str | None = None,
        pseudogradient: bool = True,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if kind not in UNIT_KINDS:
            raise ValueError(f"kind must be one of {UNIT_KINDS}, got {kind!r}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
        u_init = default_u_init(norm) if u_init is None else u_init
        if u_init not in U_INITS:
            raise ValueError(f"u_init must be one of {U_INITS}, got {u_init!r}")
        if in_features < 1 or out_features < 1:
            raise ValueError(
                f"in_features and out_features must be >= 1, got {in_features}, {out_features}"
            )
        u_lo, u_hi = _check_interval("u_bounds", u_bounds)
        w_lo, w_hi = _check_interval("w_bounds", w_bounds)
        if u_lo < 0:
            raise ValueError(f"u_bounds must be non-negative, got {u_bounds!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_features = in_features
        self.out_features = out_features
        self.kind = kind
        self.norm = norm
        self.u_init = u_init
        self.pseudogradient = pseudogradient
        self.backend = backend
        self.w = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.u = nn.Parameter(torch.empty(out_features, in_features, **factory))
        self.register_buffer("is_or", torch.zeros(out_features, dtype=torch.bool, device=device))
        self.register_buffer("u_bounds", torch.tensor([u_lo, u_hi], **factory))
        self.register_buffer("w_bounds", torch.tensor([w_lo, w_hi], **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """w ~ U(w_bounds); u ~ U[0.2, 0.7] (``u_init`` "rbfi", RBFI units' default), the same
        times :func:`rbf_u_scale` (of order 1 / sqrt(in_features); "sqrt-n", RBF (l2) units'
        default); u clamped to u_bounds; draw the Or mask if mixed."""
        with torch.no_grad():
            w_lo, w_hi = self.w_bounds.tolist()
            self.w.uniform_(w_lo, w_hi)
            self.u.uniform_(*U_INIT)
            if self.u_init == "sqrt-n":
                self.u.mul_(rbf_u_scale(self.in_features))
            if self.kind == "mixed":
                self.is_or.copy_(torch.rand(self.out_features, device=self.is_or.device) < 0.5)
            else:
                self.is_or.fill_(self.kind == "or")
        self.project_()

    @torch.no_grad()
    def project_(self) -> None:
        """Clamp u into u_bounds and w into w_bounds, in place (Sec. 4.2)."""
        u_lo, u_hi = self.u_bounds.tolist()
        w_lo, w_hi = self.w_bounds.tolist()
        self.u.clamp_(u_lo, u_hi)
        self.w.clamp_(w_lo, w_hi)

    def forward(self, x: Tensor) -> Tensor:
        """y = exp(-z) (And) or 1 - exp(-z) (Or) for every unit; x: (*, in_features)."""
        flat = self._flatten(x)
        y = F.rbfi(
            flat,
            self.w,
            self.u,
            self.is_or,
            norm=self.norm,
            pseudogradient=self.pseudogradient,
            backend=self.backend,
        )
        return y.reshape(*x.shape[:-1], self.out_features)

    def interval(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """The exact output range of every unit over the input box [lo, hi] (both
        (*, in_features), lo <= hi); see :func:`rbfi.nn.functional.rbfi_interval`."""
        if lo.shape != hi.shape:
            raise ValueError(f"lo and hi differ in shape: {tuple(lo.shape)}, {tuple(hi.shape)}")
        y_lo, y_hi = F.rbfi_interval(
            self._flatten(lo),
            self._flatten(hi),
            self.w,
            self.u,
            self.is_or,
            norm=self.norm,
            pseudogradient=self.pseudogradient,
            backend=self.backend,
        )
        shape = (*lo.shape[:-1], self.out_features)
        return y_lo.reshape(shape), y_hi.reshape(shape)

    def _flatten(self, x: Tensor) -> Tensor:
        return input_rows(x, self.in_features, "RBFI")

    def _units_repr(self) -> str:
        """The units' settings, as :meth:`extra_repr` ends."""
        u_lo, u_hi = self.u_bounds.tolist()
        w_lo, w_hi = self.w_bounds.tolist()
        return (
            f"kind={self.kind!r}, norm={self.norm!r}, u_bounds=({u_lo:g}, {u_hi:g}), "
            f"w_bounds=({w_lo:g}, {w_hi:g}), pseudogradient={self.pseudogradient}"
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            + self._units_repr()
        )


class RBFIConv2d(RBFI):
    """A convolutional layer of RBFI (or RBF) units: the dense units of :class:`RBFI` applied to
    every kh x kw patch of the image, as ``nn.Conv2d`` applies its linear units.

    Unit j (output channel j) has ``w[j]`` and ``u[j]`` of length in_channels*kh*kw, ordered
    like ``torch.nn.functional.unfold``: ``w[j].view(in_channels, kh, kw)`` is its kernel. So
    ``w``, ``u``, ``is_or``, ``u_bounds``, ``w_bounds``, :meth:`project_`, ``pseudogradient``,
    ``backend`` and the initialisation are exactly those of ``RBFI(in_channels*kh*kw,
    out_channels, kind)`` (this class is one: :func:`rbfi.nn.project_`,
    :func:`rbfi.nn.attach_projection` and the trainer's projection cover it).

    Padding (``padding`` < ``kernel_size``): a distance unit reads a pixel as evidence about how
    far the input is from its centre, so a padded zero would be a fictitious black pixel that an
    And unit with w = 1 there rejects the whole patch for. By default (``pad_value=None``) the
    positions outside the image are *excluded*: a border unit is the max (l2: the sum) over the
    pixels that exist. ``pad_value=c`` instead makes them known pixels of value c. Nets built from
    a spec (:mod:`rbfi.models`) use the default; docs/conv.md.

    Shape:
        - Input: (B, in_channels, H, W), H + 2 padding >= kh (likewise W).
        - Output: (B, out_channels, H', W'), H' = (H + 2 p - kh) // stride + 1; values in [0, 1].
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        kind: str = "and",
        *,
        pad_value: float | None = None,
        norm: str = "inf",
        u_bounds: tuple[float, float] = U_BOUNDS,
        w_bounds: tuple[float, float] = W_BOUNDS,
        u_init: str | None = None,
        pseudogradient: bool = True,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        kernel, stride_, pad = F.conv_arguments(kernel_size, stride, padding)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}"
            )
        if pad_value is not None and pad_value != pad_value:
            raise ValueError("pad_value must be a number or None (exclude), got nan")
        super().__init__(
            in_channels * kernel[0] * kernel[1],
            out_channels,
            kind,
            norm=norm,
            u_bounds=u_bounds,
            w_bounds=w_bounds,
            u_init=u_init,
            pseudogradient=pseudogradient,
            backend=backend,
            device=device,
            dtype=dtype,
        )
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel, stride_, pad
        self.pad_value = None if pad_value is None else float(pad_value)

    def _conv_args(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "stride": self.stride,
            "padding": self.padding,
            "pad_value": self.pad_value,
            "norm": self.norm,
            "pseudogradient": self.pseudogradient,
            "backend": self.backend,
        }

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H', W'); see :func:`F.rbfi_conv2d`."""
        return F.rbfi_conv2d(x, self.w, self.u, self.is_or, **self._conv_args())

    def interval(self, lo: Tensor, hi: Tensor) -> tuple[Tensor, Tensor]:
        """The exact range of every output over the box [lo, hi] (both (B, C, H, W))."""
        return F.rbfi_conv2d_interval(lo, hi, self.w, self.u, self.is_or, **self._conv_args())

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(H', W') of an input image of (height, width)."""
        return F.conv_output_size((height, width), self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        pad = "" if self.pad_value is None else f", pad_value={self.pad_value:g}"
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}{pad}, " + self._units_repr()
        )
