"""The layer spec of a net: one entry per layer, output layer included, e.g.
``c16k5s2,c32k4s2,512,10``.

Grammar (entries separated by commas)::

    entry  := N | conv                      N: a dense layer of N units
    conv   := "c" OUT "k" K ["s" S] ["p" P] OUT channels, K x K kernel, stride S (default 1),
                                            padding P (default 0, P < K)

Conv layers come first, dense layers after them, and the last entry (the class scores) is
dense; the flattening between the last conv layer and the first dense layer is implicit.
Entries are kept as given in Python: dense layers as ints, conv layers as their canonical
string (``"c16k5s1p0"`` -> ``"c16k5"``), so an MLP's spec is a tuple of ints, exactly as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rbfi.options import Int, Kind

CONV_PATTERN = r"c([1-9][0-9]*)k([1-9][0-9]*)(?:s([1-9][0-9]*))?(?:p([0-9]+))?"
SPEC_HELP = "N (dense units) or cOUTkK[sSTRIDE][pPAD] (conv layer), e.g. c16k5s2,c32k4s2,512,10"


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer of a spec: ``c<out>k<kernel>[s<stride>][p<padding>]``."""

    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @classmethod
    def parse(cls, text: str) -> ConvSpec:
        match = re.fullmatch(CONV_PATTERN, text.strip())
        if match is None:
            raise ValueError(f"expected a conv layer cOUTkK[sSTRIDE][pPAD], got {text!r}")
        out, kernel, stride, padding = (int(g) if g else None for g in match.groups())
        spec = cls(out, kernel, stride or 1, padding or 0)
        if spec.padding >= spec.kernel:
            raise ValueError(f"conv layer {text!r}: padding must be smaller than the kernel")
        return spec

    def __str__(self) -> str:
        stride = f"s{self.stride}" if self.stride != 1 else ""
        padding = f"p{self.padding}" if self.padding else ""
        return f"c{self.out_channels}k{self.kernel}{stride}{padding}"

    def output_size(self, size: int) -> int:
        """The output side of an input side ``size`` ((size + 2 p - k) // s + 1)."""
        return (size + 2 * self.padding - self.kernel) // self.stride + 1


def is_conv(entry: int | str) -> bool:
    return isinstance(entry, str)


def parse_layers(value: str | Sequence[int | str]) -> tuple[int | str, ...]:
    """Checked, normalised spec: ints for dense layers, canonical strings for conv layers."""
    items = value.split(",") if isinstance(value, str) else list(value)
    if not items:
        raise ValueError("expected at least one layer")
    layers: list[int | str] = []
    for item in items:
        text = str(item).strip()
        if isinstance(item, str) and text.startswith("c"):
            layers.append(str(ConvSpec.parse(text)))
            continue
        try:
            layers.append(Int(min=1).check(text if isinstance(item, str) else item))
        except ValueError:
            raise ValueError(
                f"expected comma-separated layers {SPEC_HELP}; got {value!r}"
            ) from None
    kinds = [is_conv(entry) for entry in layers]
    if kinds[-1]:
        raise ValueError(f"the last layer (the class scores) must be dense, got {layers[-1]!r}")
    if any(kinds[k + 1] and not kinds[k] for k in range(len(kinds) - 1)):
        raise ValueError(f"conv layers must come before every dense layer, got {value!r}")
    return tuple(layers)


def conv_specs(layers: Sequence[int | str]) -> tuple[ConvSpec, ...]:
    return tuple(ConvSpec.parse(entry) for entry in layers if is_conv(entry))


def dense_sizes(layers: Sequence[int | str]) -> tuple[int, ...]:
    return tuple(entry for entry in layers if not is_conv(entry))


def feature_shapes(
    layers: Sequence[int | str], input_shape: tuple[int, int, int]
) -> list[tuple[int, int, int]]:
    """(C, H, W) of the input and after every conv layer; ValueError when a kernel does not fit."""
    shapes = [tuple(input_shape)]
    for spec in conv_specs(layers):
        _, height, width = shapes[-1]
        out = (spec.out_channels, spec.output_size(height), spec.output_size(width))
        if min(height, width) + 2 * spec.padding < spec.kernel:
            raise ValueError(
                f"conv layer {spec} does not fit its {height}x{width} input (kernel {spec.kernel})"
            )
        shapes.append(out)
    return shapes  # type: ignore[return-value]


class LayerSpec(Kind):
    """The ``--layers`` option: a comma-separated spec (see the module docstring)."""

    metavar = "N|cOkK[sS][pP],..."

    def parse(self, text):
        return self.check(str(text))

    def check(self, value):
        return parse_layers(value)
