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

from rbfi.data import DATASET_NAMES, dataset_option, get_dataset
from rbfi.io.schema import Bool, Int, List, Nullable, Num, Obj, OneOf, SchemaError, Str
from rbfi.models.layers import (
    CONV_PATTERN,
    SPEC_HELP,
    ConvSpec,
    LayerSpec,
    conv_specs,
    dense_sizes,
    feature_shapes,
)
from rbfi.nn.modules import U_BOUNDS, U_INITS, W_BOUNDS, default_u_init
from rbfi.options import (
    Choice,
    Float,
    Pair,
    PositiveFloat,
    PositiveInt,
    Text,
    check_fields,
    option,
)

ARCHITECTURES = ("rbfi", "rbf", "relu", "sigmoid", "linf-dist")
RBF_ARCHITECTURES = ("rbfi", "rbf")
LINF = "linf-dist"  # l_inf-distance nets (Zhang et al. 2021, 2022), docs/linf-dist.md
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the papers' input normalisation
GEOMETRY_SYMBOLS = {"^": "and", "v": "or", "*": "mixed"}
DEFAULT_LAYERS = (512, 512, 512, 10)
LOSS_OF_ARCH = {
    "rbfi": "square",
    "rbf": "square",
    "relu": "cross_entropy",
    "sigmoid": "square",
    LINF: "cross_entropy",
}
LINF_GROUP = "l_inf-distance nets (--model linf-dist; docs/linf-dist.md)"
# how every RBF (l2) net was initialised before issue 26, and every RBFI net still is: a
# checkpoint's model without "u_init" was initialised so (it is left out when it holds this)
LEGACY_U_INIT = "rbfi"

