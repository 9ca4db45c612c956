"""The units (eq. 1-3) and their pseudogradient pieces (eq. 9, 11) against independent math."""

import copy
import math

import pytest
import torch

from rbfi.nn import RBFI, PseudoExpNeg, PseudoMax, attach_projection, exp_neg, max_last, project_
from rbfi.nn.functional import scaled_sqdist_sum


def unit_output_by_hand(x, w, u, is_or, norm="inf"):
    """Eq. (2)/(3) (inf) or eq. (1) with p = 2, one unit at a time, in plain Python floats."""
    out = []
    for b in range(len(x)):
        row = []
        for j in range(len(w)):
            terms = [(u[j][i] * (x[b][i] - w[j][i])) ** 2 for i in range(len(x[b]))]
            z = max(terms) if norm == "inf" else sum(terms)
            y = math.exp(-z)
            row.append(1.0 - y if is_or[j] else y)
        out.append(row)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["and", "or", "mixed"])
@pytest.mark.parametrize("norm", ["inf", "l2"])
def test_forward_matches_equations(kind, norm):
    layer = RBFI(7, 5, kind, norm=norm, dtype=torch.float64, backend="reference")
    x = torch.rand(4, 7, dtype=torch.float64)
    expected = unit_output_by_hand(
        x.tolist(), layer.w.tolist(), layer.u.tolist(), layer.is_or.tolist(), norm
    )
    torch.testing.assert_close(layer(x), expected, rtol=1e-12, atol=1e-12)


def test_kind_masks():
    torch.manual_seed(3)
    assert not RBFI(4, 50, "and").is_or.any()
    assert RBFI(4, 50, "or").is_or.all()
    mixed = RBFI(4, 200, "mixed").is_or
    assert 0 < mixed.sum() < 200
    assert mixed.dtype == torch.bool and mixed.shape == (200,)


def test_pseudo_exp_backward_hand_values():
    z = torch.tensor([0.0, 3.0, 8.0], requires_grad=True)
    y = PseudoExpNeg.apply(z)
    torch.testing.assert_close(y, torch.exp(-z.detach()))
    y.backward(torch.tensor([1.0, 2.0, -1.0]))
    # -g / sqrt(1 + z): -1/1, -2/2, +1/3
    torch.testing.assert_close(z.grad, torch.tensor([-1.0, -1.0, 1.0 / 3.0]))


def test_pseudo_exp_alpha_family():
    z = torch.tensor([3.0], requires_grad=True)
    PseudoExpNeg.apply(z, 0.2).backward()
    torch.testing.assert_close(z.grad, torch.tensor([-(4.0**-0.2)]))


def test_true_exp_backward():
    z = torch.tensor([0.5, 2.0], requires_grad=True)
    exp_neg(z, pseudogradient=False).sum().backward()
    torch.testing.assert_close(z.grad, -torch.exp(-z.detach()))


def test_pseudo_max_backward_hand_values():
    s = torch.tensor([[1.0, 3.0, 2.0], [0.0, 0.0, -1.0]], requires_grad=True)
    m = PseudoMax.apply(s)
    torch.testing.assert_close(m, torch.tensor([3.0, 0.0]))
    m.backward(torch.tensor([2.0, 1.0]))
    e = math.e
    expected = torch.tensor(
        [[2 / e**2, 2.0, 2 / e], [1.0, 1.0, 1 / e]]
    )  # exp(s_i - max), unnormalised
    torch.testing.assert_close(s.grad, expected)


def test_true_max_backward_is_argmax_subgradient():
    s = torch.tensor([[1.0, 3.0, 2.0]], requires_grad=True)
    max_last(s, pseudogradient=False).backward(torch.tensor([2.0]))
    torch.testing.assert_close(s.grad, torch.tensor([[0.0, 2.0, 0.0]]))


