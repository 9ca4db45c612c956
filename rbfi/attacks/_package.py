"""What the attacks taken from a maintained package share: AutoAttack and the Square attack come
from ``pyautoattack`` 0.2.0 (Croce & Hein's reference code, packaged; ``pip install --no-deps
pyautoattack==0.2.0``; it declares no dependencies and needs only torch and numpy), not
rewritten here.

The package expects image batches (N, C, H, W) for Square's square patches; our classifiers
take flat (N, C*H*W) vectors. :class:`ImageInput` shows any flat classifier to the package as an
image classifier: the package sees (N, C, H, W) tensors (MNIST: (N, 1, 28, 28)), the wrapper
flattens them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

PACKAGE = "pyautoattack"
INSTALL = "pip install --no-deps pyautoattack==0.2.0"


def package_available() -> bool:
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        return False
    return True


def package():
    try:
        import pyautoattack
    except ImportError:
        raise ImportError(f"this attack needs {PACKAGE}: {INSTALL}") from None
    return pyautoattack


class ImageInput(nn.Module):
    """Wrap a classifier of flat inputs: forward(images (N, C, H, W)) = model(images.flatten(1))."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images.flatten(1))


def as_images(x: Tensor, model: nn.Module | None = None) -> Tensor:
    """(N, C*H*W) -> (N, C, H, W) for the (C, H, W) of ``model.config.input_shape`` (CIFAR-10:
    (3, 32, 32)); for a model without one, (N, n) -> (N, 1, s, s) when n = s^2 (MNIST: s = 28).
    Image batches pass unchanged."""
    if x.dim() >= 4:
        return x
    shape = getattr(getattr(model, "config", None), "input_shape", None)
    n = x[0].numel() if len(x) else x.shape[-1]
    if shape is not None and shape[0] * shape[1] * shape[2] == n:
        return x.reshape(len(x), *shape)
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"cannot view inputs of {n} values as square images")
    return x.reshape(len(x), 1, side, side)


@contextmanager
def isolated(device: torch.device) -> Iterator[list[str]]:
    """Keep the package from touching the global RNG (it reseeds it) and collect its log
    warnings (AutoAttack's own checks, e.g. 'there are N points with zero gradient!')."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                messages.append(record.getMessage())

    logger = logging.getLogger("auto-attack")
    handler, propagate = Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    try:
        with torch.random.fork_rng(devices=devices):
            yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
