"""Fashion-MNIST and CIFAR-10 (issue 25): the real loaders on small files in the real formats
(tests/data_files.py), their one-line errors on missing and corrupt files, the registry and the
model config's dataset, a net refusing another dataset's images, and a tiny MLP trained,
evaluated, certified and attacked on each from the command line."""

from __future__ import annotations

import gzip
import json
import os
import pickle

import numpy as np
import pytest
import torch

from rbfi.cli import main
from rbfi.data import (
    DATASETS,
    DataError,
    checkpoint_test_set,
    get_dataset,
    load_dataset,
    trained_pixel_scale,
)
from rbfi.models import ModelConfig, build_model, predict
from tests.conftest import write_idx
from tests.data_files import cifar_batch, py2_pickle, write_cifar_folder

# ---------------------------------------------------------------- CIFAR-10: the python batches


@pytest.mark.parametrize("style", ["py2", "py3"])
def test_cifar_values_layout_and_order(tmp_path, style):
    folder, written = write_cifar_folder(tmp_path, n_train=3, n_test=5, style=style)
    for split in ("train", "test"):
        images, labels = written[split]
        x, y = load_dataset("cifar10", split, tmp_path)  # the parent folder
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(images), 3072) and torch.equal(y, torch.from_numpy(labels))
        # pixel (c, h, w) of image i sits at c*1024 + h*32 + w, and is k / 255
        i, c, h, w = len(images) - 1, 2, 31, 5
        assert x[i, c * 1024 + h * 32 + w].item() == np.float32(images[i, c, h, w]) / np.float32(
            255
        )
        assert torch.equal(x.view(-1, 3, 32, 32), torch.from_numpy(images).float() / 255)
    # the training split is data_batch_1 .. 5, in that order
    x_train, _ = load_dataset("cifar10", "train", folder)  # the folder itself
    first_of_batch_3 = written["train"][0][2 * 3]
    assert torch.equal(x_train[6].view(3, 32, 32), torch.from_numpy(first_of_batch_3) / 255)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_saved_by_python3_load(tmp_path, protocol):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    levels = np.arange(2 * 3072, dtype=np.uint64).astype(np.uint8).reshape(2, 3072)
    batch = {"data": levels, "labels": [9, 0]}  # text keys: a batch re-saved by Python 3
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    x, y = load_dataset("cifar10", "test", tmp_path)
    assert torch.equal(x, torch.from_numpy(levels).float() / 255) and y.tolist() == [9, 0]


