import gzip
import struct

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


def write_idx(path, array: np.ndarray, compress: bool = False) -> None:
    """Write ``array`` (uint8) as an IDX file: magic 0,0,8,ndim then big-endian sizes."""
    array = np.asarray(array, dtype=np.uint8)
    payload = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += array.tobytes()
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.fixture
def idx_dir(tmp_path):
    """A tiny MNIST in IDX format: 30 train and 12 test images (the test makes it)."""
    rng = np.random.default_rng(0)
    for split, n, compress in (("train", 30, True), ("t10k", 12, False)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if compress else ""
        write_idx(tmp_path / f"{split}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte{suffix}", labels, compress)
    return tmp_path


@pytest.fixture
def fashion_dir(tmp_path):
    """A tiny Fashion-MNIST in its IDX files (the same names as MNIST's): 30 train, 12 test."""
    root = tmp_path / "fashion"
    root.mkdir()
    rng = np.random.default_rng(1)
    for split, n in (("train", 30), ("t10k", 12)):
        write_idx(root / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), True)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), True)
    return root


@pytest.fixture
def cifar_dir(tmp_path):
    """The parent of a tiny ``cifar-10-batches-py`` (5 x 4 train, 6 test images), written as
    Python 2's cPickle wrote the real batches (tests/data_files.py)."""
    from tests.data_files import write_cifar_folder

    write_cifar_folder(tmp_path / "cifar")
    return tmp_path / "cifar"