@pytest.mark.parametrize("kind", ["and", "or"])
def test_layer_pseudogradient_chain_rule_closed_form(kind):
    """dL/dx_i = g (-1/sqrt(1+z)) exp(s_i - z) 2 u_i^2 (x_i - w_i); Or flips the sign of g."""
    layer = RBFI(6, 1, kind, dtype=torch.float64, backend="reference")
    x = torch.rand(1, 6, dtype=torch.float64, requires_grad=True)
    layer(x).sum().backward()
    u, w, xv = layer.u.detach()[0], layer.w.detach()[0], x.detach()[0]
    s = (u * (xv - w)) ** 2
    z = s.max()
    g = 1.0 if kind == "and" else -1.0
    common = g * (-1 / torch.sqrt(1 + z)) * torch.exp(s - z)
    torch.testing.assert_close(x.grad[0], common * 2 * u**2 * (xv - w))
    torch.testing.assert_close(layer.w.grad[0], -common * 2 * u**2 * (xv - w))
    torch.testing.assert_close(layer.u.grad[0], common * 2 * u * (xv - w) ** 2)


@pytest.mark.parametrize("norm", ["inf", "l2"])
@pytest.mark.parametrize("kind", ["and", "or", "mixed"])
def test_true_gradient_mode_matches_finite_differences(kind, norm):
    torch.manual_seed(1)
    layer = RBFI(
        9, 4, kind, norm=norm, pseudogradient=False, dtype=torch.float64, backend="reference"
    )
    x = torch.rand(3, 9, dtype=torch.float64, requires_grad=True)
    w = layer.w.detach().clone().requires_grad_()
    u = layer.u.detach().clone().requires_grad_()
    from rbfi.nn.functional import rbfi

    def f(x, w, u):
        return rbfi(x, w, u, layer.is_or, norm=norm, pseudogradient=False, backend="reference")

    assert torch.autograd.gradcheck(f, (x, w, u), eps=1e-6, atol=1e-7)


def test_pseudogradient_is_a_runtime_switch():
    layer = RBFI(5, 3, dtype=torch.float64, backend="reference")
    x = torch.rand(2, 5, dtype=torch.float64, requires_grad=True)
    grads = []
    for flag in (True, False, True):
        layer.pseudogradient = flag
        x.grad = None
        layer(x).sum().backward()
        grads.append(x.grad.clone())
    torch.testing.assert_close(grads[0], grads[2])
    assert not torch.allclose(grads[0], grads[1])


def test_l2_matrix_expansion_matches_direct_sum():
    x = torch.rand(5, 11, dtype=torch.float64)
    w, u = torch.rand(3, 11, dtype=torch.float64), 3 * torch.rand(3, 11, dtype=torch.float64)
    direct = ((u * (x[:, None, :] - w)) ** 2).sum(-1)
    torch.testing.assert_close(scaled_sqdist_sum(x, w, u), direct)


def test_init_ranges_and_bounds():
    layer = RBFI(50, 40, u_bounds=(0.3, 0.5), w_bounds=(0.25, 0.75))
    assert layer.u.min() >= 0.3 and layer.u.max() <= 0.5
    assert layer.w.min() >= 0.25 and layer.w.max() <= 0.75
    default = RBFI(200, 100)
    assert default.u.min() >= 0.2 and default.u.max() <= 0.7  # author's init U[0.2, 0.7]
    assert default.w.min() >= 0.0 and default.w.max() <= 1.0


def test_projection_after_optimiser_steps():
    model = torch.nn.Sequential(RBFI(8, 6, u_bounds=(0.01, 3.0)), RBFI(6, 2, "or"))
    opt = torch.optim.SGD(model.parameters(), lr=1e4)
    attach_projection(opt, model)
    for _ in range(3):
        opt.zero_grad()
        model(torch.rand(16, 8)).sum().backward()
        opt.step()
    for layer in model:
        assert layer.u.min() >= 0.01 - 1e-7 and layer.u.max() <= 3.0 + 1e-7
        assert layer.w.min() >= 0.0 and layer.w.max() <= 1.0
    moved = model[0].u.detach()
    assert ((moved == 0.01) | (moved == 3.0)).any()  # the huge step really hit the bounds


