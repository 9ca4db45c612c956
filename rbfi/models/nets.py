"""Classifiers: RBFI / RBF nets and the ReLU / sigmoid baselines, fully connected (permutation-
invariant MNIST, the paper's nets) or convolutional (a spec with conv layers, docs/conv.md).

Every model takes a float tensor of shape (B, 784) with values in [0, 1] (also (B, 1, 28, 28)
or (B, 28, 28), flattened, so attack libraries can pass images) and returns (B, 10) class
scores; conv nets take the images (B, C, H, W) and reshape flat input to them, so code that
passes flat tensors works on both. ``model.config`` is the
:class:`~rbfi.models.config.ModelConfig` it was built from; ``model.loss`` names the paper's
training loss ("square" or "cross_entropy").

Layout of ``body`` (the names checkpoints hold): RBFI nets ``[RBFIConv2d]*n_conv
[+ Flatten] + [RBFI]*n_dense``; ReLU / sigmoid nets ``[Conv2d, act]*n_conv [+ Flatten] +
[Linear, act]*n_dense`` (ReLU nets: no activation after the last Linear).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rbfi.models.config import ModelConfig
from rbfi.nn import RBFI, RBFIConv2d

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
        """The input as the body takes it: (B, in_features) for MLPs, for conv nets the images
        (B, C, H, W) (flat (B, C*H*W) input reshaped, (B, H, W) when C = 1)."""
        if self.config.is_conv:
            return self._image_input(x)
        side = math.isqrt(self.in_features)
        image_shapes = {(side, side), (1, side, side)} if side * side == self.in_features else set()
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x
        if x.dim() >= 3 and tuple(x.shape[1:]) in image_shapes:
            return x.reshape(x.shape[0], self.in_features)
        expected = f"(B, {self.in_features})"
        if image_shapes:
            expected += f" or (B, 1, {side}, {side})"
        raise ValueError(f"expected input of shape {expected}, got {tuple(x.shape)}")

    def _image_input(self, x: Tensor) -> Tensor:
        shape = self.config.input_shape
        if x.dim() == 4 and tuple(x.shape[1:]) == shape:
            return x
        if x.dim() == 2 and x.shape[1] == self.in_features:
            return x.reshape(x.shape[0], *shape)
        if x.dim() == 3 and shape[0] == 1 and tuple(x.shape[1:]) == shape[1:]:
            return x.unsqueeze(1)
        raise ValueError(
            f"expected input of shape (B, {', '.join(map(str, shape))}) or "
            f"(B, {self.in_features}), got {tuple(x.shape)}"
        )

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
