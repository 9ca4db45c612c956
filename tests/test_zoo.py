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
from rbfi.data import load_dataset, load_mnist
from rbfi.evaluation.results import bits, mask
from rbfi.models import ModelConfig, build_model, predict, save_model, zoo
from rbfi.training import TrainConfig, train
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
    dataset = card["architecture"].get("dataset") or "mnist"
    return load_dataset(dataset, "test", pixel_scale=card["pixel_scale"])


# --- the re-checks of a zoo net (every net of zoo/, and nets a test puts into a zoo of its own) --


def check_card_agrees(name: str) -> None:
    """The card agrees with the checkpoint: architecture, weights file (SHA-256, size within
    the limit), no optimiser state, parameter count, float32, the clean accuracy on the full
    test set and the clean-correct flags of the first images."""
    card = zoo.read_card(name)
    run = zoo.resolve(name)
    index = json.loads((run / "checkpoint.json").read_text())
    weights = run / card["weights"]["file"]
    assert card["architecture"] == index["model"]
    assert card["weights"]["file"] == index["weights"]["file"]
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert card["weights"]["sha256"] == index["weights"]["sha256"] == digest
    assert card["weights"]["bytes"] == weights.stat().st_size <= zoo.WEIGHTS_LIMIT
    assert "state" not in index  # weights only, no optimiser state
    model = rbfi.load(f"zoo:{name}")
    assert model.config.to_json() == card["architecture"]
    assert card["model"] == ModelConfig.from_json(card["architecture"]).describe()
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


def check_recertified(name: str) -> None:
    """Re-certifying the first 200 test images gives the card's flags and closest margins."""
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


def check_independently(name: str) -> None:
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


def check_strong_suite(name: str) -> None:
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
    k = min(card["recheck"]["n_examples"], n)
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


