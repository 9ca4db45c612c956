"""The typed description of a classifier, saved with every checkpoint (``model.config``).

Geometry notation (paper, Sec. 6): one symbol per layer, output layer included:
``^`` And, ``v`` Or, ``*`` mixed. RBFI(512^, 512v, 512^, 10v) is
``ModelConfig("rbfi", (512, 512, 512, 10), "^v^v")``. Conv layers are entries of the same spec
(:mod:`rbfi.models.layers`): ``ModelConfig("rbfi", "c16k5s2,c32k4s2,512,10", "^v^v")`` is
RBFI(c16k5s2^, c32k4s2v, 512^, 10v).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rbfi.io.schema import Int, List, Num, Obj, OneOf, SchemaError, Str
from rbfi.models.layers import (
    CONV_PATTERN,
    SPEC_HELP,
    ConvSpec,
    LayerSpec,
    conv_specs,
    dense_sizes,
    feature_shapes,
)
from rbfi.options import Choice, Pair, PositiveInt, Text, check_fields, option

ARCHITECTURES = ("rbfi", "rbf", "relu", "sigmoid")
RBF_ARCHITECTURES = ("rbfi", "rbf")
GEOMETRY_SYMBOLS = {"^": "and", "v": "or", "*": "mixed"}
DEFAULT_LAYERS = (512, 512, 512, 10)
LOSS_OF_ARCH = {"rbfi": "square", "rbf": "square", "relu": "cross_entropy", "sigmoid": "square"}

# the ``model`` entry of checkpoint.json (format 1)
MODEL_SCHEMA = Obj(
    {
        "arch": Str(choices=ARCHITECTURES),
        "layers": List(OneOf((Int(min=1), Str(pattern=CONV_PATTERN)), SPEC_HELP), min_len=1),
    },
    {
        "geometry": Str(pattern=r"[\^v*]+"),
        "in_features": Int(min=1),
        "u_bounds": List(Num(min=0), 2, 2),
        "w_bounds": List(Num(), 2, 2),
    },
)


def parse_geometry(geometry: str, n_layers: int) -> tuple[str, ...]:
    """'^v^v' -> ('and', 'or', 'and', 'or'); one symbol (^ v *) per layer."""
    geometry = geometry.replace(" ", "")
    bad = sorted(set(geometry) - set(GEOMETRY_SYMBOLS))
    if bad or len(geometry) != n_layers:
        raise ValueError(
            f"geometry must have one symbol from '^' (And), 'v' (Or), '*' (mixed) per layer "
            f"({n_layers} layers), got {geometry!r}"
        )
    return tuple(GEOMETRY_SYMBOLS[c] for c in geometry)


def alternating_geometry(n_layers: int) -> str:
    """^v^v...: And and Or layers alternating, starting with And (the paper's Table 1 net)."""
    return "".join("^v"[i % 2] for i in range(n_layers))


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a classifier; :func:`rbfi.models.build_model` builds it."""

    arch: str = option("rbfi", "network kind", kind=Choice(ARCHITECTURES), flag="--model")
    layers: tuple[int | str, ...] = option(
        DEFAULT_LAYERS, f"layers, output layer included: {SPEC_HELP}", kind=LayerSpec()
    )
    geometry: str | None = option(
        None, "rbfi/rbf: one symbol per layer, ^ And, v Or, * mixed (default ^v^v...)", kind=Text()
    )
    in_features: int = option(784, "input size", kind=PositiveInt(), cli=False)
    u_bounds: tuple[float, float] = option(
        (0.01, 3.0), "rbfi/rbf: bounds of the scales u (Sec. 4.2)", kind=Pair(min=0.0)
    )
    w_bounds: tuple[float, float] = option(
        (0.0, 1.0), "rbfi/rbf: bounds of the centres w", kind=Pair()
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.arch in RBF_ARCHITECTURES:
            geometry = self.geometry or alternating_geometry(len(self.layers))
            parse_geometry(geometry, len(self.layers))
            object.__setattr__(self, "geometry", geometry.replace(" ", ""))
        elif self.geometry is not None:
            raise ValueError(f"geometry applies to rbfi and rbf models only, not {self.arch!r}")
        if self.is_conv:
            try:
                feature_shapes(self.layers, self.input_shape)
            except ValueError as exc:
                raise ValueError(f"layers: {exc}") from None

    @property
    def is_conv(self) -> bool:
        """True when the spec has conv layers (the net then takes images)."""
        return bool(self.conv_layers)

    @property
    def conv_layers(self) -> tuple[ConvSpec, ...]:
        return conv_specs(self.layers)

    @property
    def dense_layers(self) -> tuple[int, ...]:
        return dense_sizes(self.layers)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the input images: one channel, square (MNIST: 784 -> (1, 28, 28))."""
        side = math.isqrt(self.in_features)
        if side * side != self.in_features:
            raise ValueError(f"no image shape for {self.in_features} input features")
        return (1, side, side)

    @property
    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of the input and after every conv layer."""
        return feature_shapes(self.layers, self.input_shape)

    @property
    def dense_in_features(self) -> int:
        """Inputs of the first dense layer: the flattened output of the last conv layer."""
        return math.prod(self.feature_shapes[-1]) if self.is_conv else self.in_features

    @property
    def loss(self) -> str:
        """The paper's training loss for this architecture."""
        return LOSS_OF_ARCH[self.arch]

    @property
    def kinds(self) -> tuple[str, ...]:
        """'and' / 'or' / 'mixed' per layer (RBFI and RBF nets)."""
        return parse_geometry(self.geometry, len(self.layers))

    def to_json(self) -> dict:
        """The checkpoint's ``model`` entry (MLPs omit what does not apply to them)."""
        out = {"arch": self.arch, "layers": list(self.layers)}
        if self.arch in RBF_ARCHITECTURES:
            out["geometry"] = self.geometry
        out["in_features"] = self.in_features
        if self.arch in RBF_ARCHITECTURES:
            out["u_bounds"] = list(self.u_bounds)
            out["w_bounds"] = list(self.w_bounds)
        return out

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """Check ``data`` against :data:`MODEL_SCHEMA`, then build (ValueError if it fails)."""
        try:
            MODEL_SCHEMA.check(data, "model")
        except SchemaError as exc:
            raise ValueError(str(exc)) from None
        kwargs = dict(data)
        for key in ("layers", "u_bounds", "w_bounds"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    def describe(self) -> str:
        """Paper notation, e.g. 'RBFI(512^, 512v, 512^, 10v)', 'ReLU(512, 512, 512, 10)',
        'RBFI(c16k5s2^, c32k4s2v, 512^, 10v)'."""
        if self.arch in RBF_ARCHITECTURES:
            cells = ", ".join(f"{n}{g}" for n, g in zip(self.layers, self.geometry))
            return f"{self.arch.upper()}({cells})"
        name = {"relu": "ReLU", "sigmoid": "Sigmoid"}[self.arch]
        return f"{name}({', '.join(map(str, self.layers))})"
