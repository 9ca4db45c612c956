import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rbfi
from rbfi.io import checkpoint
from rbfi.models import ModelConfig
from rbfi.training import RunExists, TrainConfig, TrainingDiverged, train


def tiny(idx_dir, arch="rbfi", layers=(8, 10), geometry="*v", u_bounds=(0.01, 3.0), **kw):
    model = ModelConfig(arch=arch, layers=layers, geometry=geometry, u_bounds=u_bounds)
    base = dict(model=model, epochs=2, batch_size=10, data_dir=str(idx_dir), seed=7)
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


def _global_rng_states():
    import random

    import numpy as np

    numpy_state = np.random.get_state()
    return (
        torch.get_rng_state(),
        random.getstate(),
        (numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]),
    )


def test_train_leaves_the_callers_global_rng_alone(idx_dir, tmp_path):
    """The global generators are the same after train() as before it (also when it fails),
    and the weights depend on the seed only, not on the caller's global RNG state."""
    import random

    import numpy as np

    quiet = dict(progress=False, log=lambda m: None)
    trained = []
    for name, caller_seed in (("a", 11), ("b", 12)):
        torch.manual_seed(caller_seed)
        random.seed(caller_seed)
        np.random.seed(caller_seed)
        torch.rand(3)  # a state that is not a fresh seed's
        before = _global_rng_states()
        train(tiny(idx_dir, epochs=1), tmp_path / name, **quiet)
        after = _global_rng_states()
        assert torch.equal(before[0], after[0])
        assert before[1:] == after[1:]
        trained.append(weights(tmp_path / name))
    assert trained[0].keys() == trained[1].keys()
    assert all(torch.equal(trained[0][k], trained[1][k]) for k in trained[0])

    def fail_after_epoch_1(message):
        if message.startswith("epoch 1:"):
            raise KeyboardInterrupt

    before = _global_rng_states()
    with pytest.raises(KeyboardInterrupt):
        train(tiny(idx_dir), tmp_path / "c", progress=False, log=fail_after_epoch_1)
    after = _global_rng_states()
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]


def test_cli_threads_apply_to_the_command_only(idx_dir, tmp_path, monkeypatch):
    import rbfi.training as training
    from rbfi.cli import main

    real, seen = training.train, {}

    def spy(*args, **kw):
        seen["threads"] = torch.get_num_threads()
        return real(*args, **kw)

    monkeypatch.setattr(training, "train", spy)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert main(_train_argv(idx_dir, tmp_path / "run", 1)[3:]) == 0  # --threads 1
        assert seen["threads"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(saved)


def test_refuses_to_overwrite_a_run(idx_dir, tmp_path):
    train(tiny(idx_dir, epochs=1), tmp_path, progress=False, log=lambda m: None)
    before = (tmp_path / "checkpoint.json").read_bytes()
    with pytest.raises(RunExists):
        train(tiny(idx_dir, epochs=1), tmp_path, progress=False, log=lambda m: None)
    assert (tmp_path / "checkpoint.json").read_bytes() == before


def test_nan_loss_stops_and_keeps_last_good_checkpoint(idx_dir, tmp_path, monkeypatch):
    import rbfi.training.objectives as objectives

    real = objectives.get_loss("square")
    calls = {"n": 0}

    def poisoned(name):
        def loss(scores, labels, reduction="mean"):
            calls["n"] += 1
            value = real(scores, labels, reduction)
            return value * float("nan") if calls["n"] > 4 else value  # epoch 1 = 3 batches + eval

        return loss

    monkeypatch.setattr(objectives, "get_loss", poisoned)
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
        (dict(arch="cnn"), "arch"),
        (dict(layers=(8, 9)), "10 units"),
        (dict(loss="hinge"), "loss: expected one of"),
    ],
)
def test_bad_config(idx_dir, kw, match):
    with pytest.raises(ValueError, match=match):
        tiny(idx_dir, **kw)