class Boom:
    """Unpickling this would create a directory: the loader must refuse before it runs."""

    def __init__(self, target) -> None:
        self.target = str(target)

    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_cifar_pickle_with_code_is_refused_without_running_it(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    marker = tmp_path / "was-run"
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": Boom(marker)}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))
    assert pickle.loads(pickle.dumps(Boom(tmp_path / "probe"))) is None  # the payload works
    assert (tmp_path / "probe").is_dir() and not marker.exists()
    with pytest.raises(DataError, match="not allowed") as info:
        load_dataset("cifar10", "test", folder)
    assert "mkdir" in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def corrupt_cases():
    good = np.zeros((3, 3072), np.uint8)
    return {
        "shape": (cifar_batch(np.zeros((3, 3000), np.uint8), [0, 1, 2]), r"\(n, 3072\)"),
        "dtype": (cifar_batch(good.astype(np.int64), [0, 1, 2]), "uint8"),
        "labels out of range": (cifar_batch(good, [0, 10, 2]), r"labels outside 0\.\.9"),
        "count": (cifar_batch(good, [0, 1]), "3 images but 2 labels"),
        "no labels": ({b"data": good}, "no labels"),
        "not a dict": (None, "not a CIFAR-10 batch"),
    }


@pytest.mark.parametrize("case", list(corrupt_cases()))
def test_corrupt_cifar_batch_is_one_line_naming_the_file(cifar_dir, case):
    batch, fragment = corrupt_cases()[case]
    path = cifar_dir / "cifar-10-batches-py" / "test_batch"
    if batch is None:
        payload = pickle.dumps([1, 2], protocol=2)
    elif case == "dtype":  # an int64 array: this Python's pickler (the py2 writer does uint8)
        payload = pickle.dumps(batch, protocol=2)
    else:
        payload = py2_pickle(batch)
    path.write_bytes(payload)
    with pytest.raises(DataError, match=fragment) as info:
        load_dataset("cifar10", "test", cifar_dir)
    message = str(info.value)
    assert "test_batch" in message and "\n" not in message


def test_truncated_cifar_batch(cifar_dir):
    path = cifar_dir / "cifar-10-batches-py" / "data_batch_4"
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(DataError, match="data_batch_4.*not a CIFAR-10 python batch"):
        load_dataset("cifar10", "train", cifar_dir)
    load_dataset("cifar10", "test", cifar_dir)  # the test split does not read it


def test_cifar_meta_of_another_dataset_is_refused(cifar_dir):
    meta = {b"label_names": [b"apple", b"bear"]}
    (cifar_dir / "cifar-10-batches-py" / "batches.meta").write_bytes(py2_pickle(meta))
    with pytest.raises(DataError, match="batches.meta.*not CIFAR-10's"):
        load_dataset("cifar10", "test", cifar_dir)


def test_missing_cifar_files_say_how_to_get_them(tmp_path, cifar_dir, monkeypatch):
    monkeypatch.delenv("RBFI_CIFAR10_DIR", raising=False)
    with pytest.raises(DataError, match="cifar-10-python.tar.gz.*--data-dir"):
        load_dataset("cifar10", "test")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="not found in .*empty.*tar xzf"):
        load_dataset("cifar10", "test", empty)
    (empty / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match="still packed"):
        load_dataset("cifar10", "test", empty)
    (cifar_dir / "cifar-10-batches-py" / "data_batch_5").unlink()
    with pytest.raises(DataError, match="data_batch_5 not found"):
        load_dataset("cifar10", "train", cifar_dir)
    monkeypatch.setenv("RBFI_CIFAR10_DIR", str(cifar_dir))  # the environment variable
    assert load_dataset("cifar10", "test")[0].shape == (6, 3072)


def test_a_batch_replaced_on_disk_is_read_again(tmp_path):
    folder, _ = write_cifar_folder(tmp_path, n_test=2)
    assert load_dataset("cifar10", "test", folder)[0].shape == (2, 3072)
    path = folder / "test_batch"
    path.write_bytes(py2_pickle(cifar_batch(np.full((7, 3072), 255, np.uint8), [1] * 7)))
    x, y = load_dataset("cifar10", "test", folder)
    assert x.shape == (7, 3072) and bool((x == 1).all()) and y.tolist() == [1] * 7


# ---------------------------------------------------------------- Fashion-MNIST: IDX files


