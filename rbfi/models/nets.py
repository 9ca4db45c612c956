"""Classifiers: RBFI / RBF nets, l_inf-distance nets and the ReLU / sigmoid baselines, fully
connected (permutation-invariant: images are flattened; the paper's nets) or convolutional (a
spec with conv layers, docs/conv.md).

Every model takes a float tensor of shape (B, C*H*W) with values in [0, 1], the images of its
dataset flattened (MNIST: (B, 784)), or the images themselves, (B, C, H, W) (MNIST also (B, 28,
28)), so attack libraries can pass images; it returns (B, classes) scores. MLPs flatten images;
conv nets reshape flat input to images, so code that passes flat tensors works on both.
``model.config`` is the :class:`~rbfi.models.config.ModelConfig` it was built from;
``model.loss`` names the paper's training loss ("square" or "cross_entropy").

Layout of ``body`` (the names checkpoints hold): RBFI nets ``[RBFIConv2d]*n_conv
[+ Flatten] + [RBFI]*n_dense``; ReLU / sigmoid nets ``[Conv2d, act]*n_conv [+ Flatten] +
[Linear, act]*n_dense`` (ReLU nets: no activation after the last Linear).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rbfi.models.config import ModelConfig
from rbfi.nn import RBFI, DistanceLogits, LinfDist, RBFIConv2d, Standardize

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
        """The input as the body takes it: (B, C*H*W) for MLPs, the images (B, C, H, W) for conv
        nets. Accepted: (B, C*H*W), (B, C, H, W) or, for one channel, (B, H, W), where (C, H, W)
        is ``config.input_shape``; ValueError naming both shapes otherwise (an MNIST net given
        CIFAR-10 images, ...)."""
        c, h, w = self.config.input_shape
        images = h > 1  # (1, 1, n): a net on plain vectors takes no images
        image_shapes = set()
        if images:
            image_shapes = {(c, h, w), (h, w)} if c == 1 else {(c, h, w)}
        if x.dim() == 2 and x.shape[1] == self.in_features:
            flat = x
        elif x.dim() >= 3 and tuple(x.shape[1:]) in image_shapes:
            flat = x.reshape(x.shape[0], self.in_features)
        else:
            expected = f"(B, {self.in_features})" + (f" or (B, {c}, {h}, {w})" if images else "")
            got = (
                f"(B, {', '.join(map(str, x.shape[1:]))})" if x.dim() >= 2 else str(tuple(x.shape))
            )
            raise ValueError(f"expected input of shape {expected}, got {got}")
        return flat.reshape(len(flat), c, h, w) if self.config.is_conv else flat

    def forward(self, x: Tensor) -> Tensor:
        return self.body(self.flatten_input(x))

    def describe(self) -> str:
        return self.config.describe()


class RBFINet(Classifier):
    """A stack of RBFI (or, with arch "rbf", RBF) layers; the scores are the last layer's
    outputs, in [0, 1]. No bias, no output scaling."""

    def __init__(self, config: ModelConfig, *, pseudogradient: bool = True) -> None:
        super().__init__(config)
        common = {
            "norm": "inf" if config.arch == "rbfi" else "l2",
            "u_bounds": config.u_bounds,
            "w_bounds": config.w_bounds,
            "u_init": config.u_init,
            "pseudogradient": pseudogradient,
        }
        kinds = iter(config.kinds)
        shapes = config.feature_shapes if config.is_conv else []
        for spec, (c_in, _, _) in zip(config.conv_layers, shapes):
            self.body.append(
                RBFIConv2d(
                    c_in,
                    spec.out_channels,
                    spec.kernel,
                    spec.stride,
                    spec.padding,
                    next(kinds),
                    **common,
                )
            )
        if config.is_conv:
            self.body.append(nn.Flatten())
        sizes = (config.dense_in_features, *config.dense_layers)
        for n_in, n_out in zip(sizes, sizes[1:]):
            self.body.append(RBFI(n_in, n_out, next(kinds), **common))

    @staticmethod
    def expected_state(config: ModelConfig) -> StateSpec:
        spec: StateSpec = {}
        for name, (n_out, n_in) in _unit_shapes(config):
            spec[f"{name}.w"] = ((n_out, n_in), torch.float32)
            spec[f"{name}.u"] = ((n_out, n_in), torch.float32)
            spec[f"{name}.is_or"] = ((n_out,), torch.bool)
            spec[f"{name}.u_bounds"] = ((2,), torch.float32)
            spec[f"{name}.w_bounds"] = ((2,), torch.float32)
        return spec


def layer_names(config: ModelConfig) -> list[str]:
    """The state_dict prefix of every layer of the spec, in order (``body.K``)."""
    n_conv, n_dense = len(config.conv_layers), len(config.dense_layers)
    step = 1 if config.arch in ("rbfi", "rbf") else 2  # MLPs: an activation after each layer
    conv = [step * k for k in range(n_conv)]
    first_dense = step * n_conv + (1 if n_conv else 0)  # the Flatten
    return [f"body.{k}" for k in conv + [first_dense + step * j for j in range(n_dense)]]


def _unit_shapes(config: ModelConfig) -> list[tuple[str, tuple[int, int]]]:
    """(layer name, (units, inputs per unit)) per layer; conv units see C_in*k*k inputs."""
    shapes = []
    for spec, (c_in, _, _) in zip(config.conv_layers, config.feature_shapes):
        shapes.append((spec.out_channels, c_in * spec.kernel * spec.kernel))
    sizes = (config.dense_in_features, *config.dense_layers)
    shapes += [(n_out, n_in) for n_in, n_out in zip(sizes, sizes[1:])]
    return list(zip(layer_names(config), shapes))


class MLP(Classifier):
    """Linear layers with ReLU between them (scores = logits, trained with softmax +
    cross-entropy) or with a sigmoid after every layer, output included (square-error loss)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        n_layers = len(config.layers)

        def activation(position: int) -> None:
            if config.arch == "sigmoid":
                self.body.append(nn.Sigmoid())
            elif position < n_layers - 1:
                self.body.append(nn.ReLU())

        shapes = config.feature_shapes if config.is_conv else []
        for position, (spec, (c_in, _, _)) in enumerate(zip(config.conv_layers, shapes)):
            conv = nn.Conv2d(c_in, spec.out_channels, spec.kernel, spec.stride, spec.padding)
            self.body.append(conv)
            activation(position)
        if config.is_conv:
            self.body.append(nn.Flatten())
        sizes = (config.dense_in_features, *config.dense_layers)
        for j, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            self.body.append(nn.Linear(n_in, n_out))
            activation(len(config.conv_layers) + j)

    @staticmethod
    def expected_state(config: ModelConfig) -> StateSpec:
        spec: StateSpec = {}
        conv = {str(c): c for c in config.conv_layers}
        for (name, (n_out, n_in)), entry in zip(_unit_shapes(config), config.layers):
            if entry in conv:  # a Conv2d: weight (out, C_in, k, k)
                k = conv[entry].kernel
                spec[f"{name}.weight"] = ((n_out, n_in // (k * k), k, k), torch.float32)
            else:
                spec[f"{name}.weight"] = ((n_out, n_in), torch.float32)
            spec[f"{name}.bias"] = ((n_out,), torch.float32)
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
