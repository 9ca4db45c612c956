import json
import sys
from pathlib import Path

import pytest
import torch

import rbfi
from rbfi.io import checkpoint
from rbfi.io.checkpoint import CheckpointError
from rbfi.models import build_model, save_model


def saved(tmp_path, arch="rbfi", geometry="*v"):
    model = build_model(arch, "16,10", geometry if arch == "rbfi" else None)
    save_model(tmp_path, model, epoch=3, training={"lr": 5.0}, metrics=[{"epoch": 3}])
    return model


def test_round_trip_restores_outputs_and_mixed_mask(tmp_path):
    model = saved(tmp_path)
    loaded = rbfi.load(tmp_path)
    assert not loaded.training
    assert torch.equal(loaded.body[0].is_or, model.body[0].is_or)
    x = torch.rand(6, 784)
    torch.testing.assert_close(loaded(x), model(x))
    index = checkpoint.read_index(tmp_path / "checkpoint.json")
    assert index["epoch"] == 3 and index["versions"]["torch"] == torch.__version__
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["checkpoint.json", "weights-e0003.safetensors"]


def test_resave_replaces_tensor_files(tmp_path):
    model = saved(tmp_path)
    save_model(tmp_path, model, epoch=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json",
        "weights-e0004.safetensors",
    ]


def test_corrupt_weights_detected(tmp_path):
    saved(tmp_path)
    weights = tmp_path / "weights-e0003.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        rbfi.load(tmp_path)


@pytest.mark.parametrize("text", ["{not json", json.dumps({"format": "other"}), "[]"])
def test_corrupt_index_detected(tmp_path, text):
    saved(tmp_path)
    (tmp_path / "checkpoint.json").write_text(text)
    with pytest.raises(CheckpointError):
        rbfi.load(tmp_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        rbfi.load(tmp_path / "nothing")


def test_weights_that_do_not_fit_config(tmp_path):
    saved(tmp_path)
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    index["model"]["layers"] = [32, 10]
    (tmp_path / "checkpoint.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="do not fit"):
        rbfi.load(tmp_path)


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    model = saved(tmp_path)
    before = (tmp_path / "checkpoint.json").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "atomic_write_json", boom)
    with pytest.raises(OSError):
        save_model(tmp_path, model, epoch=4)
    assert (tmp_path / "checkpoint.json").read_bytes() == before
    assert rbfi.load(tmp_path) is not None  # still loads
    assert not list(tmp_path.glob(".*.tmp"))


UNPICKLING: list[str] = []  # what the audit hook saw while a test listened


def _audit(event: str, args) -> None:
    if event == "pickle.find_class" and UNPICKLING and UNPICKLING[0] == "listening":
        UNPICKLING.append(f"{args[0]}.{args[1]}")


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only while listening


def test_loading_never_unpickles(tmp_path, monkeypatch):
    """Every way into an unpickler is closed while a checkpoint loads (pickle's and _pickle's
    load, loads and Unpickler, torch.load), and the interpreter's own audit event for a class
    looked up by any unpickler (pickle.find_class) never fires: the load still succeeds."""
    import _pickle
    import pickle

    saved(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("a checkpoint must never be unpickled")

    for module in (pickle, _pickle):
        for name in ("load", "loads", "Unpickler"):
            monkeypatch.setattr(module, name, forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    UNPICKLING[:] = ["listening"]
    try:
        assert rbfi.load(tmp_path) is not None
    finally:
        seen, UNPICKLING[:] = UNPICKLING[1:], []
    assert seen == []


def test_a_pickle_in_place_of_the_weights_is_refused_and_never_run(tmp_path):
    """A weights file replaced by a pickle whose unpickling would create a directory (its
    checksum updated in checkpoint.json, so only the format can stop it): the load is refused
    in one line and the directory never appears."""
    import hashlib
    import os
    import pickle

    saved(tmp_path)
    sentinel = tmp_path / "unpickled"

    class Payload:
        def __reduce__(self):
            return (os.mkdir, (str(sentinel),))

    index = json.loads((tmp_path / "checkpoint.json").read_text())
    weights = tmp_path / index["weights"]["file"]
    weights.write_bytes(pickle.dumps(Payload()))
    index["weights"]["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (tmp_path / "checkpoint.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError) as caught:
        rbfi.load(tmp_path)
    assert "unreadable" in str(caught.value) and "\n" not in str(caught.value)
    assert not sentinel.exists()


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def test_a_failed_write_keeps_the_old_file_and_reads_as_one_line(tmp_path, monkeypatch):
    import rbfi.io.atomic as atomic

    target = tmp_path / "out.json"
    atomic.atomic_write_bytes(target, b"old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(atomic.WriteError) as caught:
        atomic.atomic_write_bytes(target, b"new")
    assert str(caught.value) == f"cannot write {target}: [Errno 28] No space left on device"
    assert caught.value.cause_errno == 28
    assert _snapshot(tmp_path) == {"out.json": b"old"}  # no temporary file left


def test_a_checkpoint_save_that_fails_leaves_the_previous_one(tmp_path, monkeypatch):
    """safetensors raises SafetensorError (not an OSError) for an I/O failure; the save becomes
    a CheckpointWriteError: an OSError (exit 1 in the CLI), not a bad-input error (exit 2)."""
    import safetensors.torch
    from safetensors import SafetensorError

    from rbfi.io.checkpoint import CheckpointWriteError

    model = saved(tmp_path)
    before = _snapshot(tmp_path)
    written = []

    def state_fails(tensors, path):  # the weights file is written, the state file is not
        if "state-" in Path(path).name:
            raise SafetensorError("Error while serializing: I/O error: No space left on device")
        written.append(path)
        return real(tensors, path)

    real = safetensors.torch.save_file
    monkeypatch.setattr(safetensors.torch, "save_file", state_fails)
    with pytest.raises(CheckpointWriteError) as caught:
        save_model(tmp_path, model, epoch=4, state={"x": torch.zeros(3)}, state_info={})
    assert written, "the weights file should have been written before the failure"
    assert isinstance(caught.value, OSError)
    assert not isinstance(caught.value, (PermissionError, ValueError))
    message = str(caught.value)
    assert "\n" not in message and "epoch 4" in message and "No space left" in message
    assert _snapshot(tmp_path) == before
