"""l_inf-distance nets (issue 26): the LinfDist layer against brute force, mean shift and
initialisation, bounds that contain every sampled output, both certificates against brute
force and against each other, the net's checkpoints and CLI, and the v2 training objective."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from rbfi import build_model, save_model
from rbfi.bounds import certify, input_box, interval_bounds, lipschitz_constant
from rbfi.io.checkpoint import CheckpointError
from rbfi.models import ModelConfig, load_model
from rbfi.nn import LinfDist, linf_layers, set_p
from rbfi.training import TrainConfig, train
from rbfi.training.linf import anneal_ratio, clipped_hinge_v2, p_at, shift_images

BACKENDS = ["reference", "chunked", "auto"]


def brute(x, w, p):
    """||x_b - w_j||_p straight from the definition, in float64."""
    d = (x.double()[:, None, :] - w.double()[None]).abs()
    return d.amax(-1) if math.isinf(p) else d.pow(p).sum(-1).pow(1 / p)


def tiny_net(layers=(6, 5, 4), in_features=9, seed=0, identity=0.0) -> torch.nn.Module:
    """A small l_inf-distance net in float64 and eval mode, with nonzero running means, bias and
    scale (as after training)."""
    torch.manual_seed(seed)
    config = ModelConfig(
        arch="linf-dist",
        layers=layers,
        in_features=in_features,
        dataset=None,
        linf_identity=identity,
    )
    model = build_model(config).double()
    with torch.no_grad():
        for layer in linf_layers(model):
            if layer.running_mean is not None:
                layer.running_mean.uniform_(0.5, 2.0)
            if layer.bias is not None:
                layer.bias.uniform_(-0.3, 0.3)
        model.body[-1].scale.fill_(1.7)
    return model.eval()


# --- the layer ------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("p", [1.0, 2.0, 8.0, 100.0, math.inf])
def test_layer_matches_brute_force(backend, p):
    torch.manual_seed(1)
    layer = LinfDist(7, 5, bias=True, p=p, backend=backend)
    with torch.no_grad():
        layer.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 7)  # any leading dimensions
    y = layer(x)
    assert y.shape == (2, 3, 5)
    want = brute(x.reshape(6, 7), layer.w, p) + layer.bias.double()
    assert torch.allclose(y.reshape(6, 5).double(), want, rtol=1e-5, atol=1e-6)


def test_mean_shift_uses_the_batch_in_training_and_the_running_mean_in_eval():
    torch.manual_seed(2)
    layer = LinfDist(4, 3, bias=False, mean_shift=True, momentum=0.25)
    x = torch.randn(10, 4)
    d = brute(x, layer.w, math.inf).float()
    y = layer(x)  # training: the batch mean is subtracted, the running mean moves 1/4 toward it
    assert torch.allclose(y, d - d.mean(0), atol=1e-6)
    assert torch.allclose(layer.running_mean, 0.25 * d.mean(0), atol=1e-6)
    layer(x)
    assert torch.allclose(layer.running_mean, (0.25 + 0.75 * 0.25) * d.mean(0), atol=1e-6)
    layer.eval()
    running = layer.running_mean.clone()
    assert torch.allclose(layer(x[:2]), d[:2] - running, atol=1e-6)  # constant in eval
    assert torch.equal(layer.running_mean, running)


def test_identity_initialisation():
    layer = LinfDist(5, 12, identity=10.0)
    for j in range(12):
        assert layer.w[j, j % 5] == -10.0
    x = torch.rand(3, 5)  # inputs well below 10: unit j copies input j mod 5, plus 10
    assert torch.allclose(layer(x), x[:, torch.arange(12) % 5] + 10.0, atol=1e-5)
    narrow = LinfDist(12, 5, identity=10.0)  # the papers' rule: no identity when n > out
    assert (narrow.w != -10.0).all()
    spread = LinfDist(12, 5, identity=10.0, identity_spread=True)
    assert [int((row == -10.0).nonzero()) for row in spread.w] == [0, 2, 4, 7, 9]
    assert (LinfDist(5, 12).w != -10.0).all()  # off by default


def test_p_is_settable_and_checked():
    layer = LinfDist(3, 2)
    assert math.isinf(layer.p)
    layer.p = 8
    assert layer.p == 8.0 and isinstance(layer.p, float)
    for bad in (0.5, float("nan"), "inf", True, None):
        with pytest.raises(ValueError, match="p must be a number >= 1 or inf"):
            layer.p = bad
    assert layer.p == 8.0
    model = tiny_net()
    set_p(model, 3.0)
    assert all(m.p == 3.0 for m in linf_layers(model))


def test_bad_input_is_refused_like_rbfi():
    layer = LinfDist(4, 3)
    with pytest.raises(
        ValueError, match=r"LinfDist expects input of shape \(\*, 4\), got \(2, 5\)"
    ):
        layer(torch.rand(2, 5))
    with pytest.raises(ValueError, match="LinfDist expects input"):
        layer(torch.tensor(1.0))
    with pytest.raises(ValueError, match="lo and hi differ in shape"):
        layer.eval().interval(torch.rand(2, 4), torch.rand(3, 4))
    for kwargs, message in (
        ({"in_features": 0}, "in_features and out_features must be >= 1"),
        ({"identity": -1.0}, "identity must be a finite number >= 0"),
        ({"init_std": float("nan")}, "init_std must be"),
        ({"momentum": 0.0}, "momentum must be in"),
        ({"p": 0.9}, "p must be a number >= 1 or inf"),
    ):
        args = {"in_features": 4, "out_features": 3, **kwargs}
        with pytest.raises(ValueError, match=message):
            LinfDist(args.pop("in_features"), args.pop("out_features"), **args)


def test_interval_needs_p_inf_and_eval_mode():
    layer = LinfDist(4, 3, mean_shift=True)
    lo, hi = torch.zeros(1, 4), torch.ones(1, 4)
    with pytest.raises(ValueError, match="need eval mode"):
        layer.interval(lo, hi)
    layer.eval()
    layer.p = 8.0
    with pytest.raises(ValueError, match="need p = inf"):
        layer.interval(lo, hi)
    layer.p = math.inf
    y_lo, y_hi = layer.interval(lo, hi)
    assert (y_lo <= y_hi).all()


def test_layer_bounds_are_exact_per_unit():
    """For each unit the bounds are attained: the lower one at the box point nearest to w, the
    upper one at the corner farthest from w."""
    torch.manual_seed(3)
    layer = LinfDist(6, 4, bias=True, dtype=torch.float64, backend="reference").eval()
    lo = torch.rand(3, 6, dtype=torch.float64) - 0.5
    hi = lo + torch.rand(3, 6, dtype=torch.float64)
    y_lo, y_hi = layer.interval(lo, hi)
    for b, j in itertools.product(range(3), range(4)):
        w = layer.w[j].detach()
        nearest = torch.minimum(torch.maximum(w, lo[b]), hi[b])
        farthest = torch.where((lo[b] - w).abs() > (hi[b] - w).abs(), lo[b], hi[b])
        assert torch.isclose(layer(nearest)[j], y_lo[b, j], atol=1e-12)
        assert torch.isclose(layer(farthest)[j], y_hi[b, j], atol=1e-12)


# --- bounds and both certificates -----------------------------------------------------------


def samples(x, eps, n=64, seed=0):
    """Random points of the clipped eps-box around each row of x and corners of it: (B, n, N)."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = input_box(x, eps)
    t = torch.rand(x.shape[0], n, x.shape[1], generator=g, dtype=x.dtype)
    t[:, : n // 2] = t[:, : n // 2].round()  # corners
    return lo[:, None] + t * (hi - lo)[:, None]


@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_sampled_outputs_stay_inside_both_bounds(eps):
    """Every sampled logit lies inside its interval bounds and inside the Lipschitz band
    s_c(x) -+ eps L; and the interval bounds are consistent with L-Lipschitz logits: their width
    is at most 2 eps L (||x - w||_inf's range over a box is at most the box's widest side)."""
    model = tiny_net()
    x = torch.rand(5, 9, dtype=torch.float64)
    x[:, :3] = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    lip = lipschitz_constant(model)
    assert lip == pytest.approx(1.7 / model.config.linf_std)
    lo, hi = interval_bounds(model, *input_box(x, eps))
    clean = model(x)
    assert ((hi - lo) <= 2 * eps * lip + 1e-12).all()
    points = samples(x, eps)
    scores = model(points.reshape(-1, 9)).reshape(5, -1, 4)
    assert (scores >= lo[:, None] - 1e-12).all() and (scores <= hi[:, None] + 1e-12).all()
    assert ((scores - clean[:, None]).abs() <= eps * lip + 1e-12).all()


@pytest.mark.parametrize("eps", [0.01, 0.05, 0.2])
def test_neither_certificate_is_broken_by_brute_force(eps):
    """On tiny nets, brute force over corners and random points of the box never changes the
    class of an example either certificate certifies; the reported margins are the better of
    the two; the margin certificate's margins equal clean margin - 2 eps L."""
    for seed in range(3):
        model = tiny_net(seed=seed, identity=10.0 if seed == 2 else 0.0)
        x = torch.rand(40, 9, dtype=torch.float64)
        y = model(x).argmax(1)
        y[::7] = (y[::7] + 1) % 4  # some misclassified examples
        cert = certify(model, x, y, eps)
        assert set(cert.by_method) == {"interval", "margin"}
        interval, margin = cert.by_method["interval"], cert.by_method["margin"]
        assert torch.equal(cert.margins, torch.maximum(interval, margin))
        scores = model(x)
        clean = scores.gather(1, y[:, None]).squeeze(1) - scores.scatter(
            1, y[:, None], -math.inf
        ).amax(1)
        assert torch.allclose(margin, clean - 2 * eps * lipschitz_constant(model), atol=1e-12)
        points = samples(x, eps, n=128, seed=seed)
        predicted = model(points.reshape(-1, 9)).argmax(1).reshape(40, -1)
        constant = (predicted == y[:, None]).all(1)
        for flags in (interval > 0, margin > 0, cert.certified):
            assert constant[flags].all()
        assert cert.certified.any() or eps > 0.1


def test_no_margin_certificate_off_p_inf_or_in_training():
    model = tiny_net()
    x, y = torch.rand(4, 9, dtype=torch.float64), torch.zeros(4, dtype=torch.long)
    model.train()
    assert lipschitz_constant(model) is None
    model.eval()
    set_p(model, 8.0)
    assert lipschitz_constant(model) is None
    set_p(model, math.inf)
    assert certify(model, x, y, 0.1).by_method is not None
    relu = build_model("relu", "5,10", in_features=9, dataset=None).double()
    assert certify(relu, x, y, 0.1).by_method is None  # interval only


def test_lipschitz_constant_holds_on_random_pairs():
    model = tiny_net(seed=4, identity=10.0)
    lip = lipschitz_constant(model)
    x = torch.rand(500, 9, dtype=torch.float64)
    x2 = (x + 0.2 * (torch.rand_like(x) - 0.5)).clamp(0, 1)
    ratio = (model(x) - model(x2)).abs().amax(1) / (x - x2).abs().amax(1)
    assert (ratio <= lip * (1 + 1e-9)).all()
    assert ratio.max() > 0.5 * lip  # and it is not vacuous


# --- the net, its checkpoints and the CLI ---------------------------------------------------


def test_net_state_save_load_and_checks(tmp_path):
    model = tiny_net(identity=10.0).float()
    config = model.config
    assert config.describe() == "LinfDist(6, 5, 4)"
    assert config.to_json()["linf_identity"] == 10.0
    assert ModelConfig.from_json(config.to_json()) == config
    run = tmp_path / "run"
    save_model(run, model, epoch=1)
    loaded = load_model(run)
    x = torch.rand(7, 9)
    assert torch.equal(loaded(x), model(x))
    assert all(math.isinf(m.p) for m in linf_layers(loaded))
    index = json.loads((run / "checkpoint.json").read_text())
    for key, value, message in (
        ("linf_std", 0, "linf_std"),
        ("linf_identity", -1, "linf_identity"),
        ("linf_scale_learnable", "yes", "linf_scale_learnable"),
    ):
        bad = json.loads(json.dumps(index))
        bad["model"][key] = value
        (run / "checkpoint.json").write_text(json.dumps(bad))
        with pytest.raises(CheckpointError, match=message):
            load_model(run)
    (run / "checkpoint.json").write_text(json.dumps(index))
    state = model.state_dict()
    state["body.1.running_mean"][0] = float("nan")
    from rbfi.models import check_weights

    with pytest.raises(CheckpointError, match="running_mean holds NaN"):
        check_weights(config, state)


def test_train_info_certify_and_the_independent_certifier(tmp_path, capsys, idx_dir):
    from rbfi.cli import main
    from tools import independent_certify

    run = tmp_path / "run"
    common = ["--epochs", "2", "--batch-size", "5", "--data-dir", str(idx_dir), "--no-progress"]
    argv = ["train", "--model", "linf-dist", "--layers", "16,10", "--out", str(run)]
    assert main(argv + common) == 0
    capsys.readouterr()
    saved = json.loads((run / "checkpoint.json").read_text())
    training = saved["training"]
    assert (training["optimizer"], training["lr"], training["lr_schedule"]) == (
        "adam",
        0.03,
        "cosine",
    )
    assert (training["adam_beta2"], training["adam_eps"]) == (0.99, 1e-10)
    metrics = saved["metrics"][-1]
    assert metrics["p"] == "inf" and "test_certified_0.3" in metrics
    assert main(["info", str(run)]) == 0
    info = capsys.readouterr().out
    assert "l_inf-distance units, p = inf, mean shift" in info and "-Lipschitz in l_inf" in info
    eps = "0.002,0.01,0.05"
    out = ["--out", str(tmp_path / "cert"), "--json"]
    assert main(["certify", str(run), "--eps", eps, "--data-dir", str(idx_dir)] + out) == 0
    ours = json.loads(capsys.readouterr().out)
    assert set(ours) == {"clean", "certified", "certified_by"}
    for key, best in ours["certified"].items():
        by = [ours["certified_by"][m][key] for m in ("interval", "margin")]
        assert max(by) <= best <= sum(by)
    assert independent_certify.main([str(run), "--eps", eps, "--data-dir", str(idx_dir)]) == 0
    theirs = json.loads(capsys.readouterr().out)
    assert abs(ours["clean"] - theirs["clean"]) <= 0.3
    for key in ours["certified"]:
        assert abs(ours["certified"][key] - theirs["certified"][key]) <= 0.3, key
        for method in ("interval", "margin"):
            got, want = ours["certified_by"][method][key], theirs["certified_by"][method][key]
            assert abs(got - want) <= 0.3, (method, key)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--linf-std", "0"], "--linf-std: expected a positive number"),
        (["--certified-eps", "0.3"], "linf-dist nets train with their own objective"),
        (["--linf-p-anneal", "0.5,1.5"], "linf_p_anneal must lie in"),
        (["--linf-p-start", "0.5"], "--linf-p-start: expected a number >= 1"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, idx_dir, extra, message):
    from rbfi.cli import main

    argv = ["train", "--model", "linf-dist", "--out", str(tmp_path / "r")]
    assert main(argv + ["--data-dir", str(idx_dir)] + extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("rbfi: error:") and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


def test_resumed_training_equals_an_uninterrupted_run(tmp_path, idx_dir):
    model = ModelConfig(arch="linf-dist", layers=(12, 10))
    config = dict(model=model, batch_size=10, data_dir=str(idx_dir), seed=3)
    quiet = {"progress": False, "log": lambda *a: None}
    train(TrainConfig(epochs=3, **config), tmp_path / "full", **quiet)

    class Stop(Exception):
        pass

    def stop_after_epoch_1(message):
        if message.startswith("epoch 1:"):
            raise Stop

    with pytest.raises(Stop):  # the same run stopped after epoch 1 was saved, then resumed
        train(
            TrainConfig(epochs=3, **config),
            tmp_path / "cut",
            progress=False,
            log=stop_after_epoch_1,
        )
    train(TrainConfig(epochs=3, **config), tmp_path / "cut", resume=True, **quiet)
    full, cut = load_model(tmp_path / "full"), load_model(tmp_path / "cut")
    for (name, a), (_, b) in zip(full.state_dict().items(), cut.state_dict().items()):
        assert torch.equal(a, b), name


# --- the v2 objective -----------------------------------------------------------------------


def test_recipe_defaults_and_schedules():
    c = TrainConfig(model=ModelConfig(arch="linf-dist", layers=(8, 10)))
    assert (c.optimizer, c.lr, c.lr_schedule, c.adam_beta2, c.adam_eps) == (
        "adam",
        0.03,
        "cosine",
        0.99,
        1e-10,
    )
    other = TrainConfig()  # other nets keep their defaults
    assert (other.optimizer, other.lr_schedule, other.adam_beta2) == ("adadelta", "constant", None)
    window = (0.1, 0.6)
    assert anneal_ratio(0, 100, window) == 0 and anneal_ratio(10, 100, window) == 0
    assert anneal_ratio(35, 100, window) == pytest.approx(0.5)
    assert anneal_ratio(60, 100, window) == 1 and anneal_ratio(99, 100, window) == 1
    assert p_at(0.0, 8, 1000) == 8 and p_at(0.5, 8, 1000) == pytest.approx(math.sqrt(8000))
    assert math.isinf(p_at(1.0, 8, 1000)) and p_at(1.0, 8, 50) == 50  # inf only from 100


def test_clipped_hinge_matches_its_formula():
    torch.manual_seed(5)
    s, y = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1])
    theta = 0.7
    for mix, clip in itertools.product((1.0, 0.75, 0.0), (True, False)):
        total = 0.0
        for b in range(6):
            h = [max(0, (s[b, c] - s[b, y[b]] + theta) / theta) for c in range(4)]
            h = [min(1, v) for v in h] if clip else h
            others = [h[c] for c in range(4) if c != y[b]]
            total += mix * max(others) + (1 - mix) * sum(others) / 3
        assert clipped_hinge_v2(s, y, theta, mix, clip).item() == pytest.approx(total / 6)
    assert clipped_hinge_v2(s, y, 0.01, 1.0, False) > 1.5  # unclipped: misclassified weigh more


