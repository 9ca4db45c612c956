"""Attacks from a maintained package, not rewritten here: AutoAttack and the Square attack of
``pyautoattack`` 0.2.0 (Croce & Hein's reference code, packaged; ``pip install --no-deps
pyautoattack==0.2.0``; it declares no dependencies and needs only torch and numpy).

The package expects image batches (N, C, H, W) for Square's square patches; our classifiers
take flat (N, 784) vectors. :class:`ImageInput` shows any flat classifier to the package as an
image classifier: the package sees (N, 1, 28, 28) tensors, the wrapper flattens them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from rbfi.attacks.base import Attack

PACKAGE = "pyautoattack"
INSTALL = "pip install --no-deps pyautoattack==0.2.0"
AUTOATTACK_VERSIONS = ("standard", "plus", "apgd")


def package_available() -> bool:
    try:
        import pyautoattack  # noqa: F401
    except ImportError:
        return False
    return True


def _package():
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


def as_images(x: Tensor) -> Tensor:
    """(N, n) -> (N, 1, s, s) when n = s^2 (MNIST: s = 28); image batches pass unchanged."""
    if x.dim() >= 4:
        return x
    n = x[0].numel() if len(x) else x.shape[-1]
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"cannot view inputs of {n} values as square images")
    return x.reshape(len(x), 1, side, side)


@contextmanager
def _isolated(device: torch.device) -> Iterator[list[str]]:
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


class Square(Attack):
    """Square attack (Andriushchenko et al. 2020), gradient-free random search on the margin
    loss with square-shaped l_inf updates, from ``pyautoattack`` (``n_queries`` model
    evaluations per example at most, p_init 0.8, 1 restart). Stops per example at success."""

    name = "square"
    uses_gradient = False

    def __init__(
        self, model: nn.Module, eps: float, *, queries: int = 5000, p_init: float = 0.8, seed=0
    ) -> None:
        super().__init__(model, eps, seed=seed)
        if int(queries) < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        self.queries, self.p_init = int(queries), float(p_init)

    def settings(self) -> dict:
        return {
            **super().settings(),
            "package": f"{PACKAGE} {_package().__version__}",
            "queries": self.queries,
            "p_init": self.p_init,
            "loss": "margin",
        }

    def passes(self) -> dict[str, int]:
        return {"forward": self.queries + 2, "backward": 0}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        _package()
        from pyautoattack.square import SquareAttack

        square = SquareAttack(
            ImageInput(self.model),
            norm="Linf",
            n_queries=self.queries,
            eps=self.eps,
            p_init=self.p_init,
            n_restarts=1,
            seed=self.derived_seed(x.device),
            verbose=False,
            loss="margin",
            resc_schedule=True,
            device=x.device,
        )
        with _isolated(x.device) as messages, torch.no_grad():
            x_adv = square.perturb(as_images(x), y)
        self.stats["package_warnings"] = messages
        return x_adv.reshape(x.shape)


class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020) from ``pyautoattack``, l_inf, run as the package runs it
    (each component attacks only the examples the previous ones left correct).

    version "standard": APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries);
    "plus": the more expensive version with restarts; "apgd": APGD-CE + APGD-T only (version
    "custom" of the package, 1 restart each, as in "standard"): the cheap gradient part.
    ``gradient="pseudo"`` runs it through RBFI pseudogradients (BPDA). The package's own
    warnings (zero gradients, Square beating the gradient attacks) are kept in
    ``stats["package_warnings"]``; ``stats["zero_gradient"]`` counts examples whose
    cross-entropy input gradient is exactly zero at x.
    """

    name = "autoattack"

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        version: str = "standard",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps, loss="cross_entropy", gradient=gradient, seed=seed)
        if version not in AUTOATTACK_VERSIONS:
            raise ValueError(f"version must be one of {AUTOATTACK_VERSIONS}, got {version!r}")
        self.version = version

    def settings(self) -> dict:
        out = super().settings()
        out.update(package=f"{PACKAGE} {_package().__version__}", version=self.version)
        out["loss"] = "package (CE, targeted DLR, FAB, Square margin)"
        return out

    def passes(self) -> dict[str, int]:
        """Approximate: APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 gradient steps (+ as many
        forwards), Square 5000 forwards; "plus" adds restarts and untargeted versions."""
        if self.version == "apgd":
            return {"forward": 2, "backward": 1000}
        if self.version == "standard":
            return {"forward": 5900, "backward": 1900}
        return {"forward": 11000, "backward": 3500}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        self.loss_and_gradient(x, y)  # the zero-gradient diagnostic at the clean input
        package = _package()
        seed = self.derived_seed(x.device)
        wrapped = ImageInput(self.model)
        if self.version == "apgd":
            attack = package.AutoAttack(
                wrapped,
                attacks=["apgd-ce", "apgd-t"],
                version="custom",
                norm="Linf",
                eps=self.eps,
                seed=seed,
                device=x.device,
            )
            attack.apgd.n_restarts = 1  # as in "standard"
            attack.apgd_targeted.n_target_classes = 9
        else:
            attack = package.AutoAttack(
                wrapped, version=self.version, norm="Linf", eps=self.eps, seed=seed, device=x.device
            )
        with _isolated(x.device) as messages:
            x_adv, _ = attack.run_standard_evaluation(as_images(x), y, batch_size=len(x))
        self.stats["package_warnings"] = messages
        return x_adv.reshape(x.shape)
