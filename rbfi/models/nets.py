"""Fully connected classifiers (permutation-invariant: images are flattened): RBFI / RBF nets
and the ReLU / sigmoid baselines.

Every model takes a float tensor of shape (B, C*H*W) with values in [0, 1], the images of its
dataset flattened (MNIST: (B, 784)), or the images themselves, (B, C, H, W) (MNIST also (B, 28,
28)), flattened here so attack libraries can pass images; it returns (B, classes) scores.
``model.config`` is the :class:`~rbfi.models.config.ModelConfig` it was built from;
``model.loss`` names the paper's training loss ("square" or "cross_entropy").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from rbfi.models.config import ModelConfig
from rbfi.nn import RBFI

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
