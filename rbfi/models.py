"""Classifiers for permutation-invariant MNIST: RBFI nets and the ReLU / sigmoid baselines.

Every model takes a float tensor of shape (B, 784) with values in [0, 1] (also (B, 1, 28, 28)
or (B, 28, 28), flattened, so attack libraries can pass images) and returns (B, 10) class
scores. ``model.config`` is a JSON-serialisable dict from which :func:`build_model` rebuilds
the same architecture; ``model.loss`` names the training loss ("square" or "cross_entropy").

Geometry notation (paper, Sec. 6): one symbol per layer, output layer included:
``^`` And, ``v`` Or, ``*`` mixed. RBFI(512^, 512v, 512^, 10v) is
``build_model("rbfi", layers=(512, 512, 512, 10), geometry="^v^v")``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from rbfi.nn import RBFI

ARCHITECTURES = ("rbfi", "rbf", "relu", "sigmoid")
GEOMETRY_SYMBOLS = {"^": "and", "v": "or", "*": "mixed"}
DEFAULT_LAYERS = (512, 512, 512, 10)
DEFAULT_GEOMETRY = "^v^v"
LOSS_OF_ARCH = {"rbfi": "square", "rbf": "square", "relu": "cross_entropy", "sigmoid": "square"}


def parse_layers(spec: str | Sequence[int]) -> tuple[int, ...]:
    """'512,512,512,10' -> (512, 512, 512, 10); every size a positive integer."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        sizes = tuple(int(str(p).strip()) for p in parts)
    except ValueError:
        raise ValueError(
            f"layers must be comma-separated positive integers, got {spec!r}"
        ) from None
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"layers must be comma-separated positive integers, got {spec!r}")
    return sizes


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


class Classifier(nn.Module):
    """Base: checks and flattens the input, then runs ``self.body``."""

    def __init__(self, in_features: int, config: dict, loss: str) -> None:
        super().__init__()
        self.in_features = in_features
        self.config = config
        self.loss = loss
        self.body = nn.Sequential()

    def flatten_input(self, x: Tensor) -> Tensor:
        side = math.isqrt(self.in_features)
        image_shapes = {(side, side), (1, side, side)} if side * side == self.in_features else set()
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x
        if x.dim() >= 3 and tuple(x.shape[1:]) in image_shapes:
            return x.reshape(x.shape[0], self.in_features)
        expected = f"(B, {self.in_features})"
        if image_shapes:
            expected += f" or (B, 1, {side}, {side})"
        raise ValueError(f"expected input of shape {expected}, got {tuple(x.shape)}")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.flatten_input(x))


class RBFINet(Classifier):
    """A stack of RBFI (or, with norm="l2", RBF) layers; the scores are the last layer's
    outputs, in [0, 1]. No bias, no output scaling."""

    def __init__(
        self,
        layers: Sequence[int] = DEFAULT_LAYERS,
        geometry: str = DEFAULT_GEOMETRY,
        *,
        in_features: int = 784,
        norm: str = "inf",
        u_bounds: Sequence[float] = (0.01, 3.0),
        w_bounds: Sequence[float] = (0.0, 1.0),
        pseudogradient: bool = True,
    ) -> None:
        layers = parse_layers(layers)
        kinds = parse_geometry(geometry, len(layers))
        config = {
            "arch": "rbfi" if norm == "inf" else "rbf",
            "layers": list(layers),
            "geometry": geometry,
            "in_features": in_features,
            "u_bounds": [float(b) for b in u_bounds],
            "w_bounds": [float(b) for b in w_bounds],
        }
        super().__init__(in_features, config, loss="square")
        sizes = (in_features, *layers)
        for n_in, n_out, kind in zip(sizes, sizes[1:], kinds):
            self.body.append(
                RBFI(
                    n_in,
                    n_out,
                    kind,
                    norm=norm,
                    u_bounds=tuple(u_bounds),
                    w_bounds=tuple(w_bounds),
                    pseudogradient=pseudogradient,
                )
            )


class MLP(Classifier):
    """Linear layers with ReLU between them (scores = logits, trained with softmax +
    cross-entropy) or with a sigmoid after every layer, output included (square-error loss)."""

    def __init__(
        self,
        layers: Sequence[int] = DEFAULT_LAYERS,
        activation: str = "relu",
        *,
        in_features: int = 784,
    ) -> None:
        if activation not in ("relu", "sigmoid"):
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        layers = parse_layers(layers)
        config = {"arch": activation, "layers": list(layers), "in_features": in_features}
        super().__init__(in_features, config, loss=LOSS_OF_ARCH[activation])
        sizes = (in_features, *layers)
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            self.body.append(nn.Linear(n_in, n_out))
            last = i == len(layers) - 1
            if activation == "sigmoid":
                self.body.append(nn.Sigmoid())
            elif not last:
                self.body.append(nn.ReLU())


def build_model(
    arch: str,
    layers: str | Sequence[int] = DEFAULT_LAYERS,
    geometry: str | None = None,
    *,
    in_features: int = 784,
    u_bounds: Sequence[float] = (0.01, 3.0),
    w_bounds: Sequence[float] = (0.0, 1.0),
    pseudogradient: bool = True,
) -> Classifier:
    """Build a classifier by name: "rbfi", "rbf" (l2 units), "relu" or "sigmoid".

    ``geometry`` applies to rbfi/rbf nets only (default: alternate ^ and v, starting with ^).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown model {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    layers = parse_layers(layers)
    if arch in ("rbfi", "rbf"):
        if geometry is None:
            geometry = "".join("^v"[i % 2] for i in range(len(layers)))
        return RBFINet(
            layers,
            geometry,
            in_features=in_features,
            norm="inf" if arch == "rbfi" else "l2",
            u_bounds=u_bounds,
            w_bounds=w_bounds,
            pseudogradient=pseudogradient,
        )
    if geometry is not None:
        raise ValueError(f"geometry applies to rbfi and rbf models only, not {arch!r}")
    return MLP(layers, arch, in_features=in_features)


def model_from_config(config: dict) -> Classifier:
    """Rebuild an (untrained) model from ``model.config``."""
    config = dict(config)
    arch = config.pop("arch")
    return build_model(arch, **config)


def describe(model: Classifier) -> str:
    """Paper notation, e.g. 'RBFI(512^, 512v, 512^, 10v)' or 'ReLU(512, 512, 512, 10)'."""
    cfg = model.config
    if cfg["arch"] in ("rbfi", "rbf"):
        cells = ", ".join(f"{n}{g}" for n, g in zip(cfg["layers"], cfg["geometry"]))
        return f"{cfg['arch'].upper()}({cells})"
    name = {"relu": "ReLU", "sigmoid": "Sigmoid"}[cfg["arch"]]
    return f"{name}({', '.join(map(str, cfg['layers']))})"
