"""One command line: the options every subcommand shares (found by walking the argparse
parsers, so a new subcommand without them fails here), --limit / --test-limit, one default eps
grid, default outputs under runs/, --json and --no-progress, and the certified-training recipe
knobs grouped behind --certified-recipe (old settings still load and resume)."""

from __future__ import annotations

import argparse
import json

import pytest

from rbfi.cli import UsageError, build_parser, main

# every subcommand, and whether it evaluates a test set (--limit) and runs long (--no-progress);
# a new subcommand must be added here, and then gets checked like the others
COMMANDS = {
    "train": {"limit": True, "progress": True},
    "eval": {"limit": True, "progress": False},
    "info": {"limit": False, "progress": False},
    "attack": {"limit": True, "progress": True},
    "certify": {"limit": True, "progress": True},
    "reproduce": {"limit": False, "progress": True},
    "zoo list": {"limit": False, "progress": False},
    "zoo show": {"limit": False, "progress": False},
    "zoo path": {"limit": False, "progress": False},
    "doctor": {"limit": False, "progress": False},
}


def leaves(parser: argparse.ArgumentParser, words: tuple[str, ...] = ()):
    """(command words, parser) of every runnable subcommand, nested ones (zoo list) included."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*words, name))


def minimal_argv(words: str, parser: argparse.ArgumentParser) -> list[str]:
    """The command with a placeholder for each positional argument and required option."""
    argv = words.split()
    for action in parser._actions:
        if not action.option_strings and action.dest != "help":
            argv.append("X")
        elif action.required:
            argv += [action.option_strings[0], "X"]
    return argv


def test_every_subcommand_has_the_common_options():
    parser = build_parser()
    found = dict(leaves(parser))
    assert set(found) == set(COMMANDS), "classify the new subcommand in COMMANDS"
    for words, sub in found.items():
        flags = {flag for action in sub._actions for flag in action.option_strings}
        assert {"--threads", "--json"} <= flags, words
        assert ("--limit" in flags) == COMMANDS[words]["limit"], words
        assert ("--no-progress" in flags) == COMMANDS[words]["progress"], words
        argv = minimal_argv(words, sub)
        plain = parser.parse_args(argv)
        assert plain.threads is None and plain.json is False, words
        given = parser.parse_args([*argv, "--threads", "3", "--json"])
        assert given.threads == 3 and given.json is True, words
        with pytest.raises(UsageError, match="positive integer"):
            parser.parse_args([*argv, "--threads", "0"])
        if COMMANDS[words]["limit"]:
            limited = parser.parse_args([*argv, "--limit", "7"])
            assert getattr(limited, "limit", None) == 7 or limited.test_limit == 7, words
        if COMMANDS[words]["progress"]:
            assert parser.parse_args([*argv, "--no-progress"]).no_progress is True, words


def test_every_subcommand_help_shows_them(capsys):
    for words, _ in leaves(build_parser()):
        with pytest.raises(SystemExit):
            main([*words.split(), "--help"])
        text = capsys.readouterr().out
        assert "--threads" in text and "--json" in text, words
        assert ("--limit" in text) == COMMANDS[words]["limit"], words


def test_train_limit_and_its_old_name(tmp_path):
    from rbfi.cli.options import config_from_args
    from rbfi.training import TrainConfig

    parser = build_parser()
    base = ["train", "--out", str(tmp_path)]
    new = config_from_args(TrainConfig, parser.parse_args([*base, "--limit", "5"]))
    old = config_from_args(TrainConfig, parser.parse_args([*base, "--test-limit", "5"]))
    assert new == old and new.test_limit == 5  # saved under its old name: checkpoints load


def test_attack_and_certify_share_the_default_eps_grid():
    from rbfi.evaluation.config import DEFAULT_EPS, CertifyConfig, EvalConfig

    parser = build_parser()
    assert parser.parse_args(["attack", "RUN"]).eps == DEFAULT_EPS
    assert parser.parse_args(["certify", "RUN"]).eps == DEFAULT_EPS
    assert EvalConfig().eps == CertifyConfig().eps == DEFAULT_EPS


@pytest.fixture
def tiny_run(idx_dir, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--layers", "8,10", "--geometry", "^v", "--epochs", "1", "--batch-size"]
    argv += ["10", "--data-dir", str(idx_dir), "--no-progress", "--out", str(run)]
    assert main(argv) == 0
    return run


def test_default_outputs_go_under_runs_and_json_prints_what_the_files_hold(
    tiny_run, idx_dir, tmp_path, monkeypatch, capsys
):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    data = ["--data-dir", str(idx_dir), "--no-progress", "--json"]
    capsys.readouterr()
    assert main(["certify", str(tiny_run), "--eps", "0.1,0.2", *data]) == 0
    certified = json.loads(capsys.readouterr().out)
    attack = ["attack", str(tiny_run), "--suite", "paper", "--eps", "0.1", "--check-subset", "0"]
    attack += ["--paper-pgd-steps", "2", "--paper-pgd-restarts", "1"]
    assert main([*attack, *data]) == 0
    attacked = json.loads(capsys.readouterr().out)
    assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*.json")) == [
        "runs/attack-run-paper/robustness.json",
        "runs/certify-run/certify.json",
    ]
    cert_file = json.loads((work / "runs/certify-run/certify.json").read_text())
    assert certified == {
        "clean": round(100 * cert_file["clean_accuracy"], 2),
        "certified": {e: round(100 * r["accuracy"], 2) for e, r in cert_file["certified"].items()},
    }
    results = json.loads((work / "runs/attack-run-paper/robustness.json").read_text())
    worst = results["worst_case"]["0.1"]["correct"]
    assert attacked["images"] == len(worst) == 12
    assert attacked["worst_case"] == {"0.1": round(100 * worst.count("1") / 12, 2)}
    assert set(attacked["attacks"]) == {a["name"] for a in results["attacks"]}
    for name, per_eps in attacked["attacks"].items():
        flags = results["results"][name]["0.1"]["correct"]
        assert per_eps == {"0.1": round(100 * flags.count("1") / 12, 2)}, name


def test_no_progress_silences_certify(tiny_run, idx_dir, tmp_path, capsys):
    common = [str(tiny_run), "--eps", "0.1,0.2", "--data-dir", str(idx_dir)]
    assert main(["certify", *common, "--out", str(tmp_path / "a")]) == 0
    err = capsys.readouterr().err
    assert "certify: 100% 2/2 eps" in err  # capsys is not a terminal: progress lines
    assert main(["certify", *common, "--out", str(tmp_path / "b"), "--no-progress"]) == 0
    assert "certify:" not in capsys.readouterr().err


def test_train_json_prints_the_last_epoch_and_logs_to_stderr(idx_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--layers", "8,10", "--epochs", "2", "--batch-size", "10", "--limit", "5"]
    argv += ["--data-dir", str(idx_dir), "--no-progress", "--json", "--out", str(run)]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    printed = json.loads(out)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert printed == {"run": str(run), "last_epoch": json.loads(lines[-1])}
    assert "epoch 2:" in err
    from rbfi.io.checkpoint import read_index

    assert read_index(run)["training"]["test_limit"] == 5


def test_zoo_path_json():
    from rbfi.models import zoo

    name = zoo.names()[0]
    parser = build_parser()
    args = parser.parse_args(["zoo", "path", name, "--json"])
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert args.handler(args) == 0
    assert json.loads(buffer.getvalue()) == {"name": name, "path": str(zoo.resolve(name))}


def test_reproduce_estimate_only_refuses_json(capsys):
    assert main(["reproduce", "--estimate-only", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error: --json") and err.count("\n") == 1


# --- certified training: --certified-recipe ----------------------------------------------------

RECIPE_KNOBS = (
    "--certified-margin",
    "--certified-hinge-width",
    "--certified-reduce",
    "--certified-ce",
    "--certified-ce-end",
)


@pytest.mark.parametrize("knob", RECIPE_KNOBS)
def test_the_rejected_recipes_knobs_are_gone(knob, tmp_path):
    with pytest.raises(UsageError, match="unrecognized arguments"):
        build_parser().parse_args(["train", "--out", str(tmp_path), knob, "0.1"])


def test_certified_recipe_linf_dist_sets_its_settings(tmp_path):
    from rbfi.cli.options import config_from_args
    from rbfi.training import TrainConfig

    argv = ["train", "--out", str(tmp_path), "--certified-eps", "0.3"]
    args = build_parser().parse_args([*argv, "--certified-recipe", "linf-dist"])
    config = config_from_args(TrainConfig, args)
    assert (config.certified_loss, config.certified_margin, config.certified_reduce) == (
        "clipped_hinge",
        0.1,
        "max",
    )
    assert (config.certified_ce, config.certified_ce_end) == (0.05, 0.0002)
    assert config.certified_hinge_width == pytest.approx(0.6)  # 2 x eps
    assert TrainConfig.from_json(config.to_json()) == config
    default = config_from_args(
        TrainConfig, build_parser().parse_args(["train", "--out", "x", "--certified-eps", "0.3"])
    )
    assert (default.certified_recipe, default.certified_loss, default.certified_ce) == (
        "ibp",
        "cross_entropy",
        0.0,
    )


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"certified_recipe": "linf-dist"}, "needs certified_eps"),
        ({"certified_eps": 0.3, "certified_loss": "clipped_hinge"}, "linf-dist recipe's loss"),
        (
            {"certified_eps": 0.3, "certified_recipe": "linf-dist", "certified_loss": "hinge"},
            "sets the loss",
        ),
    ],
)
def test_certified_recipe_contradictions(settings, match):
    from rbfi.training import TrainConfig

    with pytest.raises(ValueError, match=match):
        TrainConfig(**settings)


def test_settings_saved_before_the_recipe_existed_load_and_resume(idx_dir, tmp_path, capsys):
    """A run trained with the clipped hinge and the clean cross-entropy as separate knobs (as
    the recipe study's were) loads as the linf-dist recipe with the same settings, and resumes;
    one without them loads as ibp."""
    from rbfi.io.checkpoint import read_index
    from rbfi.training import TrainConfig

    run = tmp_path / "run"
    argv = ["train", "--layers", "8,10", "--batch-size", "10", "--data-dir", str(idx_dir)]
    argv += ["--no-progress", "--certified-eps", "0.2", "--out", str(run)]
    assert main([*argv, "--epochs", "1", "--certified-recipe", "linf-dist"]) == 0
    path = run / "checkpoint.json"
    index = json.loads(path.read_text())
    saved = index["training"]
    old = {k: v for k, v in saved.items() if k != "certified_recipe"}  # as rbfi wrote it then
    assert old["certified_loss"] == "clipped_hinge" and old["certified_ce"] == 0.05
    index["training"] = old
    path.write_text(json.dumps(index))
    assert TrainConfig.from_json(old).to_json() == saved
    ibp = {**old, "certified_loss": "cross_entropy", "certified_ce": 0.0, "certified_ce_end": None}
    assert TrainConfig.from_json(ibp).certified_recipe == "ibp"
    assert main([*argv, "--epochs", "2", "--resume"]) == 0
    resumed = read_index(run)
    assert resumed["epoch"] == 2 and resumed["training"] == {**saved, "epochs": 2}
