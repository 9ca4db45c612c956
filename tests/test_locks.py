"""One owner per run directory (rbfi.io.lock): train, attack, certify and reproduce hold the
lock of their output directory; a second process exits 2 with one line naming the holder's
pid; a lock dies with its process (kill -9 included) and leaves nothing behind when released.

The races are real: two CLI processes started together on one directory, each held at a
barrier (a file) after its imports, so they reach the lock within milliseconds of each other
while the winner's run lasts much longer. The refusals are also checked deterministically,
with the lock held by this test process through the same API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rbfi.cli import main
from rbfi.io import checkpoint
from rbfi.io.lock import LOCK_NAME, RunLocked, run_lock

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

# a CLI process that does the command's slow imports, says it is ready, waits for the go file,
# then runs the command: argv READY GO MODULE,MODULE,... COMMAND ARGS...
RACER = """
import importlib, sys, time
from pathlib import Path
from rbfi.cli import main
for module in sys.argv[3].split(","):
    importlib.import_module(module)
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.001)
sys.exit(main(sys.argv[4:]))
"""
PRELOAD = {  # what each command imports on its way to the lock and the work under it
    "train": "rbfi.training",
    "attack": "rbfi.evaluation,matplotlib.pyplot",
    "certify": "rbfi.evaluation.certification,matplotlib.pyplot",
    "reproduce": "rbfi.experiments.reproduce,matplotlib.pyplot",
}


def lock_line(directory: Path, pid: int, what: str) -> re.Pattern:
    return re.compile(
        rf"rbfi: error: {re.escape(str(directory))} is in use by pid {pid} \({what}, since "
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\); wait for it to end or choose another directory\n"
    )


def tree(root: Path) -> dict:
    """Every path under root with its bytes (files) and modification time."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def race(tmp_path: Path, argv: list[str]) -> list[tuple[subprocess.Popen, str, str]]:
    """Start two CLI processes with ``argv``, release them at once; (process, out, err) each."""
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(flag), str(go), PRELOAD[argv[0]], *argv],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    deadline = time.monotonic() + 180
    while not all(flag.exists() for flag in ready):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [
            p.communicate() for p in procs if p.poll() is not None
        ]
        time.sleep(0.01)
    go.touch()
    return [(p, *p.communicate(timeout=600)) for p in procs]


def one_won(results, directory: Path, what: str) -> tuple[subprocess.Popen, str, str]:
    """Exactly one process ran (exit 0); the other exited 2 with the one line naming it."""
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 2], [(p.returncode, err) for p, _, err in results]
    winner = next(r for r in results if r[0].returncode == 0)
    _, out, err = next(r for r in results if r[0].returncode == 2)
    assert out == "" and lock_line(directory, winner[0].pid, what).fullmatch(err), err
    assert not (directory / LOCK_NAME).exists()  # released by the winner
    return winner


@pytest.fixture
def trained(idx_dir, tmp_path):
    """A one-epoch RBFI run on the tiny IDX data set."""
    run = tmp_path / "run"
    assert main(train_argv(idx_dir, run, epochs=1)) == 0
    return run


def quiet(idx_dir: Path, out: Path, *extra: str) -> list[str]:
    """The options every command here ends with: the tiny data set, one thread, no progress,
    ``extra``, and the output directory."""
    return [
        "--data-dir",
        str(idx_dir),
        "--threads",
        "1",
        "--no-progress",
        *extra,
        "--out",
        str(out),
    ]


def train_argv(idx_dir: Path, out: Path, epochs: int) -> list[str]:
    return [
        "train",
        "--layers",
        "16,10",
        "--geometry",
        "^v",
        "--epochs",
        str(epochs),
        "--batch-size",
        "1",
        *quiet(idx_dir, out),
    ]


def attack_argv(idx_dir: Path, run: Path, out: Path) -> list[str]:
    return [
        "attack",
        str(run),
        "--suite",
        "paper",
        "--eps",
        "0.1",
        "--limit",
        "12",
        "--check-subset",
        "0",
        "--paper-pgd-steps",
        "20",
        "--paper-pgd-restarts",
        "2",
        *quiet(idx_dir, out, "--json"),
    ]


def certify_argv(idx_dir: Path, run: Path, out: Path) -> list[str]:
    return ["certify", str(run), "--limit", "12", *quiet(idx_dir, out, "--json")]


