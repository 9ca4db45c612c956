"""The model zoo (zoo/, rbfi.models.zoo, rbfi zoo, tools/make_card.py).

For every net of the repository's zoo: its card agrees with its checkpoint (architecture,
SHA-256 of the weights, parameter count, clean accuracy on the full test set), and the first
200 test images, re-certified here, give exactly the flags recorded in the card; a float64
NumPy computation straight from the formulas (tools/independent_certify.py) agrees with them.
"""

from __future__ import annotations

import hashlib
import json
import shlex

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import rbfi
from rbfi.bounds import certify
from rbfi.cli import main
from rbfi.data import load_mnist
from rbfi.evaluation.results import bits, mask
from rbfi.models import ModelConfig, build_model, predict, save_model, zoo
from rbfi.training import TrainConfig
from tools import independent_certify, make_card


def _zoo_names() -> list[str]:
    try:
        return zoo.names()
    except zoo.ZooError:  # test_the_repository_ships_a_zoo says so
        return []


ZOO_NAMES = _zoo_names()
INDEPENDENT_EXAMPLES = 32
EPS = ("0.1", "0.2", "0.3")  # the eps of a card


def test_the_repository_ships_a_zoo():
    assert zoo.zoo_dir().name == "zoo"
    assert ZOO_NAMES, "zoo/ holds no net with a card.json"


def test_pack_flags_by_hand():
    assert zoo.pack_flags([True, False, False, False, True, True, True, True, True]) == "8f8"
    assert zoo.pack_flags([]) == ""
    flags = [bool(b) for b in torch.randint(0, 2, (203,)).tolist()]
    assert zoo.unpack_flags(zoo.pack_flags(flags), 203) == flags
    with pytest.raises(zoo.ZooError):
        zoo.unpack_flags("8f", 9)


