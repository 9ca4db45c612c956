"""Conv nets from one spec: the grammar, the nets it builds, their checkpoints, and the CLI end to
end (train, info, eval, certify against the independent NumPy certifier, attack, resume)."""

from __future__ import annotations

import json
import re

import pytest
import torch
from torch import nn

import rbfi
from rbfi.io.checkpoint import CheckpointError
from rbfi.models import ModelConfig, build_model, expected_state, save_model
from rbfi.models.layers import ConvSpec, parse_layers
from rbfi.nn import RBFI, RBFIConv2d

SPEC = "c6k5s2,c8k4s2p1,16,10"


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("c16k5s2,c32k4s2,512,10", ("c16k5s2", "c32k4s2", 512, 10)),
        ("c16k5s1p0, 10", ("c16k5", 10)),
        ("c4k3p1,c4k3s2p2,10", ("c4k3p1", "c4k3s2p2", 10)),
        ("512,512,10", (512, 512, 10)),
    ],
)
def test_spec_grammar_and_canonical_entries(text, parsed):
    assert parse_layers(text) == parsed
    assert parse_layers(list(parsed)) == parsed
    assert ConvSpec.parse("c16k5s2") == ConvSpec(16, 5, 2, 0)
    assert str(ConvSpec(3, 4, 1, 2)) == "c3k4p2"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("c16k5s2,c32k4s2", "must be dense"),
        ("512,c16k5,10", "before every dense layer"),
        ("c16k5p5,10", "padding must be smaller"),
        ("c16k5x,10", "conv layer cOUTkK"),
        ("c0k5,10", "conv layer cOUTkK"),
        ("0,10", "layers N"),
        ("c16k29,10", "does not fit its 28x28 input"),
        ("c16k5s2,c16k5s2,c16k5s2,10", "does not fit its 4x4 input"),
    ],
)
def test_bad_specs_are_one_line_errors(text, fragment):
    with pytest.raises(ValueError, match=fragment) as info:
        ModelConfig(layers=text)
    assert "\n" not in str(info.value)


def test_mlp_configs_and_their_json_are_unchanged():
    config = ModelConfig()
    assert config.layers == (512, 512, 512, 10) and not config.is_conv
    expected = {
        "arch": "rbfi",
        "layers": [512, 512, 512, 10],
        "geometry": "^v^v",
        "in_features": 784,
        "u_bounds": [0.01, 3.0],
        "w_bounds": [0.0, 1.0],
    }
    assert json.dumps(config.to_json()) == json.dumps(expected)
    assert json.dumps(ModelConfig("relu", "16,10").to_json()) == json.dumps(
        {"arch": "relu", "layers": [16, 10], "in_features": 784}
    )


@pytest.mark.parametrize("arch", ["rbfi", "rbf", "relu", "sigmoid"])
def test_one_spec_builds_the_same_shape_in_every_arch(arch):
    geometry = "^v*v" if arch in ("rbfi", "rbf") else None
    model = build_model(arch, SPEC, geometry)
    config = model.config
    assert config.feature_shapes == [(1, 28, 28), (6, 12, 12), (8, 6, 6)]
    assert config.dense_in_features == 288 and config.input_shape == (1, 28, 28)
    convs = [m for m in model.body if isinstance(m, (RBFIConv2d, nn.Conv2d))]
    denses = [m for m in model.body if type(m) in (RBFI, nn.Linear)]
    assert [c.out_channels for c in convs] == [6, 8] and len(denses) == 2
    assert [c.stride for c in convs] == [(2, 2), (2, 2)] and convs[1].padding == (1, 1)
    assert sum(isinstance(m, nn.Flatten) for m in model.body) == 1
    state, spec = model.state_dict(), expected_state(config)
    assert set(state) == set(spec)
    for name, (shape, dtype) in spec.items():
        assert tuple(state[name].shape) == shape and state[name].dtype == dtype, name
    clone = build_model(ModelConfig.from_json(json.loads(json.dumps(config.to_json()))))
    clone.load_state_dict(state)
    x = torch.rand(3, 784)
    torch.testing.assert_close(clone(x), model(x))
    torch.testing.assert_close(model(x.reshape(3, 1, 28, 28)), model(x))
    torch.testing.assert_close(model(x.reshape(3, 28, 28)), model(x))
    if arch in ("rbfi", "rbf"):
        assert [m.kind for m in convs + denses] == ["and", "or", "mixed", "or"]
        assert model.describe() == f"{arch.upper()}(c6k5s2^, c8k4s2p1v, 16*, 10v)"
    else:
        name = {"relu": "ReLU", "sigmoid": "Sigmoid"}[arch]
        assert model.describe() == f"{name}(c6k5s2, c8k4s2p1, 16, 10)"


