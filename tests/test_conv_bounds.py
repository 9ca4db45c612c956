"""Interval bounds, certificates and sensitivity bounds of conv layers and conv nets: sound on
sampled points, exact per RBFI unit (attained at constructed points), equal to the dense rule on
the patch view, and equal to the independent NumPy certifier."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rbfi import build_model
from rbfi.bounds import input_box, interval_bounds, margin_bounds, network_sensitivity
from rbfi.nn import RBFI, RBFIConv2d
from tests.test_certify import assert_inside_bounds
from tests.test_conv import patch_of

LAYERS = [  # in_ch, out, kernel, stride, padding, pad_value, norm
    (1, 4, 3, 1, 0, None, "inf"),
    (2, 3, 3, 2, 1, None, "inf"),
    (2, 3, (3, 2), (2, 1), (2, 1), None, "inf"),
    (2, 3, 3, 2, 1, 0.4, "inf"),
    (2, 3, 3, 2, 1, None, "l2"),
]


def conv_layer(c_in, c_out, k, s, p, pad_value, norm, kind="mixed") -> RBFIConv2d:
    layer = RBFIConv2d(c_in, c_out, k, s, p, kind, pad_value=pad_value, norm=norm)
    layer = layer.double()
    with torch.no_grad():  # scales up to the bound, as in trained nets
        layer.u.uniform_(0.3, 3.0)
    return layer


def a_box(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo = torch.rand(shape, generator=g, dtype=torch.float64) * 0.7
    return lo, lo + 0.3 * torch.rand(shape, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("spec", LAYERS)
def test_conv_rbfi_bounds_equal_the_dense_rule_on_every_patch(spec):
    torch.manual_seed(0)
    layer = conv_layer(*spec)
    lo, hi = a_box((2, spec[0], 6, 7))
    y_lo, y_hi = layer.interval(lo, hi)
    Ho, Wo = layer.output_size(6, 7)
    assert y_lo.shape == (2, spec[1], Ho, Wo)
    for oy in range(Ho):
        for ox in range(Wo):
            args = (layer.kernel_size, layer.stride, layer.padding, layer.pad_value)
            p_lo, index = patch_of(lo, oy, ox, *args)
            p_hi, _ = patch_of(hi, oy, ox, *args)
            dense = RBFI(len(index), spec[1], norm=layer.norm, dtype=torch.float64)
            dense.load_state_dict(
                {
                    **layer.state_dict(),
                    "w": layer.w[:, index],
                    "u": layer.u[:, index],
                }
            )
            d_lo, d_hi = dense.interval(p_lo, p_hi)
            torch.testing.assert_close(y_lo[:, :, oy, ox], d_lo, rtol=0, atol=1e-15)
            torch.testing.assert_close(y_hi[:, :, oy, ox], d_hi, rtol=0, atol=1e-15)


@pytest.mark.parametrize("spec", LAYERS)
def test_conv_rbfi_bounds_are_exact_per_unit(spec):
    """Each output's bounds are attained: at the point of the box nearest to the unit's centre
    on its patch (z smallest) and at the farthest one (z largest), built pixel by pixel."""
    torch.manual_seed(1)
    layer = conv_layer(*spec)
    lo, hi = a_box((2, spec[0], 6, 7), seed=1)
    y_lo, y_hi = layer.interval(lo, hi)
    B, C, H, W = lo.shape
    (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
    w = layer.w.detach().reshape(-1, C, kh, kw)
    for b in range(B):
        for j in range(spec[1]):
            for oy, ox in [(0, 0), (1, 2), (y_lo.shape[2] - 1, y_lo.shape[3] - 1)]:
                near, far = lo[b : b + 1].clone(), lo[b : b + 1].clone()
                for c in range(C):
                    for dy in range(kh):
                        for dx in range(kw):
                            r, q = oy * sh - ph + dy, ox * sw - pw + dx
                            if not (0 <= r < H and 0 <= q < W):
                                continue
                            a, e, centre = lo[b, c, r, q], hi[b, c, r, q], w[j, c, dy, dx]
                            near[0, c, r, q] = centre.clamp(a, e)
                            far[0, c, r, q] = e if (e - centre).abs() >= (centre - a).abs() else a
                values = sorted(layer(p)[0, j, oy, ox].item() for p in (near, far))
                assert y_lo[b, j, oy, ox].item() == pytest.approx(values[0], abs=1e-12)
                assert y_hi[b, j, oy, ox].item() == pytest.approx(values[1], abs=1e-12)


def test_relu_conv_bounds_are_attained_by_sign_points():
    """nn.Conv2d's centre/radius rule is exact per output: attained at mid -+ rad sign(W)."""
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, 3, 2, 1).double()
    lo, hi = a_box((1, 2, 6, 6), seed=2)
    y_lo, y_hi = interval_bounds(conv, lo, hi)
    for j, oy, ox in [(0, 0, 0), (1, 1, 2), (2, 2, 1)]:
        point = lo.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(conv(point)[0, j, oy, ox], point)
        high = torch.where(grad > 0, hi, lo)
        low = torch.where(grad > 0, lo, hi)
        assert conv(high)[0, j, oy, ox].item() == pytest.approx(y_hi[0, j, oy, ox].item())
        assert conv(low)[0, j, oy, ox].item() == pytest.approx(y_lo[0, j, oy, ox].item())


