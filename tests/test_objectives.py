"""Training objectives: adversarial (Sec. 6.4), regularised (Sec. 6.7), certified (IBP), and
their resumability."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbfi.attacks import project
from rbfi.bounds import margin_bounds, network_sensitivity
from rbfi.models import ModelConfig, build_model
from rbfi.training import TrainConfig, make_objective, train
from rbfi.training.objectives import (
    Adversarial,
    Certified,
    Regularised,
    Standard,
    kl_divergence,
)
from tests.test_train import weights


def config(**kw) -> TrainConfig:
    model = kw.pop("model", ModelConfig("rbfi", (8, 10), "*v", in_features=784))
    return TrainConfig(model=model, **kw)


def batch(n: int = 6):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 784, generator=g), torch.randint(0, 10, (n,), generator=g)


def test_objective_choice_and_conflicts():
    assert isinstance(make_objective(config(), 10), Standard)
    assert isinstance(make_objective(config(adversarial="fgsm"), 10), Adversarial)
    assert isinstance(make_objective(config(certified_eps=0.3), 10), Certified)
    reg = make_objective(config(adversarial="ifgsm", reg_lambda=0.1), 10)
    assert isinstance(reg, Regularised) and isinstance(reg.inner, Adversarial)
    with pytest.raises(ValueError, match="not both"):
        config(adversarial="pgd", certified_eps=0.3)
    with pytest.raises(ValueError, match="<= 1"):
        config(certified_eps=0.3, certified_warmup=0.6, certified_ramp=0.6)
    assert config(adversarial="pgd").adv_steps == 100  # the paper's
    assert config(adversarial="madry").adv_steps == 40
    assert config(certified_eps=0.3).certified_scale == 10.0
    assert config(certified_eps=0.3, model=ModelConfig("relu", (8, 10))).certified_scale == 1.0


@pytest.mark.parametrize("mode", ["fgsm", "ifgsm", "pgd", "madry"])
def test_adversarial_objective_feeds_valid_adversarial_examples(mode, monkeypatch):
    torch.manual_seed(0)
    model = build_model("relu", "16,10")
    x, y = batch()
    objective = make_objective(
        config(model=ModelConfig("relu", (16, 10)), adversarial=mode, adv_eps=0.2, adv_steps=3), 10
    )
    seen = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: seen.append(inp.detach()) or original(inp))
    loss, scores = objective(model, x, y, step=4)
    fed = seen[-1]
    if mode == "madry":  # the clean x for the accuracy, then x' only for the loss
        x_adv = fed
        assert torch.equal(seen[-2], x)
        expected = torch.nn.functional.cross_entropy(original(x_adv), y)
    else:  # x and x' in one batch of 2B
        assert fed.shape[0] == 2 * len(x) and torch.equal(fed[: len(x)], x)
        x_adv = fed[len(x) :]
        expected = torch.nn.functional.cross_entropy(original(fed), torch.cat([y, y]))
    assert (x_adv - x).abs().max() <= 0.2 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not torch.equal(x_adv, x)
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(scores, original(x))
    # the same step gives the same examples (seeded by the step: resumable)
    seen.clear()
    objective(model, x, y, step=4)
    assert torch.equal(seen[-1], fed)


def test_regularised_objective_adds_lambda_times_the_bound():
    torch.manual_seed(0)
    model = build_model("rbfi", "8,10", "*v")
    x, y = batch()
    plain = make_objective(config(), 10)
    reg = make_objective(config(reg_lambda=0.25), 10)
    base, _ = plain(model, x, y, 0)
    loss, _ = reg(model, x, y, 0)
    torch.testing.assert_close(loss, base + 0.25 * network_sensitivity(model))
    loss.backward()
    assert model.body[0].u.grad is not None


def test_certified_schedule_and_loss():
    c = config(certified_eps=0.4, certified_warmup=0.1, certified_ramp=0.5, certified_weight=0.6)
    objective = make_objective(c, 100)
    assert objective.schedule(0) == (0.0, 0.0)
    assert objective.schedule(9) == (0.0, 0.0)
    eps, weight = objective.schedule(35)
    assert eps == pytest.approx(0.2) and weight == pytest.approx(0.3)
    assert objective.schedule(60) == pytest.approx((0.4, 0.6))
    assert objective.schedule(99) == pytest.approx((0.4, 0.6))
    torch.manual_seed(0)
    model = build_model("rbfi", "8,10", "*v")
    x, y = batch()
    loss, scores = objective(model, x, y, 80)
    clean = torch.nn.functional.mse_loss(
        scores, torch.nn.functional.one_hot(y, 10).float(), reduction="sum"
    ) / len(x)
    worst = torch.nn.functional.cross_entropy(-10.0 * margin_bounds(model, x, y, 0.4), y)
    torch.testing.assert_close(loss, 0.4 * clean + 0.6 * worst)


@pytest.mark.parametrize("loss_name", ["cross_entropy", "hinge", "square"])
@pytest.mark.parametrize("gradient", ["pseudo", "true"])
def test_certified_training_lowers_the_worst_case_loss(loss_name, gradient):
    """A few steps on one batch (weight 1, fixed eps) lower the worst-case loss; with the
    cross-entropy loss the certified margins rise too."""
    torch.manual_seed(0)
    model = build_model("rbfi", "12,10", "^v", in_features=20)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 20, generator=g)
    y = torch.randint(0, 10, (16,), generator=g)
    c = config(
        model=ModelConfig("rbfi", (12, 10), "^v", dataset=None, in_features=20),
        certified_eps=0.05,
        certified_warmup=0.0,
        certified_ramp=0.0,
        certified_weight=1.0,
        certified_loss=loss_name,
        certified_gradient=gradient,
        certified_scale=0.5 if loss_name == "hinge" else None,
    )
    objective = make_objective(c, 1)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    before = margin_bounds(model, x, y, 0.05).scatter(1, y[:, None], float("inf")).amin(1)
    loss_before = objective(model, x, y, 0)[0].item()
    for _ in range(30):
        loss, _ = objective(model, x, y, 0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = margin_bounds(model, x, y, 0.05).scatter(1, y[:, None], float("inf")).amin(1)
    assert objective(model, x, y, 0)[0].item() < 0.95 * loss_before
    if loss_name == "cross_entropy":
        assert after.mean() > before.mean()


@pytest.mark.parametrize(
    "extra",
    [
        {"adversarial": "pgd", "adv_steps": 2},
        {"adversarial": "madry", "adv_steps": 2},
        {"adversarial": "trades", "adv_steps": 2, "adv_eps_ramp": 0.5},
        {"certified_eps": 0.2, "certified_warmup": 0.2, "certified_ramp": 0.5},
        {"reg_lambda": 0.01, "optimizer": "adam"},
    ],
)
def test_new_objectives_resume_to_identical_weights(idx_dir, tmp_path, extra):
    base = dict(
        model=ModelConfig("rbfi", (8, 10), "*v"),
        batch_size=10,
        data_dir=str(idx_dir),
        seed=3,
        **extra,
    )
    quiet = {"progress": False, "log": lambda m: None}
    train(TrainConfig(epochs=3, **base), tmp_path / "full", **quiet)

    def stop_after_epoch_1(line: str) -> None:
        if line.startswith("epoch 1:"):
            raise KeyboardInterrupt  # the run dies right after its first checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(
            TrainConfig(epochs=3, **base), tmp_path / "cut", progress=False, log=stop_after_epoch_1
        )
    train(TrainConfig(epochs=3, **base), tmp_path / "cut", resume=True, **quiet)
    a, b = weights(tmp_path / "full"), weights(tmp_path / "cut")
    assert all(torch.equal(a[k], b[k]) for k in a)
    for layer in range(2):  # the bounds of u and w still hold
        assert a[f"body.{layer}.u"].min() >= 0.01 - 1e-7 and a[f"body.{layer}.u"].max() <= 3.0
        assert a[f"body.{layer}.w"].min() >= 0 and a[f"body.{layer}.w"].max() <= 1


def test_certified_training_records_test_certificates(idx_dir, tmp_path):
    import json

    c = TrainConfig(
        model=ModelConfig("rbfi", (8, 10), "*v"),
        epochs=1,
        batch_size=10,
        data_dir=str(idx_dir),
        certified_eps=0.25,
    )
    train(c, tmp_path, progress=False, log=lambda m: None)
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"test_certified_0.1", "test_certified_0.25", "test_certified_0.3", "train_eps"} <= set(
        record
    )
    assert record["test_certified_0.1"] >= record["test_certified_0.3"]


# --- Madry and TRADES: eps warm-up, step size, the TRADES loss, learning curves -----------


def test_adversarial_eps_ramp_by_hand():
    relu = ModelConfig("relu", (16, 10))
    ramped = make_objective(config(model=relu, adversarial="madry", adv_eps_ramp=0.5), 100)
    # eps_t = 0.3 min(1, t / 50)
    for step, eps in [(0, 0.0), (10, 0.06), (25, 0.15), (49, 0.294), (50, 0.3), (99, 0.3)]:
        assert ramped.eps_at(step) == pytest.approx(eps)
    flat = make_objective(config(model=relu, adversarial="madry"), 100)
    assert flat.eps_at(0) == 0.3
    # eps 0: the clean batch, no attack
    torch.manual_seed(0)
    model = build_model("relu", "16,10")
    x, y = batch()
    loss, _ = ramped(model, x, y, 0)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(model(x), y))


@pytest.mark.parametrize("mode", ["madry", "trades"])
def test_training_attack_stays_in_the_ball_and_takes_its_steps(mode, monkeypatch):
    torch.manual_seed(1)
    model = build_model("relu", "16,10")
    x, y = batch(8)
    x[:, :300] = 0.0  # black and white pixels: the ball is cut by [0, 1]
    x[:, 300:400] = 1.0
    objective = make_objective(
        config(
            model=ModelConfig("relu", (16, 10)),
            adversarial=mode,
            adv_eps=0.3,
            adv_eps_ramp=0.5,
            adv_steps=5,
            adv_alpha=0.05,
        ),
        100,
    )
    inputs = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: inputs.append(inp.detach()) or original(inp))
    objective(model, x, y, step=25)  # eps_t = 0.15
    points = []  # the iterates x'_0 .. x'_5, each once (the final point is also fed to the loss)
    for p in inputs:
        if p.shape == x.shape and not torch.equal(p, x):
            if not (points and torch.equal(points[-1], p)):
                points.append(p)
    x_adv = points[-1]
    assert (x_adv - x).abs().max() <= 0.15 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.14  # 5 steps of 0.05 reach the boundary somewhere
    # the random start and 5 steps
    assert len(points) == 6
    # the last step moves every free coordinate by alpha or stops at the boundary
    step_sizes = (points[-1] - points[-2]).abs()
    free = (x > 0.15) & (x < 0.85)
    assert torch.all(step_sizes[free] <= 0.05 + 1e-6)


def test_trades_loss_is_the_formula(monkeypatch):
    torch.manual_seed(2)
    model = build_model("relu", "16,10")
    x, y = batch(5)
    beta = 3.0
    objective = make_objective(
        config(
            model=ModelConfig("relu", (16, 10)),
            adversarial="trades",
            adv_eps=0.2,
            adv_steps=4,
            trades_beta=beta,
        ),
        10,
    )
    inputs = []
    original = model.forward
    monkeypatch.setattr(model, "forward", lambda inp: inputs.append(inp.detach()) or original(inp))
    loss, scores = objective(model, x, y, step=3)
    x_adv = inputs[-1]
    # independently in float64 NumPy: CE(f(x), y) + beta / B sum_b sum_c p log(p / q)
    f = original(x).detach().double().numpy()
    g = original(x_adv).detach().double().numpy()
    p = np.exp(f - f.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    q = np.exp(g - g.max(1, keepdims=True))
    q /= q.sum(1, keepdims=True)
    ce = -np.log(p[np.arange(5), y.numpy()]).mean()
    kl = (p * np.log(p / q)).sum(1).mean()
    assert loss.item() == pytest.approx(ce + beta * kl, rel=1e-5)
    assert kl > 0
    torch.testing.assert_close(scores, original(x).detach())
    # the inner maximisation ascends the KL: x' is further (in KL) than a random point of the ball
    g_rand = original(project(x + 0.2 * (2 * torch.rand_like(x) - 1), x, 0.2)).detach()
    assert kl_divergence(torch.softmax(original(x), 1), original(x_adv)) > kl_divergence(
        torch.softmax(original(x), 1), g_rand
    )
    # the gradient reaches the weights
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_kl_divergence_against_numpy():
    p = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    scores = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    q = np.exp(scores.numpy()) / np.exp(scores.numpy()).sum(1, keepdims=True)
    expected = [
        0.5 * np.log(0.5 / q[0, 0]) + 0.5 * np.log(0.5 / q[0, 1]),  # 0 log 0 = 0
        sum(pc * np.log(pc / (1 / 3)) for pc in (0.2, 0.3, 0.5)),
    ]
    assert kl_divergence(p, scores, "sum").item() == pytest.approx(sum(expected), rel=1e-6)
    assert kl_divergence(p, scores).item() == pytest.approx(np.mean(expected), rel=1e-6)


def test_adversarial_learning_curve_metrics():
    torch.manual_seed(0)
    model = build_model("relu", "16,10")
    g = torch.Generator().manual_seed(5)
    x, y = torch.rand(600, 784, generator=g), torch.randint(0, 10, (600,), generator=g)
    objective = make_objective(
        config(model=ModelConfig("relu", (16, 10)), adversarial="madry", adv_eps_ramp=0.5), 100
    )
    out = objective.epoch_metrics(model, x, y, 20)
    assert out["train_eps"] == pytest.approx(0.12) and out["monitor_images"] == 500
    clean = (model(x[:500]).argmax(1) == y[:500]).float().mean().item()
    assert out["monitor_clean_accuracy"] == pytest.approx(clean)
    assert 0 <= out["monitor_pgd20_0.3"] <= clean  # PGD only ever breaks examples
