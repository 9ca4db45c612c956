"""The learning-rate schedules against hand-worked values, and their use in training."""

import json
import math

import pytest
import torch

from rbfi.cli import build_parser
from rbfi.cli.errors import UsageError
from rbfi.cli.options import config_from_args
from rbfi.io import checkpoint
from rbfi.models import ModelConfig
from rbfi.training import TrainConfig, train
from rbfi.training.schedule import learning_rate


def test_constant_is_the_base_at_every_step():
    assert [learning_rate(t, 7, 5.0) for t in range(8)] == [5.0] * 8


def test_cosine_at_start_quarter_half_and_end():
    def lr(t):
        return learning_rate(t, 100, 2.0, "cosine")

    assert lr(0) == 2.0
    assert lr(25) == pytest.approx(1.0 + math.sqrt(0.5))  # 2 (1 + cos(pi/4)) / 2
    assert lr(50) == pytest.approx(1.0)
    assert lr(75) == pytest.approx(1.0 - math.sqrt(0.5))
    assert lr(100) == pytest.approx(0.0, abs=1e-15)


def test_cosine_after_warmup_starts_at_the_end_of_the_warmup():
    def lr(t):
        return learning_rate(t, 100, 1.0, "cosine", warmup=0.1)  # W = 10 warm-up steps

    assert [lr(t) for t in (0, 1, 4, 9)] == pytest.approx([0.1, 0.2, 0.5, 1.0])
    assert lr(10) == 1.0  # p = 0
    assert lr(55) == pytest.approx(0.5)  # p = 45 / 90 = 1/2
    assert lr(100) == pytest.approx(0.0, abs=1e-15)


def test_warmup_on_the_constant_schedule():
    assert [learning_rate(t, 8, 3.0, warmup=0.5) for t in range(6)] == pytest.approx(
        [0.75, 1.5, 2.25, 3.0, 3.0, 3.0]  # W = 4
    )


def test_step_boundaries():
    def lr(t):
        return learning_rate(t, 100, 1.0, "step", decay_at=(0.5, 0.75), decay_factor=0.1)

    assert [lr(t) for t in (0, 49)] == [1.0, 1.0]
    assert [lr(t) for t in (50, 74)] == pytest.approx([0.1, 0.1])
    assert [lr(t) for t in (75, 99)] == pytest.approx([0.01, 0.01])
    # a boundary between steps: 0.25 x 10 = 2.5, so step 2 is before it and step 3 after
    assert learning_rate(2, 10, 4.0, "step", decay_at=(0.25,), decay_factor=0.5) == 4.0
    assert learning_rate(3, 10, 4.0, "step", decay_at=(0.25,), decay_factor=0.5) == 2.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, 10, 1.0, "linear")
    with pytest.raises(ValueError):
        learning_rate(-1, 10, 1.0)


def test_cli_options_round_trip_through_the_checkpoint_settings():
    args = build_parser().parse_args(
        ["train", "--out", "x", "--lr-schedule", "step", "--lr-decay-at", "0.75,0.5"]
        + ["--lr-warmup", "0.1", "--lr-decay-factor", "0.5"]
    )
    config = config_from_args(TrainConfig, args)
    assert (config.lr_schedule, config.lr_warmup) == ("step", 0.1)
    assert (config.lr_decay_at, config.lr_decay_factor) == ((0.5, 0.75), 0.5)
    assert TrainConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    with pytest.raises(UsageError, match="lr-schedule"):
        build_parser().parse_args(["train", "--out", "x", "--lr-schedule", "linear"])


def _tiny(idx_dir, **kw):
    model = ModelConfig(arch="rbfi", layers=(8, 10), geometry="*v", u_bounds=(0.01, 3.0))
    return TrainConfig(
        model=model, batch_size=10, data_dir=str(idx_dir), seed=5, optimizer="adam", **kw
    )


def test_training_logs_the_scheduled_lr_and_resumes_bit_identically(idx_dir, tmp_path):
    """30 images / batch 10 = 3 steps an epoch, 4 epochs = 12 steps; decay at 0.5 -> step 6,
    the first step of epoch 3. The logged lr is the one of each epoch's last step."""
    kw = dict(lr=0.01, lr_schedule="step", lr_decay_at=(0.5,), lr_decay_factor=0.1)
    quiet = dict(progress=False, log=lambda m: None)
    train(_tiny(idx_dir, epochs=4, **kw), tmp_path / "full", **quiet)
    lines = (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["lr"] for line in lines] == pytest.approx([0.01, 0.01, 1e-3, 1e-3])

    train(_tiny(idx_dir, epochs=4, lr_schedule="cosine"), tmp_path / "cos", **quiet)
    lrs = [json.loads(line)["lr"] for line in (tmp_path / "cos" / "metrics.jsonl").open()]
    assert lrs == pytest.approx(
        [1e-3 * (1 + math.cos(math.pi * t / 12)) / 2 for t in (2, 5, 8, 11)]
    )

    # the same cosine run stopped after epoch 2 was saved, then resumed: bit-identical weights
    class Stop(Exception):
        pass

    def stop_after_epoch_2(message):
        if message.startswith("epoch 2:"):
            raise Stop

    with pytest.raises(Stop):
        train(
            _tiny(idx_dir, epochs=4, lr_schedule="cosine"),
            tmp_path / "cut",
            progress=False,
            log=stop_after_epoch_2,
        )
    assert checkpoint.read_index(tmp_path / "cut")["epoch"] == 2
    train(_tiny(idx_dir, epochs=4, lr_schedule="cosine"), tmp_path / "cut", resume=True, **quiet)
    a, b = (
        checkpoint.load_tensors(checkpoint.read_index(tmp_path / name), "weights")
        for name in ("cos", "cut")
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