def test_shift_images_moves_pixels_and_repeats_edges():
    x = torch.arange(2 * 16, dtype=torch.float64).reshape(2, 16)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(shift_images(x, 0, g), x)
    out = shift_images(x, 1, g).reshape(2, 4, 4)
    img = x.reshape(2, 4, 4)
    padded = torch.nn.functional.pad(img[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    for b in range(2):  # each output is a 4x4 window of the edge-padded image
        windows = [padded[b, i : i + 4, j : j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)
    with pytest.raises(ValueError, match="square images"):
        shift_images(torch.rand(2, 15), 1, g)


def test_objective_anneals_p_and_learns_on_separable_data(tmp_path, idx_dir):
    """One step at a time: p follows the schedule on the model; on the tiny data set the loss
    falls."""
    from rbfi.training.linf import LinfDistObjective

    config = TrainConfig(
        model=ModelConfig(arch="linf-dist", layers=(32, 10)),
        linf_p_anneal=(0.2, 0.6),
        linf_shift=0,
        linf_ce=1.0,
        linf_ce_end=0.1,
    )
    objective = LinfDistObjective(config, total_steps=10)
    torch.manual_seed(0)
    model = build_model(config.model)
    x = torch.rand(20, 784)
    y = torch.arange(20) % 10
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses, ps = [], []
    for step in range(10):
        loss, scores = objective(model, x, y, step)
        ps.append(model.body[1].p)
        assert scores.shape == (20, 10)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert ps[:3] == [8.0, 8.0, 8.0] and 8 < ps[3] < ps[4] < ps[5] and math.isinf(ps[6])
    assert losses[-1] < losses[0]


def test_rbfi_attack_runs_unchanged_and_finds_no_certified_example_broken(tmp_path, capsys):
    """`rbfi attack` on an l_inf-distance net: its logits are the scores; the soundness check
    (no certified example broken by an attack, exit 1 otherwise) covers both certificates."""
    from rbfi.cli import main
    from rbfi.evaluation.results import row_flags

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_model(run, build_model(ModelConfig(arch="linf-dist", layers=(16, 10))).eval(), epoch=1)
    out = tmp_path / "res"
    argv = ["attack", str(run), "--suite", "paper", "--attacks", "fgsm", "--eps", "0.1,0.3"]
    argv += ["--limit", "30", "--out", str(out), "--check-subset", "0", "--no-progress"]
    assert main(argv) == 0, capsys.readouterr().err
    saved = json.loads((out / "robustness.json").read_text())
    rows = saved["certified"]
    assert set(rows["0.1"]["methods"]) == {"interval", "margin"}
    assert not saved.get("soundness_violations")
    for row in rows.values():
        best = row_flags(row)
        for method in row["methods"].values():  # either method's flags imply the best's
            assert all(b for m, b in zip(method["certified"], best) if m == "1")