def epochs_of(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


# --- the lock itself ---------------------------------------------------------------------------


def test_release_leaves_the_disk_as_it_was(tmp_path):
    """Created directories are removed again when nothing was written into them, the lock file
    is removed, and the times of a directory whose entries did not change are put back."""
    before = tree(tmp_path)
    with run_lock(tmp_path / "a" / "b", "test") as held:
        assert held.is_dir() and (held / LOCK_NAME).is_file()
        holder = json.loads((held / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["what"] == "test"
    assert tree(tmp_path) == before and not (tmp_path / "a").exists()
    with run_lock(tmp_path / "c", "test") as held:
        (held / "result.json").write_text("{}")
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["result.json"]


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    with run_lock(tmp_path, "first"):
        with pytest.raises(RunLocked) as refused:
            with run_lock(tmp_path, "second"):
                pass
        assert lock_line(tmp_path, os.getpid(), "first").fullmatch(
            f"rbfi: error: {refused.value}\n"
        )
        assert json.loads((tmp_path / LOCK_NAME).read_text())["what"] == "first"  # untouched
    with run_lock(tmp_path, "third"):  # free again
        pass


def test_a_lock_file_replaced_between_open_and_flock_is_not_held(tmp_path, monkeypatch):
    """A process that opened the lock file just before its holder released (and removed) it,
    while a third process created a new one, must not believe it holds the lock: it opens
    the file again, so that at any time all holders hold the file at the path."""
    import fcntl

    import rbfi.io.lock as lock

    real_flock, calls = fcntl.flock, []

    def flock_after_a_swap(fd, op):
        if not calls:  # between our open and our flock: the file is replaced
            (tmp_path / LOCK_NAME).unlink()
            (tmp_path / LOCK_NAME).write_text("")
        calls.append(fd)
        return real_flock(fd, op)

    monkeypatch.setattr(lock.fcntl, "flock", flock_after_a_swap)
    fd = lock.acquire(tmp_path, "test")
    try:
        assert len(calls) == 2  # tried again on the new file
        assert os.fstat(fd).st_ino == os.stat(tmp_path / LOCK_NAME).st_ino
    finally:
        lock.release(tmp_path, fd)


def test_a_lock_dies_with_a_killed_process(idx_dir, tmp_path):
    """kill -9 of the holder: its lock file stays behind, but the lock is gone; a training run
    takes it over, and the file counts for nothing (it is removed at the end)."""
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom rbfi.io.lock import run_lock\n"
            "with run_lock(sys.argv[1], 'doomed'):\n    print('held', flush=True)\n"
            "    time.sleep(600)\n",
            str(run),
        ],
        env=ENV,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(RunLocked, match=rf"in use by pid {holder.pid} \(doomed"):
            with run_lock(run, "test"):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == holder.pid  # stale file
    assert main(train_argv(idx_dir, run, epochs=1)) == 0
    assert sorted(p.name for p in run.iterdir() if p.name.startswith(".")) == []
    assert checkpoint.read_index(run)["epoch"] == 1 and epochs_of(run) == [1]


# --- refusals, deterministic: the lock held by this process --------------------------------------


@pytest.mark.parametrize("command", ["train", "resume", "attack", "certify", "reproduce"])
def test_a_command_on_a_held_directory_exits_2_and_changes_nothing(
    command, trained, idx_dir, tmp_path, capsys
):
    out = tmp_path / "out"
    argv = {
        "train": train_argv(idx_dir, out, epochs=1),
        "resume": [*train_argv(idx_dir, trained, epochs=2), "--resume"],
        "attack": attack_argv(idx_dir, trained, out),
        "certify": certify_argv(idx_dir, trained, out),
        "reproduce": ["reproduce", "--profile", "smoke", "--only", "sec68", "--out", str(out)],
    }[command]
    directory = trained if command == "resume" else out
    with run_lock(directory, "held by the test"):
        before = tree(tmp_path)
        capsys.readouterr()
        assert main(argv) == 2
        out_text, err = capsys.readouterr()
        assert lock_line(directory, os.getpid(), "held by the test").fullmatch(err), err
        assert tree(tmp_path) == before
    assert epochs_of(trained) == [1]


# --- real races: two processes at once on one directory ------------------------------------------


@pytest.mark.parametrize("resume", [False, True])
def test_two_trainings_at_once(idx_dir, tmp_path, resume):
    run = tmp_path / "run"
    argv = train_argv(idx_dir, run, epochs=4)
    if resume:  # two --resume of one run: the loser used to fail with "checkpoint file missing"
        assert main(train_argv(idx_dir, run, epochs=1)) == 0
        argv.append("--resume")
    one_won(race(tmp_path, argv), run, "training")
    index = checkpoint.read_index(run)
    assert index["epoch"] == 4 and [m["epoch"] for m in index["metrics"]] == [1, 2, 3, 4]
    assert epochs_of(run) == [1, 2, 3, 4]
    from rbfi.models import load_model

    load_model(run)  # whole: every file its index names, with the right checksums
    assert sorted(p.name for p in run.glob("*.safetensors")) == [
        "state-e0004.safetensors",
        "weights-e0004.safetensors",
    ]


@pytest.mark.parametrize("command", ["attack", "certify"])
def test_two_evaluations_at_once(command, trained, idx_dir, tmp_path):
    from rbfi.evaluation import ROBUSTNESS_SCHEMA
    from rbfi.evaluation.certification import CERTIFY_SCHEMA

    out = tmp_path / "out"
    argv = (attack_argv if command == "attack" else certify_argv)(idx_dir, trained, out)
    _, stdout, _ = one_won(race(tmp_path, argv), out, command)
    stem, schema = {
        "attack": ("robustness", ROBUSTNESS_SCHEMA),
        "certify": ("certify", CERTIFY_SCHEMA),
    }[command]
    assert sorted(p.name for p in out.iterdir()) == [f"{stem}.{e}" for e in ("json", "md", "png")]
    results = json.loads((out / f"{stem}.json").read_text())
    schema.check(results)
    assert json.loads(stdout)["clean"] == round(100 * results["clean_accuracy"], 2)


def test_two_reproductions_at_once(tmp_path):
    out = tmp_path / "paper"
    argv = ["reproduce", "--profile", "smoke", "--only", "sec68", "--no-progress", "--json"]
    winner = one_won(race(tmp_path, [*argv, "--out", str(out)]), out, "reproduce")
    printed = json.loads(winner[1])
    assert printed["items"]["sec68"] is True
    index = json.loads((out / "index.json").read_text())
    assert index["items"]["sec68"]["complete"] and len(index["runs"]) == 1
    assert "jobs:" not in winner[2]  # --no-progress: no line per job