def test_fashion_mnist_from_idx_files(fashion_dir, monkeypatch):
    raw = gzip.open(fashion_dir / "t10k-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(fashion_dir / "t10k-labels-idx1-ubyte.gz").read()[8:]
    x, y = load_dataset("fashion-mnist", "test", fashion_dir)
    assert torch.equal(x.ravel(), torch.from_numpy(np.frombuffer(raw, np.uint8) / np.float32(255)))
    assert y.tolist() == list(labels) and load_dataset("fashion-mnist", "train", fashion_dir)[
        0
    ].shape == (30, 784)
    with pytest.raises(ValueError, match="pixel_scale must be 255 for fashion-mnist"):
        load_dataset("fashion-mnist", "test", fashion_dir, pixel_scale=256)
    monkeypatch.delenv("RBFI_FASHION_MNIST_DIR", raising=False)
    with pytest.raises(DataError, match="Fashion-MNIST not found.*zalandoresearch"):
        load_dataset("fashion-mnist", "test")
    monkeypatch.setenv("RBFI_FASHION_MNIST_DIR", str(fashion_dir))
    assert load_dataset("fashion-mnist", "test")[0].shape == (12, 784)


def test_fashion_mnist_corrupt_files(fashion_dir):
    write_idx(fashion_dir / "t10k-images-idx3-ubyte.gz", np.zeros((12, 32, 32)), True)
    with pytest.raises(DataError, match="images are 32x32, expected 28x28"):
        load_dataset("fashion-mnist", "test", fashion_dir)
    write_idx(fashion_dir / "t10k-images-idx3-ubyte.gz", np.zeros((12, 28, 28)), True)
    write_idx(fashion_dir / "t10k-labels-idx1-ubyte.gz", np.full(12, 10), True)
    with pytest.raises(DataError, match="Fashion-MNIST test.*labels outside 0..9"):
        load_dataset("fashion-mnist", "test", fashion_dir)
    (fashion_dir / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*not found.*Fashion-MNIST"):
        load_dataset("fashion-mnist", "train", fashion_dir)


# ---------------------------------------------------------------- registry and model config


def test_registry_and_model_config():
    assert {name: d.input_shape for name, d in DATASETS.items()} == {
        "mnist": (1, 28, 28),
        "fashion-mnist": (1, 28, 28),
        "cifar10": (3, 32, 32),
    }
    assert all(d.n_classes == 10 for d in DATASETS.values())
    with pytest.raises(ValueError, match="unknown dataset 'svhn'"):
        get_dataset("svhn")
    cifar = ModelConfig("relu", (8, 10), dataset="cifar10")
    assert cifar.in_features == 3 * 32 * 32 and cifar.input_shape == (3, 32, 32)
    assert ModelConfig.from_json(cifar.to_json()) == cifar
    assert cifar.to_json()["dataset"] == "cifar10"
    # an MNIST net's entry is what it was before datasets existed, and reads back as MNIST
    mnist = ModelConfig("relu", (8, 10))
    assert mnist.to_json() == {"arch": "relu", "layers": [8, 10], "in_features": 784}
    assert ModelConfig.from_json(mnist.to_json()).dataset == "mnist"
    with pytest.raises(ValueError, match="in_features 784 does not fit dataset cifar10"):
        ModelConfig("relu", (8, 10), dataset="cifar10", in_features=784)
    plain = ModelConfig("rbfi", (4, 3), dataset=None, in_features=5)  # no dataset
    assert plain.input_shape == (1, 1, 5) and ModelConfig.from_json(plain.to_json()) == plain
    assert ModelConfig("rbfi", (4, 3), dataset=None, in_features=36).input_shape == (1, 6, 6)
    with pytest.raises(ValueError, match=r"expected input of shape \(B, 5\), got \(B, 1, 1, 5\)"):
        build_model(plain)(torch.rand(2, 1, 1, 5))
    assert build_model("relu", "4,3", in_features=5).config.dataset is None
    assert build_model("relu", "4,10").config.dataset == "mnist"
    with pytest.raises(ValueError, match="schema|expected one of"):
        ModelConfig.from_json({**mnist.to_json(), "dataset": "imagenet"})


def test_an_mnist_net_refuses_cifar_images_and_a_cifar_net_takes_them():
    mnist_net = build_model("relu", "8,10")
    with pytest.raises(ValueError) as info:
        mnist_net(torch.rand(2, 3, 32, 32))
    assert str(info.value) == (
        "expected input of shape (B, 784) or (B, 1, 28, 28), got (B, 3, 32, 32)"
    )
    cifar_net = build_model("rbfi", "8,10", dataset="cifar10")
    images = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(cifar_net(images), cifar_net(images.flatten(1)))
    for bad in ((2, 1, 28, 28), (2, 784), (2, 32, 32)):
        with pytest.raises(ValueError, match=r"\(B, 3072\) or \(B, 3, 32, 32\)"):
            cifar_net(torch.rand(*bad))


def test_training_config_checks_the_dataset(tmp_path):
    from rbfi.training import TrainConfig, train

    cifar = ModelConfig("relu", (8, 10), dataset="cifar10")
    with pytest.raises(ValueError, match="pixel_scale must be 255 for cifar10"):
        TrainConfig(model=cifar, pixel_scale=256)
    plain = TrainConfig(model=ModelConfig("relu", (8, 10), dataset=None, in_features=5))
    with pytest.raises(ValueError, match="plain vectors, not a dataset"):
        train(plain, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match=r"10 units \(CIFAR-10 classes\), got 7"):
        TrainConfig(model=ModelConfig("relu", (8, 7), dataset="cifar10"))
    saved = TrainConfig(model=cifar).to_json()
    del saved["pixel_scale"]  # only MNIST runs predate the setting: the others mean 255
    assert TrainConfig.from_json(saved).pixel_scale == 255
    assert trained_pixel_scale({}, "cifar10") == 255 and trained_pixel_scale({}) == 256


# ---------------------------------------------------------------- from the command line


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train_tiny(capsys, out, dataset, data_dir, *extra):
    argv = ["train", "--model", "relu", "--layers", "8,10", "--epochs", "1", "--batch-size"]
    argv += ["5", "--dataset", dataset, "--data-dir", data_dir, "--out", out, "--no-progress"]
    code, _, err = cli(capsys, *argv, *extra)
    assert code == 0, err
    return out


@pytest.mark.parametrize(
    "dataset, fixture", [("fashion-mnist", "fashion_dir"), ("cifar10", "cifar_dir")]
)
def test_train_eval_certify_attack_on_a_dataset(tmp_path, capsys, request, dataset, fixture):
    data_dir = request.getfixturevalue(fixture)
    run = train_tiny(capsys, tmp_path / "run", dataset, data_dir)
    index = json.loads((run / "checkpoint.json").read_text())
    assert index["model"]["dataset"] == dataset
    assert index["model"]["in_features"] == get_dataset(dataset).n_inputs
    assert index["training"]["pixel_scale"] == 255
    code, out, _ = cli(capsys, "eval", run, "--data-dir", data_dir, "--json")
    result = json.loads(out)
    x, y = load_dataset(dataset, "test", data_dir)  # the evaluation, computed here
    from rbfi.models import load_model

    expected = (predict(load_model(run), x) == y).float().mean().item()
    assert code == 0 and result["dataset"] == dataset and result["images"] == len(y)
    assert result["accuracy"] == pytest.approx(expected) and result["pixel_scale"] == 255
    # the net's own dataset may be named again; another one is refused in one line, exit 2
    assert cli(capsys, "eval", run, "--data-dir", data_dir, "--dataset", dataset)[0] == 0
    for command in (
        ["eval"],
        ["certify", "--out", tmp_path / "c"],
        ["attack", "--out", tmp_path / "a"],
    ):
        code, out, err = cli(capsys, command[0], run, *command[1:], "--dataset", "mnist")
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
        assert f"holds a {dataset} net; it cannot be run on mnist" in err
    assert not (tmp_path / "c").exists() and not (tmp_path / "a").exists()
    code, _, err = cli(capsys, "eval", run, "--data-dir", data_dir, "--pixel-scale", "256")
    assert code == 2 and f"pixel_scale must be 255 for {dataset}" in err
    certify = ["certify", run, "--data-dir", data_dir, "--eps", "0.1", "--limit", "4", "--json"]
    code, out, _ = cli(capsys, *certify, "--out", tmp_path / "certify")
    assert code == 0 and 0 <= json.loads(out)["certified"]["0.1"] <= 100
    saved = json.loads((tmp_path / "certify" / "certify.json").read_text())
    assert saved["model"]["config"]["dataset"] == dataset and saved["n_examples"] == 4
    attack = ["attack", run, "--data-dir", data_dir, "--suite", "paper", "--attacks", "fgsm"]
    attack += ["--eps", "0.1", "--limit", "4", "--check-subset", "0", "--no-progress"]
    code, _, err = cli(capsys, *attack, "--out", tmp_path / "attack")
    assert code == 0, err
    robustness = json.loads((tmp_path / "attack" / "robustness.json").read_text())
    assert robustness["settings"]["pixel_scale"] == 255 and robustness["n_examples"] == 4


def test_an_mnist_net_is_not_run_on_another_dataset(idx_dir, cifar_dir, tmp_path, capsys):
    run = train_tiny(capsys, tmp_path / "run", "mnist", idx_dir)
    assert "dataset" not in json.loads((run / "checkpoint.json").read_text())["model"]
    code, _, err = cli(capsys, "eval", run, "--dataset", "cifar10", "--data-dir", cifar_dir)
    assert code == 2 and "holds a mnist net; it cannot be run on cifar10" in err
    # given CIFAR-10's folder as its data, an MNIST net finds no MNIST files there
    code, _, err = cli(capsys, "eval", run, "--data-dir", cifar_dir / "cifar-10-batches-py")
    assert code == 2 and "t10k-images-idx3-ubyte[.gz] not found" in err
    code, _, err = cli(
        capsys,
        "train",
        "--dataset",
        "cifar10",
        "--layers",
        "8,10",
        "--data-dir",
        cifar_dir,
        "--pixel-scale",
        "256",
        "--out",
        tmp_path / "x",
    )
    assert code == 2 and "pixel_scale must be 255 for cifar10" in err
    assert not (tmp_path / "x").exists()
    argv = ["train", "--dataset", "cifar10", "--model", "relu", "--layers", "8,10", "--data-dir"]
    code, _, err = cli(capsys, *argv, cifar_dir, "--init-from", run, "--out", tmp_path / "y")
    assert code == 2 and "of mnist, not the ReLU(8, 10) of cifar10 being trained" in err


def test_checkpoint_test_set(idx_dir, tmp_path, capsys):
    run = train_tiny(capsys, tmp_path / "run", "mnist", idx_dir)
    test = checkpoint_test_set(run, 5, data_dir=idx_dir)
    x, y = load_dataset("mnist", "test", idx_dir)
    assert test.dataset == "mnist" and test.pixel_scale == 255
    assert torch.equal(test.x, x[:5]) and torch.equal(test.y, y[:5])
    index = json.loads((run / "checkpoint.json").read_text())
    del index["training"]["pixel_scale"]  # an MNIST run from before the setting: k / 256
    (run / "checkpoint.json").write_text(json.dumps(index))
    legacy = checkpoint_test_set(run, data_dir=idx_dir)
    assert legacy.pixel_scale == 256 and torch.equal(legacy.x * 256, x * 255)
    assert checkpoint_test_set(run, data_dir=idx_dir, pixel_scale=255).pixel_scale == 255
    with pytest.raises(DataError, match="holds a mnist net"):
        checkpoint_test_set(run, dataset="fashion-mnist")
    with pytest.raises(ValueError, match="limit"):
        checkpoint_test_set(run, 0, data_dir=idx_dir)


def test_data_options_are_declared_once_in_one_help_section():
    from rbfi.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    wanted = {"--dataset", "--data-dir", "--pixel-scale"}
    for name in ("train", "eval", "certify", "attack"):
        groups = {g.title: g for g in commands[name]._action_groups}
        flags = [s for a in groups["data"]._group_actions for s in a.option_strings]
        assert sorted(flags) == sorted(wanted), name
        every = [s for a in commands[name]._actions for s in a.option_strings]
        assert all(every.count(flag) == 1 for flag in wanted), name


def test_doctor_reports_each_dataset(fashion_dir, cifar_dir, monkeypatch, capsys):
    monkeypatch.setenv("RBFI_FASHION_MNIST_DIR", str(fashion_dir))
    monkeypatch.delenv("RBFI_CIFAR10_DIR", raising=False)
    assert main(["doctor", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["data"]["datasets"]
    assert found["fashion-mnist"] == {"found": True, "location": str(fashion_dir), "error": None}
    assert not found["cifar10"]["found"] and "cifar-10-python" in found["cifar10"]["error"]
    assert main(["doctor"]) == 0
    text = capsys.readouterr().out
    assert "cifar10        not found: give --data-dir DIR or set RBFI_CIFAR10_DIR" in text
    monkeypatch.setenv("RBFI_CIFAR10_DIR", str(cifar_dir))
    assert main(["doctor", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)["data"]["datasets"]["cifar10"]
    assert found["location"] == str(cifar_dir / "cifar-10-batches-py")
