"""Switches that act on every RBFI layer of a model: pseudogradients on or off, and the
projection of u and w onto their bounds after optimiser steps (Sec. 4.2); and the exponent p
of every l_inf-distance layer."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from rbfi.nn.linf import LinfDist
from rbfi.nn.modules import RBFI


def rbfi_layers(module: nn.Module) -> Iterable[RBFI]:
    """All RBFI layers inside ``module`` (itself included)."""
    return (m for m in module.modules() if isinstance(m, RBFI))


def linf_layers(module: nn.Module) -> Iterable[LinfDist]:
    """All l_inf-distance layers inside ``module`` (itself included)."""
    return (m for m in module.modules() if isinstance(m, LinfDist))


def set_p(module: nn.Module, p: float) -> None:
    """Set the norm's exponent p (>= 1 or inf) of every l_inf-distance layer in ``module``."""
    for layer in linf_layers(module):
        layer.p = p


def has_rbfi(module: nn.Module) -> bool:
    return next(iter(rbfi_layers(module)), None) is not None


def project_(module: nn.Module) -> None:
    """Project the parameters of every RBFI layer in ``module`` onto their bounds."""
    for layer in rbfi_layers(module):
        layer.project_()


def set_pseudogradient(module: nn.Module, enabled: bool) -> None:
    """Switch every RBFI layer in ``module`` to pseudogradients (True) or true gradients."""
    for layer in rbfi_layers(module):
        layer.pseudogradient = enabled


@contextmanager
def pseudogradient_mode(module: nn.Module, enabled: bool) -> Iterator[None]:
    """Temporarily switch every RBFI layer of ``module`` to pseudogradients (eq. 9, 11) or to
    true gradients; each layer gets its own previous setting back on exit. A no-op for models
    without RBFI layers."""
    layers = list(rbfi_layers(module))
    saved = [layer.pseudogradient for layer in layers]
    try:
        for layer in layers:
            layer.pseudogradient = enabled
        yield
    finally:
        for layer, value in zip(layers, saved):
            layer.pseudogradient = value


def attach_projection(optimizer: torch.optim.Optimizer, module: nn.Module):
    """Register an optimiser step post-hook that projects ``module``'s RBFI parameters.

    Returns the hook handle (``handle.remove()`` detaches it).
    """
    return optimizer.register_step_post_hook(lambda opt, args, kwargs: project_(module))
