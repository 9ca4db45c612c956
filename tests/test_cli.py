import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rbfi.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(directory):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())}


@pytest.fixture
def trained(idx_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run(
        capsys,
        "train",
        "--model",
        "rbfi",
        "--layers",
        "8,10",
        "--geometry",
        "*v",
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(out),
        "--no-progress",
    )
    assert code == 0
    return out


def test_train_eval_info(trained, idx_dir, capsys):
    code, out, _ = run(capsys, "eval", str(trained), "--data-dir", str(idx_dir), "--json")
    assert code == 0
    result = json.loads(out)
    assert result["images"] == 12 and 0 <= result["accuracy"] <= 1
    code, out, _ = run(capsys, "info", str(trained))
    assert code == 0 and "RBFI(8*, 10v)" in out and "resumable: yes" in out


def test_existing_run_is_not_touched(trained, idx_dir, capsys):
    before = snapshot(trained)
    code, _, err = run(
        capsys,
        "train",
        "--layers",
        "8,10",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(trained),
        "--no-progress",
    )
    assert code == 2 and "already holds a checkpoint" in err
    assert snapshot(trained) == before


def test_corrupt_checkpoint_is_one_line(trained, capsys):
    (trained / "checkpoint.json").write_text("{broken")
    before = snapshot(trained)
    code, _, err = run(capsys, "eval", str(trained))
    assert code == 2 and "corrupt" in err and err.count("\n") == 1
    assert snapshot(trained) == before


def test_resume_extends_a_run(trained, idx_dir, capsys):
    code, _, _ = run(
        capsys,
        "train",
        "--layers",
        "8,10",
        "--epochs",
        "2",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(trained),
        "--resume",
        "--no-progress",
    )
    assert code == 0
    lines = (trained / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]


def test_installed_console_script_runs(tmp_path):
    """The `rbfi` script pip installed next to this Python (pyproject's [project.scripts]):
    it starts, knows its version, and turns bad input into one line and exit 2."""
    from rbfi._version import __version__

    script = shutil.which("rbfi", path=str(Path(sys.executable).parent))
    assert script, f"no rbfi console script next to {sys.executable}: is rbfi installed?"
    proc = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"rbfi {__version__}"
    proc = subprocess.run([script, "eval", str(tmp_path / "none")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("rbfi: error:")
    assert proc.stderr.count("\n") == 1 and "no checkpoint" in proc.stderr


def test_python_dash_m_entry_point(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "rbfi.cli", "eval", str(tmp_path / "none")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.startswith("rbfi: error:")


@pytest.mark.parametrize("command", ["train", "eval", "info", "attack", "certify", "reproduce"])
def test_every_subcommand_help_renders(capsys, command):
    # argparse formats help strings with %: a stray % in one breaks --help of that command
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: rbfi {command}")
    assert "--help" in out


@pytest.mark.parametrize(
    "command, positional, config",
    [
        ("certify", ["RUN"], "rbfi.evaluation.config:CertifyConfig"),
        ("eval", ["RUN"], "rbfi.evaluation.config:AccuracyConfig"),
        ("attack", ["RUN"], "rbfi.evaluation.config:EvalConfig"),
        ("reproduce", [], "rbfi.experiments.config:ReproduceConfig"),
        ("train", ["--out", "RUN"], "rbfi.training:TrainConfig"),
    ],
)
def test_command_options_come_from_the_config_fields(command, positional, config):
    """Each option field of the command's config dataclass is on its command line with the
    field's default, and a value given on the command line reaches the config checked."""
    import importlib

    from rbfi.cli import UsageError, build_parser
    from rbfi.cli.options import config_from_args
    from rbfi.options import option_fields

    module, name = config.split(":")
    cls = getattr(importlib.import_module(module), name)
    parser = build_parser()
    args = parser.parse_args([command, *positional])
    assert config_from_args(cls, args) == cls()
    sub = parser._subparsers._group_actions[0].choices[command]
    flags = {flag for action in sub._actions for flag in action.option_strings}
    for f in option_fields(cls):
        if f.metadata["cli"]:
            assert (f.metadata["flag"] or "--" + f.name.replace("_", "-")) in flags, f.name
    field = next(f for f in option_fields(cls) if f.name in ("batch_size", "retries"))
    flag = "--" + field.name.replace("_", "-")
    args = parser.parse_args([command, *positional, flag, "7"])
    assert getattr(config_from_args(cls, args), field.name) == 7
    with pytest.raises(UsageError, match="expected a"):  # the field's own check
        parser.parse_args([command, *positional, flag, "-1"])
