"""tools/independent_certify.py on every dataset rbfi reads: it takes the net's dataset and input
shape from the checkpoint, reads the test files itself (Fashion-MNIST's IDX files, CIFAR-10's
python batches through its own restricted unpickler) and agrees with `rbfi certify` and with
rbfi's float64 interval bounds on conv nets trained on the small fake data files of the tests
(tests/data_files.py), written in the real formats."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from rbfi.bounds import margin_bounds
from rbfi.cli import main
from rbfi.data import checkpoint_test_set
from rbfi.evaluation.results import row_flags
from rbfi.models import load_model
from tools import independent_certify

SPEC = "c4k5s2p1,c6k3s2,12,10"  # padding: RBFI conv units exclude the padded pixels
EPS = "0.002,0.02,0.1"


def train_and_certify(tmp_path, capsys, dataset: str, data_dir, arch: str):
    """A one-epoch conv net of ``arch`` on ``dataset``, and `rbfi certify`'s JSON line and
    certify.json for it."""
    run = tmp_path / "run"
    geometry = ["--geometry", "^v^v"] if arch == "rbfi" else []
    data = ["--dataset", dataset, "--data-dir", str(data_dir)]
    argv = ["train", "--model", arch, "--layers", SPEC, *geometry, "--epochs", "1"]
    assert main([*argv, "--batch-size", "5", *data, "--no-progress", "--out", str(run)]) == 0
    capsys.readouterr()
    out = tmp_path / "cert"
    argv = ["certify", str(run), "--eps", EPS, "--data-dir", str(data_dir), "--json"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    return run, printed, json.loads((out / "certify.json").read_text())


@pytest.mark.parametrize("arch", ["rbfi", "relu"])
@pytest.mark.parametrize("dataset", ["fashion-mnist", "cifar10"])
def test_conv_nets_of_every_dataset_agree_with_rbfi_certify(
    tmp_path, capsys, request, dataset, arch
):
    data_dir = request.getfixturevalue(
        {"fashion-mnist": "fashion_dir", "cifar10": "cifar_dir"}[dataset]
    )
    run, ours, saved = train_and_certify(tmp_path, capsys, dataset, data_dir, arch)
    index = json.loads((run / "checkpoint.json").read_text())
    assert index["model"]["dataset"] == dataset
    assert (
        independent_certify.input_shape(index["model"])
        == {
            "fashion-mnist": (1, 28, 28),
            "cifar10": (3, 32, 32),
        }[dataset]
    )

    # the same images and labels as rbfi's own reader, in the same channel-major order
    x, y = independent_certify.load_test_set(str(data_dir), None, dataset)
    test = checkpoint_test_set(run, data_dir=data_dir)
    assert np.array_equal(x.astype(np.float32), test.x.numpy())  # rbfi: float32 pixels
    assert np.array_equal(y, test.y.numpy())
    assert saved["labels"] == y.tolist()

    # margin by margin: rbfi's float64 interval bounds on the checkpoint's net
    model = load_model(run).double().eval()
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    for eps in [0.0, *map(float, EPS.split(","))]:
        theirs = independent_certify.margins(index["model"], weights, x, y, eps)
        bounds = margin_bounds(model, x_t, y_t, eps).detach()
        rbfi_margins = bounds.scatter(1, y_t[:, None], float("inf")).amin(1).numpy()
        np.testing.assert_allclose(rbfi_margins, theirs, rtol=0, atol=1e-9)
        if eps > 0:  # and `rbfi certify`'s flags (float32) wherever the margin is not ~0
            flags = row_flags(saved["certified"][f"{eps:g}"])
            assert all(f == (m > 0) for f, m in zip(flags, theirs) if abs(m) > 1e-5)

    # the command line: the same percentages `rbfi certify` printed
    capsys.readouterr()
    assert independent_certify.main([str(run), "--eps", EPS, "--data-dir", str(data_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["n"] == len(y) and printed["pixel_scale"] == 255
    assert printed["clean"] == pytest.approx(ours["clean"], abs=0.01)
    assert printed["certified"].keys() == ours["certified"].keys()
    for key, value in ours["certified"].items():
        assert printed["certified"][key] == pytest.approx(value, abs=0.01), key


def test_the_cifar_reader_unpickles_nothing_but_arrays(cifar_dir, tmp_path):
    """A test_batch that asks to call a function is refused before it runs; the real files'
    py2 opcodes and this Python's protocol-2 pickles are both read."""
    from tests.data_files import write_cifar_folder

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    folder = tmp_path / "evil" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Payload(), b"labels": [0]}))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing io\.open"):
        independent_certify.load_test_set(str(folder.parent), None, "cifar10")
    assert not marker.exists()

    _, written = write_cifar_folder(tmp_path / "py3", style="py3")
    images, labels = written["test"]
    for root in (cifar_dir, tmp_path / "py3"):
        x, y = independent_certify.load_test_set(str(root), None, "cifar10")
        assert x.shape == (6, 3072) and y.dtype == np.int64
    assert np.array_equal(x, images.reshape(6, 3072) / 255.0) and np.array_equal(y, labels)


def test_a_net_whose_inputs_do_not_fit_its_dataset_is_refused(tmp_path, capsys):
    """The input shape comes from the checkpoint: a dataset the tool does not know, or an
    in_features that is not the size of the dataset's images, is a usage error (exit 2)."""
    assert independent_certify.input_shape({"dataset": None, "in_features": 49}) == (1, 7, 7)
    assert independent_certify.input_shape({"dataset": None, "in_features": 12}) == (1, 1, 12)
    assert independent_certify.input_shape({"in_features": 784}) == (1, 28, 28)  # MNIST
    with pytest.raises(ValueError, match="3072 inputs: its images have 784"):
        independent_certify.input_shape({"dataset": "fashion-mnist", "in_features": 3072})
    run = tmp_path / "run"
    run.mkdir()
    for model, message in [
        ({"arch": "rbfi", "dataset": "svhn", "in_features": 3072}, "no test set"),
        ({"arch": "rbfi", "dataset": "cifar10", "in_features": 784}, "its images have 3072"),
    ]:
        index = {"model": model, "weights": {"file": "weights.safetensors"}}
        (run / "checkpoint.json").write_text(json.dumps(index))
        (run / "weights.safetensors").write_bytes(b"")
        with pytest.raises(SystemExit) as exit_:
            independent_certify.main([str(run), "--data-dir", str(tmp_path)])
        assert exit_.value.code == 2 and message in capsys.readouterr().err
