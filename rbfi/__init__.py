"""rbfi: neural networks with structural resistance to adversarial attacks (RBFI units)."""

__version__ = "0.1.0"

from rbfi.models import build_model  # noqa: E402
from rbfi.nn import RBFI  # noqa: E402


def load(path, map_location="cpu"):
    """Load a checkpoint written by :func:`rbfi.checkpoint.save`; returns the model in eval mode."""
    from rbfi.checkpoint import load_model

    return load_model(path, map_location=map_location)


__all__ = ["RBFI", "__version__", "build_model", "load"]
