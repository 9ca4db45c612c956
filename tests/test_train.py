import json

import pytest
import torch

import rbfi
from rbfi import checkpoint
from rbfi.train import RunExists, TrainConfig, TrainingDiverged, train


def tiny(idx_dir, **kw):
    base = dict(
        arch="rbfi",
        layers=(8, 10),
        geometry="*v",
        epochs=2,
        batch_size=10,
        data_dir=str(idx_dir),
        seed=7,
    )
    base.update(kw)
    return TrainConfig(**base)


def weights(path):
    return checkpoint.load_tensors(checkpoint.read_index(path), "weights")


@pytest.mark.parametrize("arch", ["rbfi", "relu"])
def test_resume_gives_identical_weights(idx_dir, tmp_path, arch):
    kw = {} if arch == "rbfi" else dict(geometry=None)
    train(
        tiny(idx_dir, arch=arch, epochs=3, **kw),
        tmp_path / "full",
        progress=False,
        log=lambda m: None,
    )
    train(
        tiny(idx_dir, arch=arch, epochs=1, **kw),
        tmp_path / "cut",
        progress=False,
        log=lambda m: None,
    )
    train(
        tiny(idx_dir, arch=arch, epochs=3, **kw),
        tmp_path / "cut",
        resume=True,
        progress=False,
        log=lambda m: None,
    )
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]


def test_same_seed_same_run_other_seed_differs(idx_dir, tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train(
            tiny(idx_dir, seed=seed, epochs=1), tmp_path / name, progress=False, log=lambda m: None
        )
    a, b, c = (weights(tmp_path / n) for n in "abc")
    assert torch.equal(a["body.0.w"], b["body.0.w"])
    assert not torch.equal(a["body.0.w"], c["body.0.w"])


def test_refuses_to_overwrite_a_run(idx_dir, tmp_path):
    train(tiny(idx_dir, epochs=1), tmp_path, progress=False, log=lambda m: None)
    before = (tmp_path / "checkpoint.json").read_bytes()
    with pytest.raises(RunExists):
        train(tiny(idx_dir, epochs=1), tmp_path, progress=False, log=lambda m: None)
    assert (tmp_path / "checkpoint.json").read_bytes() == before


def test_nan_loss_stops_and_keeps_last_good_checkpoint(idx_dir, tmp_path, monkeypatch):
    import rbfi.train as train_module

    real = train_module.get_loss("square")
    calls = {"n": 0}

    def poisoned(name):
        def loss(scores, labels, reduction="mean"):
            calls["n"] += 1
            value = real(scores, labels, reduction)
            return value * float("nan") if calls["n"] > 4 else value  # epoch 1 = 3 batches + eval

        return loss

    monkeypatch.setattr(train_module, "get_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="last good checkpoint \\(epoch 1\\)"):
        train(tiny(idx_dir, epochs=3), tmp_path, progress=False, log=lambda m: None)
    assert checkpoint.read_index(tmp_path)["epoch"] == 1
    model = rbfi.load(tmp_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bounds_hold_after_training(idx_dir, tmp_path):
    train(
        tiny(idx_dir, lr=50.0, u_bounds=(0.05, 0.8)), tmp_path, progress=False, log=lambda m: None
    )
    model = rbfi.load(tmp_path)
    for layer in model.body:
        assert layer.u.min() >= 0.05 - 1e-7 and layer.u.max() <= 0.8 + 1e-7
        assert layer.w.min() >= 0 and layer.w.max() <= 1


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(epochs=0), "epochs"),
        (dict(lr=-1.0), "lr"),
        (dict(arch="cnn"), "unknown model"),
        (dict(layers=(8, 9)), "10 units"),
        (dict(loss="hinge"), "unknown loss"),
    ],
)
def test_bad_config(idx_dir, kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(idx_dir, **kw)
