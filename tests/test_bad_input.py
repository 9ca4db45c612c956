"""Bad input, tried as a new user would: every case prints one line, exits 2 and changes
nothing on disk (every file's bytes and modification time are compared before and after).

Cases: bad options of every command, output paths that cannot be used, missing and corrupt
data, and checkpoints that are missing, corrupt, or contradict themselves (the JSON index
against the tensors, with a matching SHA-256 so only the content checks can catch them).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rbfi.cli import main
from rbfi.io.atomic import sha256_file


def tree_state(root: Path) -> dict:
    """Every path under root with its bytes (files) and modification time."""
    state = {}
    for path in sorted(root.rglob("*")):
        stat = path.stat()
        content = path.read_bytes() if path.is_file() else None
        state[str(path.relative_to(root))] = (content, stat.st_mtime_ns, path.is_dir())
    return state


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny MNIST (IDX), a trained and resumable RBFI run with geometry ^v, a ReLU run,
    a regular file, and results of an earlier evaluation."""
    import numpy as np

    from tests.conftest import write_idx

    root = tmp_path_factory.mktemp("bad-input")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 12)):
        write_idx(data / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(data / f"{split}-labels-idx1-ubyte", rng.integers(0, 10, n))
    common = ["--epochs", "1", "--batch-size", "10", "--data-dir", str(data), "--no-progress"]
    torch.manual_seed(0)
    assert (
        main(["train", "--layers", "8,10", "--geometry", "^v", "--out", str(root / "run")] + common)
        == 0
    )
    assert (
        main(["train", "--model", "relu", "--layers", "8,10", "--out", str(root / "relu")] + common)
        == 0
    )
    (root / "afile").write_text("not a directory\n")
    results = root / "results"
    results.mkdir()
    (results / "robustness.json").write_text("{}\n")
    return root


def rewrite_weights(run: Path, index: dict, change) -> None:
    """Apply ``change`` to the weight tensors and store them with a matching SHA-256."""
    path = run / index["weights"]["file"]
    tensors = load_file(str(path))
    change(tensors)
    save_file(tensors, str(path))
    index["weights"]["sha256"] = sha256_file(path)


def _set(path: tuple, value):
    def mutate(run, index):
        target = index
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _raw(text: str):
    """Replace checkpoint.json by ``text`` verbatim."""

    def mutate(run, index):
        (run / "checkpoint.json").write_text(text)

    return mutate


CHECKPOINT_CASES = {
    # name: (mutate(run, index) or None to keep the index, expected fragment)
    "not-json": (_raw("{broken"), "corrupt checkpoint index"),
    "json-list": (_raw("[]"), "not an rbfi checkpoint"),
    "other-format": (_set(("format",), "other"), "not an rbfi checkpoint"),
    "future-version": (_set(("format_version",), 99), "format 99 is not supported"),
    "epoch-string": (_set(("epoch",), "x"), "epoch: expected an integer"),
    "epoch-negative": (_set(("epoch",), -1), "epoch: must be >= 0"),
    "path-traversal": (_set(("weights", "file"), "../../afile"), "weights.file: malformed"),
    "bad-sha": (_set(("weights", "sha256"), "abc"), "weights.sha256: malformed"),
    "unknown-key": (_set(("surprise",), 1), "unexpected key"),
    "layers-not-int": (_set(("model", "layers"), [8, "a"]), "model.layers[1]"),
    "arch-unknown": (_set(("model", "arch"), "cnn"), "model.arch"),
    "geometry-contradicts-masks": (_set(("model", "geometry"), "^^"), "contradicts its geometry"),
    "layers-contradict-shapes": (_set(("model", "layers"), [32, 10]), "do not fit"),
    "bounds-contradict-buffers": (_set(("model", "u_bounds"), [0.01, 2.0]), "contradict"),
    "weights-missing": (
        lambda run, index: (run / index["weights"]["file"]).unlink(),
        "checkpoint file missing",
    ),
    "weights-truncated": (
        lambda run, index: (run / index["weights"]["file"]).write_bytes(
            (run / index["weights"]["file"]).read_bytes()[:-9]
        ),
        "checksum mismatch",
    ),
    "nan-parameter": (
        lambda run, index: rewrite_weights(
            run, index, lambda t: t["body.0.u"].__setitem__((0, 0), float("nan"))
        ),
        "NaN or infinite",
    ),
    "u-above-bound": (
        lambda run, index: rewrite_weights(
            run, index, lambda t: t["body.1.u"].__setitem__((2, 3), 5.0)
        ),
        "outside its bounds",
    ),
    "w-below-bound": (
        lambda run, index: rewrite_weights(
            run, index, lambda t: t["body.0.w"].__setitem__((1, 1), -0.5)
        ),
        "outside its bounds",
    ),
    "extra-tensor": (
        lambda run, index: rewrite_weights(
            run, index, lambda t: t.__setitem__("body.9.w", torch.zeros(2))
        ),
        "unexpected body.9.w",
    ),
    "mask-as-float": (
        lambda run, index: rewrite_weights(
            run, index, lambda t: t.__setitem__("body.0.is_or", t["body.0.is_or"].float())
        ),
        "torch.float32, expected (8,) torch.bool",
    ),
    "index-is-directory": (
        lambda run, index: ((run / "checkpoint.json").unlink(), (run / "checkpoint.json").mkdir()),
        "no checkpoint",
    ),
}


def _nan_json(run: Path, index: dict) -> None:
    text = json.dumps(index).replace('"epoch": 1,', '"epoch": 1, "metrics": [{"epoch": NaN}],', 1)
    (run / "checkpoint.json").write_text(text)


CHECKPOINT_CASES["nan-in-json"] = (_nan_json, "non-finite number NaN")


RESUME_FRAGMENTS = {
    "geometry-contradicts-masks": "training settings and its model config disagree",
    "layers-contradict-shapes": "training settings and its model config disagree",
    "bounds-contradict-buffers": "training settings and its model config disagree",
}


def checkpoint_dir(workspace: Path, case: str) -> Path:
    mutate, _ = CHECKPOINT_CASES[case]
    target = workspace / "bad" / case
    if not target.exists():
        shutil.copytree(workspace / "run", target)
        path = target / "checkpoint.json"
        index = json.loads(path.read_text())
        before = path.read_text() if path.is_file() else None
        mutate(target, index)
        if path.is_file() and path.read_text() == before:  # the mutation edited the index
            path.write_text(json.dumps(index))
    return target


def assert_one_line_exit_2(capsys, workspace: Path, argv: list[str], fragment: str) -> None:
    before = tree_state(workspace)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, err)
    assert err.startswith("rbfi: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and fragment in err, (fragment, err)
    assert tree_state(workspace) == before, "something on disk changed"


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
@pytest.mark.parametrize("command", ["eval", "info", "attack", "certify", "resume", "init"])
def test_bad_checkpoints(workspace, capsys, case, command):
    run = checkpoint_dir(workspace, case)
    data = ["--data-dir", str(workspace / "data")]
    argv = {
        "eval": ["eval", str(run), *data],
        "info": ["info", str(run)],
        "attack": [
            "attack",
            str(run),
            "--suite",
            "paper",
            "--eps",
            "0.1",
            "--limit",
            "4",
            "--out",
            str(workspace / "attack-out"),
            *data,
        ],
        "certify": ["certify", str(run), "--out", str(workspace / "certify-out"), *data],
        "init": [
            "train",
            "--layers",
            "8,10",
            "--geometry",
            "^v",
            "--init-from",
            str(run),
            "--out",
            str(workspace / "init-out"),
            *data,
            "--no-progress",
        ],
        "resume": [
            "train",
            "--layers",
            "8,10",
            "--out",
            str(run),
            "--resume",
            *data,
            "--no-progress",
        ],
    }[command]
    fragment = CHECKPOINT_CASES[case][1]
    if command == "resume":  # the run's own training settings are compared first
        fragment = RESUME_FRAGMENTS.get(case, fragment)
    if command == "init" and case in RESUME_FRAGMENTS:  # its model against the one trained
        fragment = "being trained"
    assert_one_line_exit_2(capsys, workspace, argv, fragment)


# cuda:99 exists on no machine: without CUDA the message says CUDA is missing, with it that
# there are fewer devices (the test holds on CPU-only and GPU machines alike)
NO_SUCH_CUDA_DEVICE = (
    "CUDA is not available" if not torch.cuda.is_available() else "CUDA device(s) here"
)
OPTION_CASES = [
    # train: output paths
    (["train", "--out", "{afile}"], "exists and is not a directory"),
    (["train", "--out", "{afile}/sub"], "is not a directory"),
    (["train", "--out", "{run}"], "already holds a checkpoint"),
    (["train"], "the following arguments are required: --out"),
    # train: numbers and choices
    (["train", "--epochs", "0", "--out", "{new}"], "expected a positive integer"),
    (["train", "--epochs", "1.5", "--out", "{new}"], "expected a positive integer"),
    (["train", "--batch-size", "-3", "--out", "{new}"], "expected a positive integer"),
    (["train", "--lr", "0", "--out", "{new}"], "expected a positive number"),
    (["train", "--lr", "inf", "--out", "{new}"], "expected a positive number"),
    (["train", "--lr", "nan", "--out", "{new}"], "expected a positive number"),
    (["train", "--rho", "1", "--out", "{new}"], "--rho: expected a number in [0, 1)"),
    (["train", "--seed", "-1", "--out", "{new}"], "--seed: expected an integer"),
    (["train", "--seed", "abc", "--out", "{new}"], "--seed: expected an integer"),
    (["train", "--layers", "", "--out", "{new}"], "--layers: expected comma-separated"),
    (["train", "--layers", "0,10", "--out", "{new}"], "--layers: expected comma-separated"),
    (["train", "--layers", "16,9", "--out", "{new}"], "10 units"),
    (["train", "--geometry", "^x", "--layers", "8,10", "--out", "{new}"], "geometry"),
    (["train", "--geometry", "^v^", "--layers", "8,10", "--out", "{new}"], "geometry"),
    (["train", "--model", "cnn", "--out", "{new}"], "--model: expected one of"),
    (["train", "--model", "relu", "--geometry", "^v", "--out", "{new}"], "geometry applies"),
    (["train", "--model", "relu", "--u-init", "rbfi", "--out", "{new}"], "u_init applies"),
    (["train", "--model", "rbf", "--u-init", "he", "--out", "{new}"], "--u-init: expected one of"),
    (["train", "--u-bounds", "3,1", "--out", "{new}"], "LOW <= HIGH"),
    (["train", "--u-bounds=-1,3", "--out", "{new}"], "LOW >= 0"),
    (["train", "--u-bounds", "-1,3", "--out", "{new}"], "--u-bounds: expected one argument"),
    (["train", "--u-bounds", "1", "--out", "{new}"], "expected LOW,HIGH"),
    (["train", "--w-bounds", "nan,1", "--out", "{new}"], "LOW <= HIGH"),
    (["train", "--loss", "hinge", "--out", "{new}"], "--loss: expected one of"),
    (["train", "--train-limit", "0", "--out", "{new}"], "positive integer"),
    (["train", "--device", "cuda:99", "--out", "{new}"], NO_SUCH_CUDA_DEVICE),
    (["train", "--device", "tpu", "--out", "{new}"], "--device: expected a torch device"),
    (["train", "--threads", "0", "--out", "{new}"], "positive integer"),
    (["train", "--data-dir", "{missing}", "--out", "{new}"], "not found"),
    (["train", "--data-dir", "{afile}", "--out", "{new}"], "not found"),
    (["train", "--data-dir", "{corrupt_data}", "--out", "{new}"], "corrupt"),
    (["train", "--certified-eps", "0", "--out", "{new}"], "--certified-eps: expected a number"),
    (["train", "--certified-eps", "1.5", "--out", "{new}"], "--certified-eps: expected a number"),
    (["train", "--adv-eps", "2", "--out", "{new}"], "--adv-eps: expected a number in [0, 1]"),
    (["train", "--adversarial", "cw", "--out", "{new}"], "--adversarial: expected one of"),
    (["train", "--adversarial", "pgd", "--certified-eps", "0.3", "--out", "{new}"], "not both"),
    (["train", "--certified-warmup", "0.7", "--certified-eps", "0.3", "--out", "{new}"], "<= 1"),
    (["train", "--reg-lambda", "-1", "--out", "{new}"], "--reg-lambda: expected a number"),
    (["train", "--optimizer", "sgd", "--out", "{new}"], "--optimizer: expected one of"),
    (["train", "--init-from", "{missing}", "--out", "{new}"], "no checkpoint"),
    (["train", "--model", "relu", "--init-from", "{run}", "--out", "{new}"], "not the ReLU"),
    # eval / info
    (["eval", "{missing}"], "no checkpoint"),
    (["eval", "{afile}"], "no checkpoint"),
    (["eval", "{run}", "--limit", "0"], "positive integer"),
    (["eval", "{run}", "--batch-size", "0"], "positive integer"),
    (["eval", "{run}", "--device", "cuda:99"], NO_SUCH_CUDA_DEVICE),
    (["eval", "{run}", "--device", "mps"], "only cpu and cuda devices are supported"),
    (["eval", "{run}", "--data-dir", "{missing}"], "not found"),
    (["info", "{data}"], "no checkpoint"),
    # attack
    (["attack", "{run}", "--eps", "2"], "--eps: expected comma-separated numbers in [0, 1]"),
    (["attack", "{run}", "--eps", "-0.1"], "--eps: expected comma-separated numbers"),
    (["attack", "{run}", "--eps", "a,b"], "--eps: expected comma-separated numbers"),
    (["attack", "{run}", "--eps", ""], "--eps: expected comma-separated numbers"),
    (["attack", "{run}", "--eps", "nan"], "--eps: expected comma-separated numbers"),
    (["attack", "{run}", "--limit", "0"], "positive integer"),
    (["attack", "{run}", "--suite", "weak"], "--suite: expected one of"),
    (["attack", "{run}", "--attacks", "nope", "--out", "{new}"], "unknown attack(s) nope"),
    (["attack", "{run}", "--pgd-steps", "0"], "positive integer"),
    (["attack", "{run}", "--pgd-alpha", "0"], "positive number"),
    (["attack", "{run}", "--square-queries", "-1"], "positive integer"),
    (["attack", "{run}", "--check-subset", "-1"], "non-negative integer"),
    (["attack", "{run}", "--autoattack", "bogus"], "--autoattack: expected one of"),
    (["attack", "{run}", "--batch-size", "0"], "positive integer"),
    (["attack", "{run}", "--out", "{afile}"], "exists and is not a directory"),
    (["attack", "{run}", "--out", "{results}"], "already holds results"),
    (["attack", "{run}", "--transfer-source", "{missing}", "--out", "{new}"], "no checkpoint"),
    (["attack", "{run}", "--transfer-source", "{bad_run}", "--out", "{new}"], "contradicts"),
    (["attack", "{missing}", "--out", "{new}"], "no checkpoint"),
    # certify
    (["certify", "{run}", "--eps", "0.1,x"], "--eps: expected comma-separated numbers"),
    (["certify", "{run}", "--limit", "0"], "positive integer"),
    (["certify", "{run}", "--out", "{afile}"], "exists and is not a directory"),
    (["certify", "{missing}", "--out", "{new}"], "no checkpoint"),
    # the command itself
    (["frobnicate"], "invalid choice"),
    ([], "the following arguments are required"),
]


@pytest.mark.parametrize(
    "argv, fragment", OPTION_CASES, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else None
)
def test_bad_options(workspace, capsys, argv, fragment):
    corrupt = workspace / "corrupt-data"
    if not corrupt.exists():
        shutil.copytree(workspace / "data", corrupt)
        path = corrupt / "train-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    names = {
        "afile": workspace / "afile",
        "run": workspace / "run",
        "new": workspace / "new-run",
        "missing": workspace / "missing",
        "data": workspace / "data",
        "corrupt_data": corrupt,
        "results": workspace / "results",
        "bad_run": checkpoint_dir(workspace, "geometry-contradicts-masks"),
    }
    argv = [a.format(**names) for a in argv]
    if argv and argv[0] in ("train", "eval", "attack") and "--data-dir" not in argv:
        argv += ["--data-dir", str(workspace / "data")]
    assert_one_line_exit_2(capsys, workspace, argv, fragment)
