"""Fully connected classifiers (permutation-invariant: images are flattened): RBFI / RBF nets,
l_inf-distance nets and the ReLU / sigmoid baselines.

Every model takes a float tensor of shape (B, C*H*W) with values in [0, 1], the images of its
dataset flattened (MNIST: (B, 784)), or the images themselves, (B, C, H, W) (MNIST also (B, 28,
28)), flattened here so attack libraries can pass images; it returns (B, classes) scores.
``model.config`` is the :class:`~rbfi.models.config.ModelConfig` it was built from;
``model.loss`` names the paper's training loss ("square" or "cross_entropy").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rbfi.models.config import ModelConfig
from rbfi.nn import RBFI, DistanceLogits, LinfDist, Standardize

# what the state_dict of a model must hold: name -> (shape, dtype)
StateSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]


class Classifier(nn.Module):
    """Base: checks and flattens the input, then runs ``self.body``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.in_features = config.in_features
        self.loss = config.loss
        self.body = nn.Sequential()

    def flatten_input(self, x: Tensor) -> Tensor:
        """(B, C*H*W) from (B, C*H*W), (B, C, H, W) or, for one channel, (B, H, W), where
        (C, H, W) is ``config.input_shape``; ValueError naming both shapes otherwise (an MNIST
        net given CIFAR-10 images, ...)."""
        c, h, w = self.config.input_shape
        images = h > 1  # (1, 1, n): a net on plain vectors takes no images
        image_shapes = set()
        if images:
            image_shapes = {(c, h, w), (h, w)} if c == 1 else {(c, h, w)}
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x
        if x.dim() >= 3 and tuple(x.shape[1:]) in image_shapes:
            return x.reshape(x.shape[0], self.in_features)
        expected = f"(B, {self.in_features})" + (f" or (B, {c}, {h}, {w})" if images else "")
        got = f"(B, {', '.join(map(str, x.shape[1:]))})" if x.dim() >= 2 else str(tuple(x.shape))
        raise ValueError(f"expected input of shape {expected}, got {got}")

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.flatten_input(x))

    def describe(self) -> str:
        return self.config.describe()


class RBFINet(Classifier):
    """A stack of RBFI (or, with arch "rbf", RBF) layers; the scores are the last layer's
    outputs, in [0, 1]. No bias, no output scaling."""

    def __init__(self, config: ModelConfig, *, pseudogradient: bool = True) -> None:
        super().__init__(config)
        norm = "inf" if config.arch == "rbfi" else "l2"
        sizes = (config.in_features, *config.layers)
        for n_in, n_out, kind in zip(sizes, sizes[1:], config.kinds):
            self.body.append(
                RBFI(
                    n_in,
                    n_out,
                    kind,
                    norm=norm,
                    u_bounds=config.u_bounds,
                    w_bounds=config.w_bounds,
                    pseudogradient=pseudogradient,
                )
            )

    @staticmethod
    def expected_state(config: ModelConfig) -> StateSpec:
        sizes = (config.in_features, *config.layers)
        spec: StateSpec = {}
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            spec[f"body.{k}.w"] = ((n_out, n_in), torch.float32)
            spec[f"body.{k}.u"] = ((n_out, n_in), torch.float32)
            spec[f"body.{k}.is_or"] = ((n_out,), torch.bool)
            spec[f"body.{k}.u_bounds"] = ((2,), torch.float32)
            spec[f"body.{k}.w_bounds"] = ((2,), torch.float32)
        return spec


class MLP(Classifier):
    """Linear layers with ReLU between them (scores = logits, trained with softmax +
    cross-entropy) or with a sigmoid after every layer, output included (square-error loss)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        for position, (n_in, n_out) in enumerate(self._linear_sizes(config)):
            self.body.append(nn.Linear(n_in, n_out))
            last = position == len(config.layers) - 1
            if config.arch == "sigmoid":
                self.body.append(nn.Sigmoid())
            elif not last:
                self.body.append(nn.ReLU())

    @staticmethod
    def _linear_sizes(config: ModelConfig) -> list[tuple[int, int]]:
        sizes = (config.in_features, *config.layers)
        return list(zip(sizes, sizes[1:]))

    @staticmethod
    def expected_state(config: ModelConfig) -> StateSpec:
        spec: StateSpec = {}
        for position, (n_in, n_out) in enumerate(MLP._linear_sizes(config)):
            index = 2 * position  # every Linear is followed by its activation module
            spec[f"body.{index}.weight"] = ((n_out, n_in), torch.float32)
            spec[f"body.{index}.bias"] = ((n_out,), torch.float32)
        return spec


class LinfDistNet(Classifier):
    """An l_inf-distance net (Zhang et al. 2021, 2022; docs/linf-dist.md):

        (x - mean) / std -> LinfDist(mean shift) x (K - 1) -> LinfDist(bias) -> -scale y

    Hidden layers have a mean shift and no bias, the output layer a bias and no mean shift (as
    in the papers' MLPs); the logits are the negated output distances times ``scale`` (a
    parameter, learnable or fixed at 1 by the config). Every layer starts at p = inf (the net
    itself; training anneals p from 8, see :mod:`rbfi.training.objectives`).

    At p = inf and in eval mode each logit is (|scale| / std)-Lipschitz with respect to the
    l_inf norm of the input, so a clean margin above 2 eps |scale| / std certifies the ball of
    radius eps (:meth:`lipschitz_constant`, :func:`rbfi.bounds.certify`).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        sizes = (config.in_features, *config.layers)
        self.body.append(Standardize(config.linf_mean, config.linf_std))
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            last = k == len(config.layers) - 1
            self.body.append(
                LinfDist(
                    n_in,
                    n_out,
                    bias=last,
                    mean_shift=not last,
                    identity=config.linf_identity,
                    identity_spread=config.linf_identity_spread and not last,
                )
            )
        self.body.append(DistanceLogits(learnable=config.linf_scale_learnable))

    def distance_scores(self, x: Tensor) -> Tensor:
        """-y of the output layer (the logits without the scale): each is 1-Lipschitz in the
        standardised input at p = inf; the hinge of v2 is measured on these."""
        return -self.body[:-1](self.flatten_input(x))

    def lipschitz_constant(self) -> float | None:
        """L with |s_c(x) - s_c(x')| <= L ||x - x'||_inf for every logit s_c: |scale| / std,
        when every layer has p = inf and the net is in eval mode (mean shift frozen); None
        otherwise (no margin certificate then)."""
        layers = [m for m in self.body if isinstance(m, LinfDist)]
        if self.training or any(not math.isinf(layer.p) for layer in layers):
            return None
        return abs(self.body[-1].scale.item()) / self.body[0].std

    @staticmethod
    def expected_state(config: ModelConfig) -> StateSpec:
        sizes = (config.in_features, *config.layers)
        spec: StateSpec = {}
        n = len(config.layers)
        for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            index = k + 1  # body.0 is the Standardize
            spec[f"body.{index}.w"] = ((n_out, n_in), torch.float32)
            if k == n - 1:
                spec[f"body.{index}.bias"] = ((n_out,), torch.float32)
            else:
                spec[f"body.{index}.running_mean"] = ((n_out,), torch.float32)
        spec[f"body.{n + 1}.scale"] = ((1,), torch.float32)
        return spec