def check_cli(name: str, capsys) -> None:
    """`rbfi zoo list`, `show` (text and JSON) and `path` show the net."""
    assert main(["zoo", "list"]) == 0
    assert any(line.startswith(name + " ") for line in capsys.readouterr().out.splitlines())
    assert main(["zoo", "show", f"zoo:{name}", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == zoo.read_card(name)
    assert main(["zoo", "show", name]) == 0
    shown = capsys.readouterr().out
    assert card_line(shown, "checkpoint").split()[1] == str(zoo.resolve(name))
    card = zoo.read_card(name)
    assert card_line(shown, f"{name}: ").startswith(f"{name}: {card['model']}, ")
    assert main(["zoo", "path", name]) == 0
    assert capsys.readouterr().out.strip() == str(zoo.resolve(name))


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_card_agrees_with_its_checkpoint(name):
    check_card_agrees(name)


def test_the_zoo_fits_its_size_limit():
    total = sum(zoo.read_card(n)["weights"]["bytes"] for n in ZOO_NAMES)
    assert total == zoo.weights_bytes() <= zoo.ZOO_BUDGET == 80 * 2**20


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_recertifying_the_first_200_images_gives_the_cards_flags(name):
    check_recertified(name)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_an_independent_float64_certifier_finds_the_cards_flags(name):
    check_independently(name)


STRONG_NAMES = [n for n in ZOO_NAMES if zoo.read_card(n)["strong_suite"] is not None]


@pytest.mark.parametrize("name", STRONG_NAMES)
def test_the_strong_suite_result_is_the_cards_and_breaks_no_certificate(name):
    check_strong_suite(name)


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_cli_list_and_show(name, capsys):
    check_cli(name, capsys)


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


# --- conv nets and l_inf-distance nets through make_card and every re-check ----------------------


def save_run(tmp_path, name: str, model, training: TrainConfig):
    run = tmp_path / "runs" / name
    metrics = [{"epoch": 1, "train_seconds": 1.0, "eval_seconds": 0.5}]
    save_model(run, model, epoch=1, training=training.to_json(), metrics=metrics)
    return run


def rbfi_cnn(tmp_path):
    """RBFI(c1k2s2v, 10^): Or units with w = 0, u = 2 on each 2x2 block (1 - exp(-4 max x^2):
    ink anywhere in the block), then 10 And units centred on the class means of those 14x14
    maps over 2000 training images (u = 2); certifies some test images at every eps."""
    config = ModelConfig(arch="rbfi", layers="c1k2s2,10", geometry="v^")
    model = build_model(config)
    x, y = load_mnist("train")
    x, y = x[:2000], y[:2000]
    conv, flatten, dense = model.body
    with torch.no_grad():
        conv.w.zero_()
        conv.u.fill_(2.0)
        maps = flatten(conv(x.view(-1, 1, 28, 28)))
        dense.w.copy_(torch.stack([maps[y == c].mean(0) for c in range(10)]))
        dense.u.fill_(2.0)
    return save_run(tmp_path, "rbfi-cnn", model, TrainConfig(model=config, epochs=1))


def relu_cnn(tmp_path):
    """ReLU(c1k2s2, 10): 2x2 average pooling (weights 1/4, no bias), then the nearest class
    mean of the pooled images as a linear classifier (W_c = m_c, b_c = -|m_c|^2 / 2)."""
    config = ModelConfig(arch="relu", layers="c1k2s2,10")
    model = build_model(config)
    x, y = load_mnist("train")
    x, y = x[:2000], y[:2000]
    conv, act, flatten, linear = model.body
    with torch.no_grad():
        conv.weight.fill_(0.25)
        conv.bias.zero_()
        pooled = flatten(act(conv(x.view(-1, 1, 28, 28))))
        means = torch.stack([pooled[y == c].mean(0) for c in range(10)])
        linear.weight.copy_(means)
        linear.bias.copy_(-0.5 * (means * means).sum(1))
    training = TrainConfig(model=config, epochs=1, certified_eps=0.1)
    return save_run(tmp_path, "relu-cnn", model, training)


def linf_net(tmp_path):
    """LinfDist(64, 10) trained for 2 epochs on 2000 images (it certifies a few images)."""
    config = ModelConfig(arch="linf-dist", layers=(64, 10))
    training = TrainConfig(model=config, epochs=2, train_limit=2000, test_limit=200, linf_eps=0.3)
    run = tmp_path / "runs" / "linf"
    train(training, run, progress=False, log=lambda line: None)
    return run


def test_conv_and_linf_nets_go_through_make_card_and_every_recheck(tmp_path, capsys, monkeypatch):
    """An RBFI CNN (with the whole strong suite, its transfer attack crafted on a ReLU CNN), a
    ReLU CNN and an l_inf-distance net, each carded by make_card on the full test set into a
    zoo of the test's own, pass every re-check the zoo's nets pass; their cards hold the conv
    spec and the parameter counts of hand counts, and the training command trains them."""
    runs = {"rbfi-cnn": rbfi_cnn(tmp_path), "relu-cnn": relu_cnn(tmp_path)}
    runs["linf"] = linf_net(tmp_path)
    strong = tmp_path / "strong"
    budgets = ["--ifgsm-steps", "2", "--paper-pgd-steps", "3", "--paper-pgd-restarts", "1"]
    budgets += ["--pgd-steps", "3", "--pgd-restarts", "1", "--square-queries", "10"]
    budgets += ["--autoattack", "apgd", "--transfer-steps", "2", "--check-subset", "0"]
    attack = ["attack", str(runs["rbfi-cnn"]), "--suite", "strong", "--eps", "0.1,0.2,0.3"]
    attack += ["--limit", "20", "--transfer-source", str(runs["relu-cnn"]), *budgets]
    assert main([*attack, "--threads", "1", "--no-progress", "--out", str(strong)]) == 0
    result = json.loads((strong / "robustness.json").read_text())
    assert "transfer" in result["results"] and not result["skipped"]  # it ran on the CNN
    folder = tmp_path / "zoo"
    for name, run in runs.items():
        args = [str(run), "--name", name, "--description", "a test net", "--zoo", str(folder)]
        args += ["--threads", "1", "--trained-threads", "1"]
        if name == "rbfi-cnn":
            args += ["--strong-suite", str(strong / "robustness.json")]
        else:
            args += ["--no-strong-suite", "not run in a test"]
        assert make_card.main(args) == 0
    monkeypatch.setenv(zoo.ZOO_ENV, str(folder))
    assert zoo.names() == sorted(runs)
    for name in runs:
        check_card_agrees(name)
        check_recertified(name)
        check_independently(name)
        check_cli(name, capsys)
        card = zoo.read_card(name)
        certified = card["evaluation"]["certified"]
        assert 0 < max(certified.values()) < card["evaluation"]["clean_accuracy"]
        config = make_card._parse_train(shlex.split(card["training"]["command"])[2:-2])
        assert config.model.to_json() == card["architecture"]
    check_strong_suite("rbfi-cnn")
    cnn = zoo.read_card("rbfi-cnn")
    assert cnn["architecture"]["layers"] == ["c1k2s2", 10] and cnn["model"] == "RBFI(c1k2s2v, 10^)"
    assert cnn["parameters"] == 2 * 4 + 2 * 10 * 196  # u and w: 1 x 4 conv, 10 x 196 dense
    command = shlex.split(cnn["training"]["command"])
    assert command[command.index("--layers") + 1 :][:3] == ["c1k2s2,10", "--geometry", "v^"]
    assert zoo.read_card("relu-cnn")["parameters"] == 4 + 1 + 10 * 196 + 10
    # w of both layers, the output bias and the logit scale (the running mean is a buffer)
    assert zoo.read_card("linf")["parameters"] == 64 * 784 + 10 * 64 + 10 + 1
    capsys.readouterr()
    assert main(["zoo", "show", "rbfi-cnn"]) == 0
    shown = card_line(capsys.readouterr().out, "layers")
    assert shown == "layers      mnist 1x28x28 -> 1x14x14 -> 10"


def test_make_card_keeps_the_zoo_within_its_size_limits(tmp_path, capsys, monkeypatch):
    """A net whose weights would take the zoo over its budget, or a weights file over the limit
    per net, is refused before anything is written; replacing a net counts it once."""
    run, _, _ = prototype_net(tmp_path)
    size = (run / "weights-e0001.safetensors").stat().st_size
    folder = tmp_path / "zoo"
    args = [str(run), "--description", "d", "--zoo", str(folder), "--limit", "50"]
    args += ["--threads", "1", "--no-strong-suite", "a test"]
    monkeypatch.setattr(make_card, "ZOO_BUDGET", 2 * size)
    assert make_card.main([*args, "--name", "a"]) == 0
    assert make_card.main([*args, "--name", "b"]) == 0  # 2 x size: at the budget
    assert make_card.main([*args, "--name", "b", "--overwrite"]) == 0  # replaces itself
    assert make_card.main([*args, "--name", "c"]) == 2
    err = capsys.readouterr().err
    assert "over its budget" in err and err.count("\n") == 1
    assert not (folder / "c").exists()
    monkeypatch.setattr(make_card, "WEIGHTS_LIMIT", size - 1)
    assert make_card.main([*args, "--name", "a", "--overwrite"]) == 2
    assert "per net" in capsys.readouterr().err


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