def test_bounds_survive_deepcopy_state_dict_and_to():
    layer = RBFI(4, 3, u_bounds=(0.5, 2.0), w_bounds=(0.1, 0.9))
    clone = copy.deepcopy(layer)
    fresh = RBFI(4, 3)  # default bounds (0.01, 3), (0, 1)
    fresh.load_state_dict(layer.state_dict())
    moved = layer.to(torch.float64)
    for m in (clone, fresh, moved):
        with torch.no_grad():
            m.u.fill_(10.0)
            m.w.fill_(-1.0)
        project_(m)
        assert torch.all(m.u == 2.0) and torch.allclose(m.w, torch.full_like(m.w, 0.1))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kind"):
        RBFI(3, 2, "xor")
    with pytest.raises(ValueError, match="norm"):
        RBFI(3, 2, norm="l1")
    with pytest.raises(ValueError, match="u_bounds"):
        RBFI(3, 2, u_bounds=(2.0, 1.0))
    with pytest.raises(ValueError, match=r"\(\*, 3\)"):
        RBFI(3, 2)(torch.rand(4, 5))


def _mnist_like(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse stroke-like 784-pixel images in [0, 1]: ten random prototypes (15% of the pixels
    on), each image a noisy, partly erased copy of its class's prototype."""
    g = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(10, 784, generator=g) < 0.15).float()
    y = torch.randint(0, 10, (n,), generator=g)
    kept = (torch.rand(n, 784, generator=g) < 0.8).float()
    noise = (torch.rand(n, 784, generator=g) < 0.03).float()
    x = (prototypes[y] * kept + noise).clamp(0, 1) * (0.5 + 0.5 * torch.rand(n, 784, generator=g))
    return x, y


def test_rbf_units_start_with_z_of_order_one_and_rbfi_units_keep_their_init():
    from rbfi.nn.functional import scaled_sqdist_sum
    from rbfi.nn.modules import rbf_u_scale

    x, _ = _mnist_like(300)
    for n_in, data in ((784, x), (64, torch.rand(300, 64))):
        torch.manual_seed(0)
        layer = RBFI(n_in, 128, norm="l2")
        scale = rbf_u_scale(n_in)
        assert layer.u.min() >= 0.2 * scale - 1e-7 and layer.u.max() <= 0.7 * scale + 1e-7
        z = scaled_sqdist_sum(data, layer.w, layer.u)
        assert 0.3 < z.median().item() < 3.0, n_in  # RBFI's init gave ~50 on 784 inputs
        expected = n_in * ((0.2**2 + 0.2 * 0.7 + 0.7**2) / 3) * scale**2 / 6  # E z, uniform x, w
        assert expected == pytest.approx(1.0)
    torch.manual_seed(0)
    assert RBFI(784, 64).u.min() >= 0.2  # RBFI (inf) units: U[0.2, 0.7] unchanged


def test_a_tiny_rbf_net_learns_in_a_few_steps_where_the_rbfi_init_stays_at_chance():
    from rbfi.models import build_model
    from rbfi.nn import rbfi_layers
    from rbfi.nn.losses import square_error
    from rbfi.nn.modules import U_INIT

    x, y = _mnist_like(600)
    accuracy = {}
    for init in ("rbf", "rbfi"):
        torch.manual_seed(0)
        model = build_model("rbf", "64,10", "^v")
        if init == "rbfi":  # what RBF units got before: u ~ U[0.2, 0.7] whatever n
            with torch.no_grad():
                for layer in rbfi_layers(model):
                    layer.u.uniform_(*U_INIT)
        optimizer = torch.optim.Adadelta(model.parameters(), lr=5.0)
        attach_projection(optimizer, model)
        for step in range(30):
            idx = torch.randint(0, 600, (100,), generator=torch.Generator().manual_seed(step))
            loss = square_error(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            accuracy[init] = (model(x).argmax(1) == y).float().mean().item()
            final = square_error(model(x), y).item()
        if init == "rbf":
            assert final < 1.0  # below the loss of all-zero outputs
    assert accuracy["rbf"] > 0.4 and accuracy["rbfi"] < 0.2, accuracy
