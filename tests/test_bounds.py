"""Sensitivity bounds (eq. 5-8) against closed forms and measured sensitivities."""

import math

import pytest
import torch

from rbfi.models import build_model
from rbfi.nn import RBFI
from rbfi.nn.bounds import GAUSSIAN_MAX_SLOPE, network_sensitivity, unit_sensitivities


def test_gaussian_max_slope_closed_form():
    t = torch.linspace(0, 3, 300001, dtype=torch.float64)
    slope = (2 * t * torch.exp(-t * t)).max().item()  # |d/dt exp(-t^2)|
    assert slope == pytest.approx(GAUSSIAN_MAX_SLOPE, rel=1e-9)
    assert GAUSSIAN_MAX_SLOPE == pytest.approx(0.8578, abs=1e-4)


def test_unit_formulas():
    layer = RBFI(3, 2, dtype=torch.float64)
    with torch.no_grad():
        layer.u.copy_(torch.tensor([[0.5, 2.0, 1.0], [3.0, 0.1, 0.1]]))
    torch.testing.assert_close(
        unit_sensitivities(layer),
        GAUSSIAN_MAX_SLOPE * torch.tensor([2.0, 3.0], dtype=torch.float64),
    )
    lin = torch.nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]]))
    assert unit_sensitivities(lin).item() == pytest.approx(3.5)


def test_relu_and_sigmoid_network_formulas():
    relu = build_model("relu", "4,10", in_features=784)
    w1, w2 = relu.body[0].weight.abs(), relu.body[2].weight.abs()
    expected = (w2 @ (w1 @ torch.ones(784))).max()
    torch.testing.assert_close(network_sensitivity(relu), expected)
    sigmoid = build_model("sigmoid", "4,10")
    w1, w2 = sigmoid.body[0].weight.abs(), sigmoid.body[2].weight.abs()
    torch.testing.assert_close(
        network_sensitivity(sigmoid), (w2 @ (w1 @ torch.ones(784) / 4)).max() / 4
    )


@pytest.mark.parametrize("arch", ["rbfi", "relu", "sigmoid"])
def test_bound_dominates_measured_sensitivity(arch):
    torch.manual_seed(0)
    model = build_model(arch, "16,16,10").double()
    bound = network_sensitivity(model).item()
    x = torch.rand(64, 784, dtype=torch.float64)
    delta = 1e-3
    worst = 0.0
    for _ in range(20):
        step = delta * torch.sign(torch.randn_like(x))
        worst = max(worst, ((model(x + step) - model(x)).abs().max() / delta).item())
    assert 0 < worst <= bound


def test_bound_is_differentiable_for_regularisation():
    model = build_model("rbfi", "8,10")
    network_sensitivity(model).backward()
    assert model.body[0].u.grad is not None and model.body[0].u.grad.abs().sum() > 0
    assert math.isfinite(model.body[0].u.grad.sum().item())