def conv_net(arch: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    geometry = "^v*v" if arch in ("rbfi", "rbf") else None
    model = build_model(arch, "c4k5s3p2,c5k3s2p1,8,10", geometry).double().eval()
    high = 0.3 if arch == "rbf" else 3.0  # RBF units sum over their inputs: smaller scales
    for layer in model.modules():
        if isinstance(layer, RBFI):
            with torch.no_grad():
                layer.u.uniform_(0.1 * high, high)
    return model


@pytest.mark.parametrize("arch", ["rbfi", "rbf", "relu", "sigmoid"])
def test_conv_net_bounds_hold_every_sampled_output(arch):
    """Random points of the box, its corners and points pushed up and down each score by
    gradient steps stay inside the bounds; at eps 0 the bounds are the forward."""
    model = conv_net(arch)
    x = torch.rand(3, 784, dtype=torch.float64)
    lo, hi = interval_bounds(model, x, x)
    torch.testing.assert_close(lo, model(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, model(x), rtol=0, atol=1e-12)
    lo_in, hi_in = input_box(x, 0.05)
    lo, hi = interval_bounds(model, lo_in, hi_in)
    assert lo.shape[1] == 10  # every score pushed both ways
    assert_inside_bounds(model, lo_in, hi_in, lo, hi, uniform=100, corners=30, steps=6, step=0.02)
    assert (hi - lo).max() > 1e-6  # the bounds are not trivially equal


@pytest.mark.parametrize("arch", ["rbfi", "rbf", "relu", "sigmoid"])
@pytest.mark.parametrize("eps", [0.0, 0.01, 0.1])
def test_conv_net_margins_equal_the_independent_numpy_certifier(arch, eps):
    from tools.independent_certify import margins

    model = conv_net(arch, seed=3)
    x = torch.rand(5, 784, dtype=torch.float64)
    y = torch.randint(0, 10, (5,))
    ours = margin_bounds(model, x, y, eps).scatter(1, y[:, None], float("inf")).amin(1)
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    theirs = margins(model.config.to_json(), weights, x.numpy(), y.numpy(), eps)
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=0, atol=1e-12)


def dense_twin(conv: nn.Conv2d, shape) -> nn.Linear:
    """The Linear layer computing ``conv`` on flattened (C, H, W) inputs."""
    n_in = int(np.prod(shape))
    eye = torch.eye(n_in, dtype=conv.weight.dtype).reshape(n_in, *shape)
    columns = conv._conv_forward(eye, conv.weight, None).reshape(n_in, -1)
    linear = nn.Linear(n_in, columns.shape[1]).to(conv.weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(columns.T)
    return linear


def test_relu_conv_sensitivity_equals_that_of_its_dense_twin():
    """Eq. (7) on a ReLU CNN equals eq. (7) on the MLP computing the same function."""
    model = conv_net("relu")
    c1, c2, lin1, lin2 = (m for m in model.body if isinstance(m, (nn.Conv2d, nn.Linear)))
    twin = nn.Sequential(
        dense_twin(c1, (1, 28, 28)), nn.ReLU(), dense_twin(c2, (4, 10, 10)), nn.ReLU(), lin1,
        nn.ReLU(), lin2,
    )  # fmt: skip
    torch.testing.assert_close(network_sensitivity(model), network_sensitivity(twin))


def test_rbfi_conv_sensitivity_follows_eq_8_per_position():
    """One RBFI conv layer with u constant c on every unit: every output has sensitivity
    sqrt(2/e) c (the inputs' own is 1), whatever the padding."""
    layer = RBFIConv2d(2, 3, 3, 2, 1)
    with torch.no_grad():
        layer.u.fill_(1.7)
    bound = network_sensitivity(nn.Sequential(layer), input_shape=(2, 6, 6))
    assert bound.item() == pytest.approx(np.sqrt(2 / np.e) * 1.7, rel=1e-6)
    with pytest.raises(TypeError, match="input image shape"):
        network_sensitivity(nn.Sequential(layer))


@pytest.mark.parametrize("arch", ["rbfi", "relu"])
def test_conv_sensitivity_bound_dominates_measured_sensitivity(arch):
    model = conv_net(arch, seed=4)
    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.pseudogradient = False
    bound = network_sensitivity(model).item()
    x = torch.rand(16, 784, dtype=torch.float64, requires_grad=True)
    out = model(x)
    worst = 0.0
    for j in range(10):
        (grad,) = torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)
        worst = max(worst, grad.abs().sum(dim=1).max().item())
    assert 0 < worst <= bound * (1 + 1e-9)