def _test_set(card: dict) -> tuple[torch.Tensor, torch.Tensor]:
    return load_mnist("test", pixel_scale=card["pixel_scale"])


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_card_agrees_with_its_checkpoint(name):
    card = zoo.read_card(name)
    run = zoo.resolve(name)
    index = json.loads((run / "checkpoint.json").read_text())
    weights = run / card["weights"]["file"]
    assert card["architecture"] == index["model"]
    assert card["weights"]["file"] == index["weights"]["file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["weights"]["sha256"] == index["weights"]["sha256"] == digest
    assert card["weights"]["bytes"] == weights.stat().st_size <= 10 * 2**20
    assert "state" not in index  # weights only, no optimiser state
    model = rbfi.load(f"zoo:{name}")
    assert model.config.to_json() == card["architecture"]
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    floats = [t for t in model.state_dict().values() if t.is_floating_point()]
    assert all(t.dtype == torch.float32 for t in floats)
    x, y = _test_set(card)
    assert card["evaluation"]["n_examples"] == len(x) == 10_000
    clean = (predict(model, x) == y).float().mean().item()
    assert clean == pytest.approx(card["evaluation"]["clean_accuracy"], abs=1e-6)
    k = card["recheck"]["n_examples"]
    correct = zoo.unpack_flags(card["recheck"]["clean_correct"], k)
    assert correct == (predict(model, x[:k]) == y[:k]).tolist()


def test_the_zoo_fits_its_size_limit():
    total = sum(zoo.read_card(n)["weights"]["bytes"] for n in ZOO_NAMES)
    assert total <= 50 * 2**20


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_recertifying_the_first_200_images_gives_the_cards_flags(name):
    card = zoo.read_card(name)
    model = rbfi.load(f"zoo:{name}")
    x, y = _test_set(card)
    k = card["recheck"]["n_examples"]
    assert k == zoo.RECHECK_EXAMPLES
    for eps, packed in card["recheck"]["certified"].items():
        cert = certify(model, x[:k], y[:k], float(eps))
        assert cert.certified.tolist() == zoo.unpack_flags(packed, k), f"eps {eps}"
        closest = cert.margins.abs().min().item()
        assert closest == pytest.approx(card["recheck"]["closest_margin"][eps], rel=1e-4)
        # certified implies correct, and the full-set accuracy cannot be above the clean one
        assert card["evaluation"]["certified"][eps] <= card["evaluation"]["clean_accuracy"]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_an_independent_float64_certifier_finds_the_cards_flags(name):
    """tools/independent_certify.py (NumPy, float64, from the formulas and the weights file)
    on the first 32 images; flags may differ only where the card's own margin is within
    float32 rounding of zero."""
    card = zoo.read_card(name)
    run = zoo.resolve(name)
    weights = load_file(str(run / card["weights"]["file"]))
    x, y = _test_set(card)
    n = INDEPENDENT_EXAMPLES
    x64, y64 = x[:n].double().numpy(), y[:n].numpy()
    for eps, packed in card["recheck"]["certified"].items():
        margins = independent_certify.margins(card["architecture"], weights, x64, y64, float(eps))
        expected = np.array(zoo.unpack_flags(packed, n))
        disagree = (margins > 0) != expected
        assert not disagree.any() or np.abs(margins[disagree]).max() < 1e-5, f"eps {eps}"


STRONG_NAMES = [n for n in ZOO_NAMES if zoo.read_card(n)["strong_suite"] is not None]


@pytest.mark.parametrize("name", STRONG_NAMES)
def test_the_strong_suite_result_is_the_cards_and_breaks_no_certificate(name):
    """The committed `rbfi attack` result a card cites: made on this net, its worst case is
    the card's, and per image it is at or above the certificate, computed twice (by the attack
    runner on all its images, by make_card for the card's first 200)."""
    card = zoo.read_card(name)
    suite = card["strong_suite"]
    result = json.loads((zoo.zoo_dir().parent / suite["source"]).read_text())
    n = suite["n_examples"]
    assert result["n_examples"] == n and result["settings"]["suite"] == "strong"
    x, y = _test_set(card)
    assert result["labels"] == y[:n].tolist()
    assert result["clean_predictions"] == predict(rbfi.load(f"zoo:{name}"), x[:n]).tolist()
    k = card["recheck"]["n_examples"]
    for eps in EPS:
        robust = mask(result["worst_case"][eps]["correct"])
        certified = mask(result["certified"][eps]["certified"])
        assert len(robust) == len(certified) == n
        assert result["worst_case"][eps]["accuracy"] == suite["worst_case"][eps]
        assert certified[:k].tolist() == zoo.unpack_flags(card["recheck"]["certified"][eps], k)
        assert not (certified & ~robust).any(), f"eps {eps}: an attack broke a certified image"
        assert int((robust & ~certified).sum()) == suite["robust_not_certified"][eps]
        assert certified.float().mean().item() == pytest.approx(
            suite["certified_same_images"][eps], abs=0.5 / n
        )


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_cli_list_and_show(name, capsys):
    assert main(["zoo", "list"]) == 0
    assert any(line.startswith(name + " ") for line in capsys.readouterr().out.splitlines())
    assert main(["zoo", "show", f"zoo:{name}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == zoo.read_card(name)
    assert main(["zoo", "show", name]) == 0
    assert card_line(capsys.readouterr().out, "checkpoint").split()[1] == str(zoo.resolve(name))
    assert main(["zoo", "path", name]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.resolve(name))


def card_line(text: str, key: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(key))


@pytest.mark.parametrize("bad", ["nope", "../rbfi", "", "Upper"])
def test_bad_names_are_one_line_errors(bad, capsys):
    with pytest.raises(zoo.ZooError, match="no net"):
        rbfi.load(f"zoo:{bad}")
    assert main(["zoo", "show", bad]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error: no net") and err.count("\n") == 1


def test_no_zoo_outside_a_checkout(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv(zoo.ZOO_ENV, raising=False)
    monkeypatch.setattr(zoo, "__file__", str(tmp_path / "site-packages/rbfi/models/zoo.py"))
    with pytest.raises(zoo.ZooError, match="no model zoo found"):
        rbfi.load("zoo:rbfi512")
    assert main(["zoo", "list"]) == 2
    assert capsys.readouterr().err.startswith("rbfi: error: no model zoo found")
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "missing"))
    assert main(["zoo", "list"]) == 2
    assert "is not a directory" in capsys.readouterr().err


# --- the card generator ------------------------------------------------------------------------


def prototype_net(tmp_path, epochs: int = 1):
    """A one-layer RBFI net of 10 And units centred on the class means of 2000 training
    images (u = 2): accurate enough that some test images certify; saved as a run."""
    config = ModelConfig(arch="rbfi", layers=(10,), geometry="^")
    model = build_model(config)
    x, y = load_mnist("train")
    x, y = x[:2000], y[:2000]
    with torch.no_grad():
        model.body[0].w.copy_(torch.stack([x[y == c].mean(0) for c in range(10)]))
        model.body[0].u.fill_(2.0)
    training = TrainConfig(model=config, epochs=epochs, lr=0.5, certified_eps=0.2)
    metrics = [{"epoch": 1, "train_seconds": 1.25, "eval_seconds": 0.5}]
    run = tmp_path / "runs" / "proto"
    save_model(run, model, epoch=1, training=training.to_json(), metrics=metrics)
    return run, model, training


def test_make_card_measures_what_an_independent_computation_finds(tmp_path, capsys):
    run, model, training = prototype_net(tmp_path)
    args = [str(run), "--name", "proto", "--description", "prototypes", "--zoo"]
    args += [str(tmp_path / "zoo"), "--limit", "300", "--threads", "1", "--trained-threads", "1"]
    assert make_card.main([*args, "--no-strong-suite", "not measured in a test"]) == 0
    card = json.loads((tmp_path / "zoo" / "proto" / "card.json").read_text())
    assert zoo.read_card("proto", tmp_path / "zoo") == card
    x, y = load_mnist("test", pixel_scale=training.pixel_scale)
    x, y = x[:300], y[:300]
    weights = load_file(str(run / card["weights"]["file"]))
    x64, y64 = x.double().numpy(), y.numpy()
    clean_margins = independent_certify.margins(card["architecture"], weights, x64, y64, 0.0)
    assert card["evaluation"]["clean_accuracy"] == pytest.approx(np.mean(clean_margins > 0))
    some_certified = False
    for eps, accuracy in card["evaluation"]["certified"].items():
        m = independent_certify.margins(card["architecture"], weights, x64, y64, float(eps))
        assert accuracy == pytest.approx(np.mean(m > 0))
        assert zoo.unpack_flags(card["recheck"]["certified"][eps], 200) == (m[:200] > 0).tolist()
        assert card["recheck"]["closest_margin"][eps] == pytest.approx(
            np.abs(m[:200]).min(), abs=1e-5
        )
        some_certified |= accuracy > 0
    assert some_certified  # the comparison above is not between two empty sets
    assert card["training"]["wall_seconds"] == pytest.approx(1.75)
    assert card["training"]["epochs"] == 1
    assert "notes" not in card  # the run ended where its command said
    assert (
        card["weights"]["sha256"]
        == hashlib.sha256((run / card["weights"]["file"]).read_bytes()).hexdigest()
    )
    command = shlex.split(card["training"]["command"])
    assert command[:2] == ["rbfi", "train"] and command[-2:] == ["--out", str(run)]
    written = [("--model", "rbfi"), ("--layers", "10"), ("--geometry", "^"), ("--epochs", "1")]
    written += [("--pixel-scale", "255"), ("--certified-eps", "0.2"), ("--lr", "0.5")]
    for flag, value in written:
        assert command[command.index(flag) + 1] == value
    assert command[command.index("--threads") + 1] == "1"
    assert "--certified-scale" not in command  # resolved from its None default anyway


def test_make_card_refuses_a_strong_suite_result_of_another_net(tmp_path, capsys, monkeypatch):
    run, model, _ = prototype_net(tmp_path, epochs=3)  # saved at epoch 1 of 3
    x, y = load_mnist("test")
    predictions = predict(model, x[:20])
    certified = {e: certify(model, x[:20], y[:20], float(e)).certified for e in EPS}
    assert certified["0.1"].any() and not certified["0.3"].all()
    # the worst case holds every certified image and, at 0.3, one more (a gap of 1 image)
    robust = {e: c.clone() for e, c in certified.items()}
    robust["0.3"][(~certified["0.3"]).nonzero()[0]] = True
    fake = {
        "settings": {"suite": "strong"},
        "n_examples": 20,
        "labels": y[:20].tolist(),
        "clean_predictions": ((predictions + 1) % 10).tolist(),
        "worst_case": {
            e: {"accuracy": r.float().mean().item(), "correct": bits(r)} for e, r in robust.items()
        },
        "seconds": 1.0,
    }
    (tmp_path / "robustness.json").write_text(json.dumps(fake))
    args = [str(run), "--name", "proto", "--description", "d", "--zoo", str(tmp_path / "zoo")]
    args += ["--limit", "50", "--threads", "1", "--strong-suite", str(tmp_path / "robustness.json")]
    assert make_card.main(args) == 2
    assert "another net" in capsys.readouterr().err
    fake["clean_predictions"] = predictions.tolist()
    fake["settings"]["attacks"] = ["pgd-ce"]  # a part of the suite is not the strong suite
    (tmp_path / "robustness.json").write_text(json.dumps(fake))
    assert make_card.main(args) == 2
    assert "ran only pgd-ce" in capsys.readouterr().err
    del fake["settings"]["attacks"]
    fake["settings"]["options"] = {"autoattack": "apgd", "square_queries": 1000}
    assert not (tmp_path / "zoo").exists()  # refused before anything was written
    fake["clean_predictions"] = predictions.tolist()
    broken = fake["worst_case"]["0.1"]["correct"].replace("1", "0")  # a certified image broken
    (tmp_path / "robustness.json").write_text(
        json.dumps({**fake, "worst_case": {**fake["worst_case"], "0.1": {"correct": broken}}})
    )
    assert make_card.main(args) == 2
    err = capsys.readouterr().err
    assert "broke" in err and "certified at eps 0.1" in err
    (tmp_path / "robustness.json").write_text(json.dumps(fake))
    assert make_card.main(args) == 0
    card = zoo.read_card("proto", tmp_path / "zoo")
    assert card["strong_suite"]["n_examples"] == 20
    assert card["notes"] == [
        "the run stopped after epoch 1 of the 3 its command asks for (this checkpoint is that "
        "epoch's)"
    ]
    assert card["strong_suite"]["worst_case"] == {
        e: r.float().mean().item() for e, r in robust.items()
    }
    assert card["strong_suite"]["options"] == {"autoattack": "apgd", "square_queries": 1000}
    assert card["strong_suite"]["robust_not_certified"] == {"0.1": 0, "0.2": 0, "0.3": 1}
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    capsys.readouterr()
    assert main(["zoo", "show", "proto"]) == 0
    assert "gap         eps 0.1: +0.0 points, eps 0.2: +0.0 points, eps 0.3: +5.0 points" in (
        capsys.readouterr().out
    )
    assert make_card.main(args) == 2  # the name is taken
    assert "--overwrite" in capsys.readouterr().err
    fake["settings"]["attacks"] = ["pgd-ce"]  # a part of the suite: recorded as other_attacks
    fake["worst_case"] = {"0.3": {"accuracy": 0.25}}
    (tmp_path / "pgd.json").write_text(json.dumps(fake))
    other = args[: args.index("--strong-suite")] + ["--no-strong-suite", "too slow"]
    assert (
        make_card.main([*other, "--attack-result", str(tmp_path / "pgd.json"), "--overwrite"]) == 0
    )
    card = zoo.read_card("proto", tmp_path / "zoo")
    assert card["strong_suite"] is None and card["strong_suite_note"] == "too slow"
    assert card["other_attacks"] == [
        {
            "attacks": ["pgd-ce"],
            "n_examples": 20,
            "worst_case": {"0.3": 0.25},
            "source": str(tmp_path / "pgd.json"),
        }
    ]
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    capsys.readouterr()
    assert main(["zoo", "show", "proto"]) == 0
    out = capsys.readouterr().out
    assert "attacks     eps 0.3: 25.00 % (worst case of pgd-ce, first 20 test images)" in out
    assert "strong      not measured: too slow" in out


@pytest.mark.parametrize("args", [["zoo"], ["zoo", "list"], ["zoo", "show"], ["zoo", "path"]])
def test_zoo_help_renders(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args, "--help"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: rbfi {' '.join(args)}")


# --- zoo:NAME wherever a command takes a checkpoint --------------------------------------------


def test_commands_take_zoo_names(capsys, tmp_path):
    """`rbfi certify zoo:NAME` certifies the net in zoo/NAME, with the numbers of the path."""
    name = ZOO_NAMES[0]
    outputs = []
    for i, ref in enumerate((f"zoo:{name}", str(zoo.resolve(name)))):
        args = ["certify", ref, "--limit", "20", "--eps", "0.1", "--out", str(tmp_path / f"c{i}")]
        assert main([*args, "--json"]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert main(["info", f"zoo:{name}"]) == 0


@pytest.mark.parametrize("command", ["certify", "attack", "eval", "info"])
def test_unknown_zoo_names_are_usage_errors(command, capsys):
    assert main([command, "zoo:no-such-net"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error: argument checkpoint: no net 'no-such-net' in the model zoo")
    assert err.count("\n") == 1


def test_training_starts_from_a_zoo_net(tmp_path, monkeypatch):
    """--init-from zoo:NAME trains exactly as --init-from with that net's run directory."""
    run, _, _ = prototype_net(tmp_path)
    args = [str(run), "--name", "proto", "--description", "prototypes", "--zoo"]
    args += [str(tmp_path / "zoo"), "--limit", "50", "--threads", "1", "--trained-threads", "1"]
    assert make_card.main([*args, "--no-strong-suite", "not measured in a test"]) == 0
    monkeypatch.setenv(zoo.ZOO_ENV, str(tmp_path / "zoo"))
    weights = []
    for source in ("zoo:proto", str(tmp_path / "zoo" / "proto")):
        out = tmp_path / "runs" / f"again-{len(weights)}"
        args = ["train", "--model", "rbfi", "--layers", "10", "--geometry", "^", "--epochs", "1"]
        args += ["--train-limit", "200", "--test-limit", "50", "--threads", "1", "--no-progress"]
        assert main([*args, "--init-from", source, "--out", str(out)]) == 0
        weights.append(rbfi.load(out).body[0].w)
    assert torch.equal(weights[0], weights[1])
    assert (weights[0] - rbfi.load("zoo:proto").body[0].w).abs().max() < 0.1  # started there
