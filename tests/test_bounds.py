"""Sensitivity bounds (eq. 5-8) against closed forms and measured sensitivities."""

import math

import pytest
import torch

from rbfi.bounds import GAUSSIAN_MAX_SLOPE, network_sensitivity, unit_sensitivities
from rbfi.models import build_model
from rbfi.nn import RBFI


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


def local_sensitivity(model: torch.nn.Module, x: torch.Tensor) -> float:
    """max_j ||grad f_j(x)||_1: the sensitivity (eq. 4) of the outputs at x as delta -> 0,
    from true gradients (float64)."""
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    norms = []
    for j in range(out.shape[-1]):
        (grad,) = torch.autograd.grad(out[..., j].sum(), x, retain_graph=True)
        norms.append(grad.abs().sum(dim=-1).max().item())
    return max(norms)


def test_bound_is_attained_by_a_linear_layer_and_all_active_relus():
    """For one Linear layer, and a ReLU net with positive weights on positive inputs (every unit
    active, so the net is linear), eq. (7) is exact: the measured sensitivity equals the bound."""
    torch.manual_seed(0)
    relu = build_model("relu", "6,3", in_features=5).double()
    with torch.no_grad():
        for layer in (relu.body[0], relu.body[2]):
            layer.weight.abs_()
            layer.bias.abs_()
    x = torch.rand(4, 5, dtype=torch.float64)
    measured = local_sensitivity(relu, x)
    assert measured == pytest.approx(network_sensitivity(relu).item(), rel=1e-9)
    linear = torch.nn.Sequential(torch.nn.Linear(5, 3).double())
    assert local_sensitivity(linear, x) == pytest.approx(
        network_sensitivity(linear).item(), rel=1e-9
    )


def test_sigmoid_bound_is_attained_at_zero_preactivation():
    layer = torch.nn.Linear(4, 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0]]))
    x = torch.rand(1, 4, dtype=torch.float64)
    with torch.no_grad():
        layer.bias.copy_(-(layer.weight @ x[0]))  # pre-activation 0: slope 1/4
    net = torch.nn.Sequential(layer, torch.nn.Sigmoid())
    assert local_sensitivity(net, x) == pytest.approx(network_sensitivity(net).item(), rel=1e-9)


def test_two_layer_rbfi_bound_is_attained_where_both_units_are_at_their_steepest():
    """Eq. (8) for RBFI(2, 1) on 3 inputs, at a point built by hand: input 0 is at distance
    1/(sqrt(2) u) from the centre of the first unit (its steepest point, slope sqrt(2/e) u),
    and that unit's output is at the steepest point of the second layer's unit. The measured
    sensitivity equals sqrt(2/e) * 3 * sqrt(2/e) * 3 = 18 / e, the bound."""
    first = RBFI(3, 2, "and", pseudogradient=False, dtype=torch.float64, backend="reference")
    second = RBFI(2, 1, "and", pseudogradient=False, dtype=torch.float64, backend="reference")
    step = 1 / (3 * math.sqrt(2))
    x = torch.tensor([[0.2 + step, 0.5, 0.5]], dtype=torch.float64)
    with torch.no_grad():
        first.u.copy_(torch.tensor([[3.0, 0.01, 0.01], [0.01, 0.01, 0.01]]))
        first.w.copy_(torch.tensor([[0.2, 0.5, 0.5], [0.5, 0.5, 0.5]]))
        h = first(x)[0]
        second.u.copy_(torch.tensor([[3.0, 0.01]]))
        second.w.copy_(torch.tensor([[h[0].item() - step, h[1].item()]]))
    net = torch.nn.Sequential(first, second)
    bound = network_sensitivity(net).item()
    assert bound == pytest.approx(18 / math.e, rel=1e-12)
    assert local_sensitivity(net, x) == pytest.approx(bound, rel=1e-6)


@pytest.mark.parametrize("arch", ["rbfi", "rbf", "relu", "sigmoid"])
def test_bound_dominates_the_sensitivity_measured_anywhere(arch):
    """At random points and at the end of gradient ascent on the local sensitivity, the
    measured value never exceeds the bound."""
    torch.manual_seed(0)
    model = build_model(arch, "16,16,10", in_features=20).double()
    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.pseudogradient = False
            layer.backend = "reference"
    bound = network_sensitivity(model).item()
    x = torch.rand(64, 20, dtype=torch.float64)
    worst = local_sensitivity(model, x)
    x = x[:8].clone().requires_grad_(True)  # climb towards the steepest points
    for _ in range(50):
        out = model(x)
        (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
        (ascent,) = torch.autograd.grad(grad.abs().sum(), x)
        with torch.no_grad():
            x += 0.02 * ascent.sign()
            x.clamp_(0, 1)
    worst = max(worst, local_sensitivity(model, x))
    assert 0 < worst <= bound * (1 + 1e-9)


def test_bound_is_differentiable_for_regularisation():
    model = build_model("rbfi", "8,10")
    network_sensitivity(model).backward()
    assert model.body[0].u.grad is not None and model.body[0].u.grad.abs().sum() > 0
    assert math.isfinite(model.body[0].u.grad.sum().item())