# the ``model`` entry of checkpoint.json (format 1)
MODEL_SCHEMA = Obj(
    {
        "arch": Str(choices=ARCHITECTURES),
        "layers": List(OneOf((Int(min=1), Str(pattern=CONV_PATTERN)), SPEC_HELP), min_len=1),
    },
    {
        "geometry": Str(pattern=r"[\^v*]+"),
        "in_features": Int(min=1),
        "dataset": Nullable(Str(choices=DATASET_NAMES)),  # absent: mnist
        "u_bounds": List(Num(min=0), 2, 2),
        "w_bounds": List(Num(), 2, 2),
        "u_init": Str(choices=U_INITS),  # absent: "rbfi" (LEGACY_U_INIT)
        "linf_identity": Num(min=0),
        "linf_identity_spread": Bool(),
        "linf_mean": Num(),
        "linf_std": Num(min=0),
        "linf_scale_learnable": Bool(),
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
    dataset: str | None = dataset_option("mnist")
    in_features: int | None = option(
        None, "input size (default: C x H x W of the dataset)", kind=PositiveInt(), cli=False
    )
    u_bounds: tuple[float, float] = option(
        U_BOUNDS, "rbfi/rbf: bounds of the scales u (Sec. 4.2)", kind=Pair(min=0.0)
    )
    w_bounds: tuple[float, float] = option(
        W_BOUNDS, "rbfi/rbf: bounds of the centres w", kind=Pair()
    )
    u_init: str | None = option(
        None,
        "rbfi/rbf: how the scales u start: rbfi = U[0.2, 0.7] (the author's; default for "
        "rbfi), sqrt-n = the same times about 3.9 / sqrt(inputs per unit) (default for rbf, "
        "whose units sum their inputs' terms: z starts of order 1)",
        kind=Choice(U_INITS),
    )
    linf_identity: float = option(
        10.0,
        "identity initialisation: w[j, j mod n] = -VALUE in layers with n <= out_features "
        "inputs (0: off; the papers: 10)",
        kind=Float(min=0.0),
        group=LINF_GROUP,
    )
    linf_identity_spread: bool = option(
        True,
        "no identity initialisation in hidden layers narrower than their input (the papers' "
        "rule; default: unit j copies input floor(j n / width), this project's extension for "
        "widths < 784)",
        flag="--linf-no-identity-spread",
        invert=True,
        group=LINF_GROUP,
    )
    linf_mean: float = option(
        MNIST_MEAN,
        "inputs enter as (x - MEAN) / STD (the papers' MNIST statistics)",
        kind=Float(),
        group=LINF_GROUP,
    )
    linf_std: float = option(MNIST_STD, "see --linf-mean", kind=PositiveFloat(), group=LINF_GROUP)
    linf_scale_learnable: bool = option(
        True,
        "keep the logit scale fixed at 1 (default: learnable, as the v2 paper's MNIST nets)",
        flag="--linf-fixed-scale",
        invert=True,
        group=LINF_GROUP,
    )

    def __post_init__(self) -> None:
        check_fields(self)
        if self.dataset is None:
            if self.in_features is None:
                raise ValueError("a net without a dataset needs in_features (its input size)")
        else:
            n_inputs = get_dataset(self.dataset).n_inputs
            if self.in_features is None:
                object.__setattr__(self, "in_features", n_inputs)
            elif self.in_features != n_inputs:
                c, h, w = self.input_shape
                raise ValueError(
                    f"in_features {self.in_features} does not fit dataset {self.dataset} "
                    f"({c}x{h}x{w} = {n_inputs} inputs): leave it out, or set dataset=None for "
                    f"a net on plain vectors"
                )
        if self.arch in RBF_ARCHITECTURES:
            geometry = self.geometry or alternating_geometry(len(self.layers))
            parse_geometry(geometry, len(self.layers))
            object.__setattr__(self, "geometry", geometry.replace(" ", ""))
            if self.u_init is None:
                object.__setattr__(self, "u_init", default_u_init(self.norm))
        else:
            for name in ("geometry", "u_init"):
                if getattr(self, name) is not None:
                    raise ValueError(
                        f"{name} applies to rbfi and rbf models only, not {self.arch!r}"
                    )
        if self.is_conv and self.arch == LINF:
            raise ValueError("linf-dist nets are fully connected: give dense layers only")
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
    def feature_shapes(self) -> list[tuple[int, int, int]]:
        """(C, H, W) of the input and after every conv layer."""
        return feature_shapes(self.layers, self.input_shape)

    @property
    def dense_in_features(self) -> int:
        """Inputs of the first dense layer: the flattened output of the last conv layer."""
        return math.prod(self.feature_shapes[-1]) if self.is_conv else self.in_features

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input: the dataset's images. A net on plain vectors (dataset None)
        of n = s^2 inputs reads (1, s, s) images, else (1, 1, n). Flattened channel-major, it
        is the (B, in_features) input."""
        if self.dataset is not None:
            return get_dataset(self.dataset).input_shape
        side = math.isqrt(self.in_features)
        return (1, side, side) if side * side == self.in_features else (1, 1, self.in_features)

    @property
    def norm(self) -> str:
        """The distance RBFI-like units take: "inf" (rbfi), "l2" (rbf); "" for other nets."""
        return {"rbfi": "inf", "rbf": "l2"}.get(self.arch, "")

    @property
    def loss(self) -> str:
        """The paper's training loss for this architecture."""
        return LOSS_OF_ARCH[self.arch]

    @property
    def kinds(self) -> tuple[str, ...]:
        """'and' / 'or' / 'mixed' per layer (RBFI and RBF nets)."""
        return parse_geometry(self.geometry, len(self.layers))

    def to_json(self) -> dict:
        """The checkpoint's ``model`` entry (each arch omits what does not apply to it; MNIST
        nets omit the dataset and nets initialised with u ~ U[0.2, 0.7] ``u_init``, as every
        net saved before the setting existed did)."""
        out = {"arch": self.arch, "layers": list(self.layers)}
        if self.arch in RBF_ARCHITECTURES:
            out["geometry"] = self.geometry
        out["in_features"] = self.in_features
        if self.dataset != "mnist":
            out["dataset"] = self.dataset
        if self.arch in RBF_ARCHITECTURES:
            out["u_bounds"] = list(self.u_bounds)
            out["w_bounds"] = list(self.w_bounds)
            if self.u_init != LEGACY_U_INIT:  # as every net saved before the setting existed
                out["u_init"] = self.u_init
        if self.arch == LINF:
            out["linf_identity"] = self.linf_identity
            out["linf_identity_spread"] = self.linf_identity_spread
            out["linf_mean"] = self.linf_mean
            out["linf_std"] = self.linf_std
            out["linf_scale_learnable"] = self.linf_scale_learnable
        return out

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """Check ``data`` against :data:`MODEL_SCHEMA`, then build (ValueError if it fails).
        An rbfi / rbf net saved without ``u_init`` was initialised with u ~ U[0.2, 0.7]
        (:data:`LEGACY_U_INIT`), RBF nets included: their 1 / sqrt(n) init came later."""
        try:
            MODEL_SCHEMA.check(data, "model")
        except SchemaError as exc:
            raise ValueError(str(exc)) from None
        kwargs = dict(data)
        if kwargs["arch"] in RBF_ARCHITECTURES:  # saved without it: RBFI's init (LEGACY_U_INIT)
            kwargs.setdefault("u_init", LEGACY_U_INIT)
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
        name = {"relu": "ReLU", "sigmoid": "Sigmoid", LINF: "LinfDist"}[self.arch]
        return f"{name}({', '.join(map(str, self.layers))})"
