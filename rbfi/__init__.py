"""rbfi: neural networks with structural resistance to adversarial attacks (RBFI units)."""

from rbfi._version import __version__
from rbfi.models import build_model, load_model, save_model
from rbfi.nn import RBFI


def load(path, map_location="cpu"):
    """Load a checkpoint (run directory, or "zoo:NAME" for a net of the model zoo,
    :mod:`rbfi.models.zoo`) after checking it; returns the model in eval mode."""
    from rbfi.models import zoo

    return load_model(zoo.checkpoint_path(path), map_location=map_location)


__all__ = ["RBFI", "__version__", "build_model", "load", "save_model"]
