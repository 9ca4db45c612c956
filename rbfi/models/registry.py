"""Build a classifier by name or from its :class:`ModelConfig`."""

from __future__ import annotations

from collections.abc import Sequence

from rbfi.models.config import DEFAULT_LAYERS, LINF, RBF_ARCHITECTURES, ModelConfig
from rbfi.models.nets import MLP, Classifier, LinfDistNet, RBFINet, StateSpec
from rbfi.nn.modules import U_BOUNDS, W_BOUNDS

NET_CLASSES = {"rbfi": RBFINet, "rbf": RBFINet, "relu": MLP, "sigmoid": MLP, LINF: LinfDistNet}


def build_model(
    arch: str | ModelConfig,
    layers: str | Sequence[int | str] = DEFAULT_LAYERS,
    geometry: str | None = None,
    *,
    dataset: str | None = None,
    in_features: int | None = None,
    u_bounds: Sequence[float] = U_BOUNDS,
    w_bounds: Sequence[float] = W_BOUNDS,
    pseudogradient: bool = True,
) -> Classifier:
    """Build a classifier: ``build_model("rbfi", "512,512,512,10", "^v^v")``,
    ``build_model("rbfi", "c16k5s2,c32k4s2,512,10", "^v^v")`` (a conv net, docs/conv.md) or
    ``build_model(config)``. Archs: "rbfi", "rbf" (l2 units), "relu", "sigmoid", "linf-dist"
    (l_inf-distance nets with the config's defaults; build from a config for other settings).

    ``geometry`` applies to rbfi/rbf nets only (default: alternate ^ and v, starting with ^);
    ``pseudogradient`` sets the RBFI layers' gradient mode (a runtime switch, not saved).
    ``dataset``: what the net reads ("mnist", "fashion-mnist", "cifar10"; default "mnist"), its
    input size C x H x W; given ``in_features`` alone, the net reads plain vectors of that size
    (a net of no dataset, as in small experiments with the units).
    """
    if isinstance(arch, ModelConfig):
        config = arch
    else:
        config = ModelConfig(
            arch=arch,
            layers=layers,
            geometry=geometry,
            dataset=dataset if dataset is not None or in_features is not None else "mnist",
            in_features=in_features,
            u_bounds=tuple(u_bounds),
            w_bounds=tuple(w_bounds),
        )
    if config.arch in RBF_ARCHITECTURES:
        return RBFINet(config, pseudogradient=pseudogradient)
    if config.arch == LINF:
        return LinfDistNet(config)
    return MLP(config)


def expected_state(config: ModelConfig) -> StateSpec:
    """name -> (shape, dtype) of every tensor the state_dict of ``config``'s model holds."""
    return NET_CLASSES[config.arch].expected_state(config)


def describe(model) -> str:
    """Paper notation of a model built here, else its class name."""
    config = getattr(model, "config", None)
    return config.describe() if isinstance(config, ModelConfig) else type(model).__name__