def _train_argv(idx_dir, out, epochs):
    return [
        sys.executable,
        "-m",
        "rbfi",
        "train",
        "--layers",
        "64,10",
        "--geometry",
        "*v",
        "--epochs",
        str(epochs),
        "--batch-size",
        "1",
        "--seed",
        "3",
        "--threads",
        "1",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(out),
        "--no-progress",
    ]


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_kill_9_then_resume_gives_bit_identical_weights(idx_dir, tmp_path, fraction):
    """SIGKILL a training process after its first epoch (at once: mid-save; or half an epoch
    later: mid-epoch), resume it, and compare with an uninterrupted run of the same seed, bit
    for bit. The delay is a fraction of the measured epoch time, so a fast CPU cannot finish
    the run before the kill."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    full, cut = tmp_path / "full", tmp_path / "cut"
    epochs = 6
    subprocess.run(_train_argv(idx_dir, full, epochs), env=env, check=True, capture_output=True)
    first = json.loads((full / "metrics.jsonl").read_text().splitlines()[0])
    delay = fraction * (first["train_seconds"] + first.get("eval_seconds", 0.0))
    proc = subprocess.Popen(
        _train_argv(idx_dir, cut, epochs),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if checkpoint.read_index(cut)["epoch"] >= 1:
                break
        except checkpoint.CheckpointError:
            pass
        time.sleep(0.005)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.read_index(cut)["epoch"] < epochs, "the run ended before it was killed"
    resumed = subprocess.run(
        _train_argv(idx_dir, cut, epochs) + ["--resume"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = (cut / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, epochs + 1))
    assert not list(cut.glob(".*.tmp")) or checkpoint.read_index(cut)["epoch"] == epochs


def test_log_file_gets_a_few_progress_lines_per_epoch(idx_dir, tmp_path):
    """Without a terminal, progress is a line every ~10% of an epoch, not hundreds of redraws."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    argv = _train_argv(idx_dir, tmp_path / "run", 2)
    argv.remove("--no-progress")
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True)
    lines = out.stderr.splitlines() + out.stdout.splitlines()
    progress = [line for line in lines if line.startswith("epoch 1/2:")]
    assert 5 <= len(progress) <= 10, progress  # 30 steps: one line per 10%, none per step
    assert "\r" not in out.stderr
    assert all("ETA" in line for line in progress)
    epochs = [line for line in lines if line.startswith("epoch 1:") or line.startswith("epoch 2:")]
    assert len(epochs) == 2


def _snapshot(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def _file_size_limit(limit):
    """preexec_fn: writes past ``limit`` bytes fail with EFBIG (SIGXFSZ ignored, as a full disk
    fails with ENOSPC) instead of killing the process."""
    import resource

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_save_failing_under_a_file_size_limit_is_one_line_and_keeps_the_checkpoint(
    idx_dir, tmp_path
):
    """``rbfi train --resume`` whose next checkpoint cannot be written (the weights file; then
    the state file, after the weights file was written): exit 1, one line on stderr, and the
    run directory byte for byte as it was (nothing half-written left behind)."""
    from rbfi.cli import main

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    run = tmp_path / "run"
    argv = _train_argv(idx_dir, run, 2)
    argv[argv.index("--batch-size") + 1] = "10"
    epochs = argv.index("--epochs") + 1
    assert main(argv[3:epochs] + ["1"] + argv[epochs + 1 :]) == 0  # epoch 1, in this process
    index = checkpoint.read_index(run)
    weights_size = (run / index["weights"]["file"]).stat().st_size
    state_size = (run / index["state"]["file"]).stat().st_size
    assert state_size > weights_size > 10_000  # Adadelta keeps two tensors per parameter
    before = _snapshot(run)
    for limit in (weights_size // 2, (weights_size + state_size) // 2):
        out = subprocess.run(
            argv + ["--resume"],
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=_file_size_limit(limit),
        )
        assert out.returncode == 1, out.stderr
        lines = out.stderr.splitlines()
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith("rbfi: failed: saving the checkpoint of epoch 2")
        assert "File too large" in lines[0]
        assert _snapshot(run) == before
    assert checkpoint.read_index(run)["epoch"] == 1


def test_permission_lost_while_saving_is_exit_1_and_keeps_the_checkpoint(
    idx_dir, tmp_path, monkeypatch, capsys
):
    """The index write is refused (as when the directory's permissions change mid-run) after
    the new tensor files were written: exit 1 (a failure of the run, not of the input), one
    line, the new files removed, the previous checkpoint unchanged."""
    import rbfi.io.atomic as atomic
    from rbfi.cli import main

    run = tmp_path / "run"
    argv = _train_argv(idx_dir, run, 1)[3:]
    assert main(argv) == 0
    before = _snapshot(run)
    real_replace = atomic.os.replace

    def replace(src, dst):
        if Path(dst).name == checkpoint.INDEX_NAME:
            raise PermissionError(13, "Permission denied", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    capsys.readouterr()
    assert main(_train_argv(idx_dir, run, 2)[3:] + ["--resume"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rbfi: failed: saving the checkpoint of epoch 2")
    assert "Permission denied" in lines[0]
    monkeypatch.undo()
    assert _snapshot(run) == before
