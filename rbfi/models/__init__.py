"""Classifiers: the typed config saved with each model, the nets, their registry, loading and
saving (with every check a checkpoint must pass), and the one accuracy helper."""

from rbfi.models.config import (
    ARCHITECTURES,
    DEFAULT_LAYERS,
    GEOMETRY_SYMBOLS,
    LOSS_OF_ARCH,
    ModelConfig,
    parse_geometry,
)
from rbfi.models.evaluate import evaluate, predict
from rbfi.models.load import (
    check_weights,
    load_checked_weights,
    load_model,
    model_config_of,
    save_model,
)
from rbfi.models.nets import MLP, Classifier, LinfDistNet, RBFINet
from rbfi.models.registry import build_model, describe, expected_state

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_LAYERS",
    "GEOMETRY_SYMBOLS",
    "LOSS_OF_ARCH",
    "MLP",
    "Classifier",
    "ModelConfig",
    "LinfDistNet",
    "RBFINet",
    "build_model",
    "check_weights",
    "describe",
    "evaluate",
    "expected_state",
    "load_checked_weights",
    "load_model",
    "model_config_of",
    "parse_geometry",
    "predict",
    "save_model",
]