def test_the_spec_is_one_string_in_python_and_on_the_command_line():
    from rbfi.cli.options import config_from_args
    from rbfi.training.config import TrainConfig

    model = rbfi.build_model("rbfi", layers="c16k5s2,c32k4s2,512,10", geometry="^v^v")
    assert model.describe() == "RBFI(c16k5s2^, c32k4s2v, 512^, 10v)"
    assert build_model("rbfi", ["c16k5s2", "c32k4s2", 512, 10]).config == model.config
    import argparse

    from rbfi.cli.options import add_config_options

    parser = argparse.ArgumentParser()
    add_config_options(parser, TrainConfig)
    args = parser.parse_args(["--layers", "c16k5s2,c32k4s2,512,10", "--geometry", "^v^v"])
    assert config_from_args(TrainConfig, args).model == model.config


@pytest.mark.parametrize("bad_shape", [(3, 783), (3, 2, 28, 28), (3, 1, 28, 27), (784,)])
def test_conv_nets_refuse_other_input_shapes(bad_shape):
    model = build_model("relu", SPEC)
    with pytest.raises(ValueError) as info:
        model(torch.rand(*bad_shape))
    got = f"(B, {', '.join(map(str, bad_shape[1:]))})" if len(bad_shape) > 1 else str(bad_shape)
    assert "(B, 1, 28, 28)" in str(info.value) and str(info.value).endswith(f"got {got}")


