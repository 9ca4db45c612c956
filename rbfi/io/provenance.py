"""Where a result came from: the versions of everything that computed it."""

from __future__ import annotations

import importlib.metadata
import platform

from rbfi._version import __version__

OPTIONAL_PACKAGES = ("pyautoattack", "torchattacks", "triton", "ray")


def versions() -> dict[str, str]:
    """rbfi, torch, numpy, python, the platform, and each optional package (or "not installed").

    Read from the installed distributions' metadata, so nothing optional is imported.
    """
    import numpy
    import torch

    out = {
        "rbfi": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for name in OPTIONAL_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
