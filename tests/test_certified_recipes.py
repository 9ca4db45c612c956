"""Recipe options of certified training (rbfi.training.objectives.Certified): the clipped hinge
on certified margins, the decaying clean cross-entropy, a fixed training eps, u fixed at 1."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from rbfi.bounds import margin_bounds
from rbfi.models import build_model
from rbfi.models.config import ModelConfig
from rbfi.training.config import TrainConfig
from rbfi.training.loop import make_optimizer
from rbfi.training.objectives import Certified, clipped_hinge

SMALL = ModelConfig("rbfi", (12, 10), "^v", dataset=None, in_features=6)


def config(**kw) -> TrainConfig:
    return TrainConfig(model=kw.pop("model", SMALL), **kw)


def test_clipped_hinge_hand_worked():
    # theta 0.1, width 0.5: clip((0.1 - m) / 0.5, 0, 1)
    margins = torch.tensor(
        [
            [0.0, 0.3, -0.15, 0.05],  # y = 0: per class -, 0 (clipped), 0.5, 0.1
            [-0.6, 0.0, 0.1, 0.35],  # y = 1: per class 1 (clipped), -, 0, 0
        ]
    )
    y = torch.tensor([0, 1])
    # max: rows 0.5 and 1.0 -> mean 0.75
    assert clipped_hinge(margins, y, 0.1, 0.5, "max").item() == pytest.approx(0.75)
    # mean over the 3 other classes: (0 + 0.5 + 0.1) / 3 = 0.2, (1 + 0 + 0) / 3 -> mean 0.2667
    expected = ((0.6 / 3) + (1.0 / 3)) / 2
    assert clipped_hinge(margins, y, 0.1, 0.5, "mean").item() == pytest.approx(expected)


def test_clipped_hinge_gradient_only_inside_the_band():
    margins = torch.tensor([[0.0, 0.3, -0.15, -0.6]], requires_grad=True)
    loss = clipped_hinge(margins, torch.tensor([0]), 0.1, 0.5, "mean")
    loss.backward()
    # d/dm of (0.1 - m) / 0.5 / 3 = -2/3 inside (-0.4, 0.1); 0 above theta, below theta - width
    # and for the true class
    assert margins.grad[0].tolist() == pytest.approx([0.0, 0.0, -2 / 3, 0.0])


def test_clipped_hinge_rejects_unknown_reduce():
    with pytest.raises(ValueError, match="reduce"):
        clipped_hinge(torch.zeros(1, 3), torch.tensor([0]), 0.1, 0.5, "sum")


def test_hinge_width_defaults_to_twice_the_training_eps():
    assert config(certified_eps=0.45).certified_hinge_width == pytest.approx(0.9)
    assert config(certified_eps=0.45, certified_hinge_width=0.3).certified_hinge_width == 0.3


def test_clean_cross_entropy_weight_decays_geometrically():
    objective = Certified(config(certified_eps=0.3, certified_ce=0.05, certified_ce_end=2e-4), 101)
    assert objective.ce_weight(0) == pytest.approx(0.05)
    assert objective.ce_weight(100) == pytest.approx(2e-4)
    assert objective.ce_weight(50) == pytest.approx(math.sqrt(0.05 * 2e-4))
    assert objective.ce_weight(25) / objective.ce_weight(0) == pytest.approx(
        objective.ce_weight(75) / objective.ce_weight(50)
    )
    constant = Certified(config(certified_eps=0.3, certified_ce=0.01), 10)
    assert constant.ce_weight(0) == constant.ce_weight(9) == pytest.approx(0.01)
    assert Certified(config(certified_eps=0.3), 10).ce_weight(5) == 0.0


def test_no_warmup_no_ramp_trains_at_the_full_eps_from_the_first_step():
    objective = Certified(
        config(certified_eps=0.45, certified_warmup=0.0, certified_ramp=0.0, certified_weight=1),
        50,
    )
    assert objective.schedule(0) == (0.45, 1.0)
    assert objective.schedule(49) == (0.45, 1.0)


def test_recipe_loss_is_hinge_plus_decayed_cross_entropy():
    torch.manual_seed(0)
    c = config(
        certified_eps=0.2,
        certified_warmup=0.0,
        certified_ramp=0.0,
        certified_weight=1.0,
        certified_recipe="linf-dist",
        certified_margin=0.2,
        certified_hinge_width=1.0,
        certified_ce=0.05,
        certified_ce_end=0.0002,
    )
    model = build_model(c.model)
    x, y = torch.rand(8, 6), torch.randint(0, 10, (8,))
    objective = Certified(c, 11)
    loss, scores = objective(model, x, y, 5)
    with torch.no_grad():
        m = margin_bounds(model, x, y, 0.2)
        per_class = ((0.2 - m) / 1.0).clamp(0, 1)
        per_class[torch.arange(8), y] = -1.0
        hinge = per_class.max(dim=1).values.mean()
        ce = F.cross_entropy(10 * model(x), y)
    lam = 0.05 * (0.0002 / 0.05) ** 0.5
    assert loss.item() == pytest.approx((hinge + lam * ce).item(), rel=1e-5)
    assert torch.equal(scores, model(x))


def test_u_fixed_at_one_is_an_l_inf_distance_neuron_and_stays_fixed():
    """u_bounds (1, 1): an And unit is exp(-||x - w||_inf^2), whatever the training does."""
    torch.manual_seed(1)
    c = config(
        model=ModelConfig("rbfi", (12, 10), "^v", dataset=None, in_features=6, u_bounds=(1.0, 1.0)),
        certified_eps=0.1,
        optimizer="adam",
        lr=0.05,
    )
    model = build_model(c.model)
    first = model.body[0]
    assert torch.equal(first.u, torch.ones_like(first.u))
    x = torch.rand(5, 6)
    distance = (x[:, None, :] - first.w[None]).abs().amax(dim=2)
    assert torch.allclose(first(x), torch.exp(-(distance**2)), atol=1e-6)
    optimizer = make_optimizer(c, model)
    loss, _ = Certified(c, 4)(model, x, torch.randint(0, 10, (5,)), 3)
    loss.backward()
    optimizer.step()
    assert all(torch.equal(layer.u, torch.ones_like(layer.u)) for layer in model.body)


def test_recipe_table_reads_the_runs_files(tmp_path):
    from tools.recipe_table import BEGIN, END, load_run, markdown, replace_section, summarise

    run = tmp_path / "hinge"
    run.mkdir()
    settings = config(
        certified_eps=0.45,
        certified_warmup=0.0,
        certified_ramp=0.0,
        certified_recipe="linf-dist",
        certified_ce=0.05,
        certified_ce_end=0.0002,
        test_limit=1000,
    ).to_json()
    (run / "checkpoint.json").write_text(json.dumps({"training": settings}))
    records = [
        {
            "epoch": e,
            "test_accuracy": a,
            "test_certified_0.1": c1,
            "test_certified_0.3": c3,
            "train_seconds": 10.0 * e,
        }
        for e, a, c1, c3 in [(1, 0.5, 0.4, 0.1), (2, 0.8, 0.7, 0.35), (3, 0.9, 0.8, 0.3)]
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    row = summarise(load_run(run))
    assert row["epochs"] == 3 and row["test_images"] == 1000
    assert row["clean"] == pytest.approx(90.0) and row["certified_0.3"] == pytest.approx(30.0)
    assert row["best_certified_0.3"] == pytest.approx(35.0) and row["best_epoch"] == 2
    assert row["rising_at_end"] is True  # 30 > 10 two epochs earlier
    assert row["seconds_per_epoch"] == pytest.approx(20.0)
    assert "eps 0.45 fixed" in row["recipe"] and "clean CE 0.05 -> 0.0002" in row["recipe"]
    table = markdown([row])
    assert "| hinge |" in table and "| 90.0 | 80.0 | 30.0 | 35.0 (2) | 20 |" in table
    doc = tmp_path / "doc.md"
    doc.write_text(f"# title\n{BEGIN}\nold\n{END}\nafter\n")
    replace_section(doc, table)
    assert doc.read_text() == f"# title\n{BEGIN}\n{table}{END}\nafter\n"