@pytest.mark.parametrize(
    "layers, fragment",
    [
        (["c16x", 10], "layers[0]: expected N (dense units) or cOUTkK"),
        (["16", 10], "layers[0]"),
        (["c16k5", "c8k3"], "must be dense"),
        ([16, "c8k3", 10], "before every dense layer"),
        (["c16k3p3", 10], "padding must be smaller"),
    ],
)
def test_checkpoint_specs_are_checked_on_load(tmp_path, layers, fragment):
    save_model(tmp_path, build_model("rbfi", SPEC), epoch=1)
    index = json.loads((tmp_path / "checkpoint.json").read_text())
    index["model"]["layers"] = layers
    (tmp_path / "checkpoint.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=re.escape(fragment)):
        rbfi.load(tmp_path)


def test_conv_checkpoints_round_trip_and_their_weights_are_checked(tmp_path):
    model = build_model("rbfi", SPEC, "^v*v")
    save_model(tmp_path / "a", model, epoch=1)
    loaded = rbfi.load(tmp_path / "a")
    x = torch.rand(4, 784)
    torch.testing.assert_close(loaded(x), model(x))
    assert torch.equal(loaded.body[3].is_or, model.body[3].is_or)  # the mixed layer's mask
    bad = build_model("rbfi", SPEC, "^v*v")
    with torch.no_grad():
        bad.body[1].is_or[0] = False  # an And unit in the Or conv layer
    save_model(tmp_path / "b", bad, epoch=1)
    with pytest.raises(CheckpointError, match="layer 1 .* contradicts its geometry symbol 'v'"):
        rbfi.load(tmp_path / "b")
    with torch.no_grad():
        bad.body[1].is_or[0] = True
        bad.body[4].u[0, 0] = 7.0  # the last layer (body.4, after the Flatten)
    save_model(tmp_path / "c", bad, epoch=1)
    with pytest.raises(CheckpointError, match=r"body\.4\.u lies in .* outside its bounds"):
        rbfi.load(tmp_path / "c")


# --- the command line, end to end ---------------------------------------------------------------

TRAIN = ["--epochs", "1", "--train-limit", "300", "--test-limit", "100", "--batch-size", "50"]
TRAIN += ["--threads", "1", "--no-progress"]
TINY_ATTACK = ["--suite", "strong", "--eps", "0,0.1", "--limit", "20", "--paper-pgd-steps", "2"]
TINY_ATTACK += ["--paper-pgd-restarts", "1", "--ifgsm-steps", "2", "--pgd-steps", "2"]
TINY_ATTACK += ["--pgd-restarts", "1", "--square-queries", "5", "--autoattack", "apgd"]
TINY_ATTACK += ["--check-subset", "4", "--no-progress", "--threads", "1"]


def test_a_conv_net_trains_certifies_and_is_attacked_from_the_cli(tmp_path, capsys):
    """Train (certified) a tiny RBFI CNN and its ReLU twin, then info, eval, certify (equal to
    the independent NumPy certifier), the strong attack suite with its masking checks and
    certified floor, resume, and rbfi.load: all on the conv nets, unchanged."""
    from rbfi.cli import main
    from rbfi.evaluation import ROBUSTNESS_SCHEMA
    from tools import independent_certify

    spec = ["--layers", "c4k5s2,c8k4s2,16,10"]
    rbfi_run, relu_run = tmp_path / "rbfi", tmp_path / "relu"
    argv = ["train", *spec, "--geometry", "^v^v", "--certified-eps", "0.1", *TRAIN]
    assert main([*argv, "--out", str(rbfi_run)]) == 0
    assert main(["train", "--model", "relu", *spec, *TRAIN, "--out", str(relu_run)]) == 0
    capsys.readouterr()
    assert main(["info", str(rbfi_run)]) == 0
    printed = capsys.readouterr().out
    assert "RBFI(c4k5s2^, c8k4s2v, 16^, 10v)" in printed
    assert "4 channels (5x5 kernel, stride 2x2)" in printed
    assert main(["eval", str(rbfi_run), "--limit", "100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"] == 100
    for run in (rbfi_run, relu_run):
        eps = "0.01,0.1"
        out = ["--out", str(run / "cert"), "--json", "--limit", "100"]
        assert main(["certify", str(run), "--eps", eps, *out]) == 0
        ours = json.loads(capsys.readouterr().out)
        assert independent_certify.main([str(run), "--eps", eps, "--limit", "100"]) == 0
        theirs = json.loads(capsys.readouterr().out)
        assert ours["clean"] == pytest.approx(theirs["clean"], abs=1.01)  # 1 image of 100
        for key in ours["certified"]:
            assert ours["certified"][key] == pytest.approx(theirs["certified"][key], abs=1.01)
    out = tmp_path / "attack"
    argv = ["attack", str(rbfi_run), *TINY_ATTACK, "--transfer-source", str(relu_run)]
    assert main([*argv, "--out", str(out)]) == 0
    saved = json.loads((out / "robustness.json").read_text())
    ROBUSTNESS_SCHEMA.check(saved)
    assert {"pgd-bpda-margin", "square", "autoattack-bpda", "transfer"} <= set(saved["results"])
    assert "zero_gradient_fraction" in saved["checks"] and not saved["soundness_violations"]
    assert set(saved["certified"]) == {"0", "0.1"}
    first = rbfi.load(rbfi_run)
    resume = ["train", *spec, "--geometry", "^v^v", "--certified-eps", "0.1", *TRAIN]
    resume[resume.index("--epochs") + 1] = "2"
    assert main([*resume, "--out", str(rbfi_run), "--resume"]) == 0
    index = json.loads((rbfi_run / "checkpoint.json").read_text())
    assert index["epoch"] == 2 and index["model"]["layers"] == ["c4k5s2", "c8k4s2", 16, 10]
    again = rbfi.load(rbfi_run)
    assert not torch.equal(again.body[0].w, first.body[0].w)  # it trained on
    assert isinstance(again.body[0], RBFIConv2d)


def test_bad_conv_specs_on_the_command_line_change_nothing(tmp_path, capsys):
    from rbfi.cli import main

    out = tmp_path / "run"
    assert main(["train", "--layers", "c16k5s2,c32k4s2", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error: argument --layers: ") and err.count("\n") == 1
    assert "must be dense" in err and not out.exists()
    assert main(["train", "--layers", "c16k29,10", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err and err.count("\n") == 1 and not out.exists()


REGIMES = [
    ["--adversarial", "madry", "--adv-steps", "2"],
    ["--adversarial", "trades", "--adv-steps", "2"],
    ["--reg-lambda", "0.01"],
]


@pytest.mark.parametrize("regime", REGIMES)
def test_adversarial_and_regularised_training_run_on_a_conv_net(tmp_path, regime):
    """Adversarial training (the project's attacks on conv nets) and the sensitivity
    regulariser (eq. 8 per position) train a tiny RBFI CNN; the checkpoint loads."""
    from rbfi.cli import main

    out = tmp_path / "run"
    argv = ["train", "--layers", "c4k5s2,c8k4s2,16,10", *TRAIN, *regime, "--out", str(out)]
    assert main(argv) == 0
    model = rbfi.load(out)
    assert model.describe() == "RBFI(c4k5s2^, c8k4s2v, 16^, 10v)"
    assert json.loads((out / "checkpoint.json").read_text())["epoch"] == 1
