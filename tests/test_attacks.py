"""Attacks: threat-model validity, eps = 0, projections, gradient modes, strength on a ReLU net,
agreement with an independent library (torchattacks)."""

from __future__ import annotations

import functools

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from rbfi import build_model
from rbfi.attacks import (
    FGSM,
    IFGSM,
    PGD,
    AutoAttack,
    ImageInput,
    PaperPGD,
    Square,
    Transfer,
    UniformNoise,
    attack_mode,
    project,
    random_start,
)
from rbfi.nn import pseudogradient_mode

TOL = 1e-6


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models gain nothing from threads, and OpenMP spin-waiting makes 2 threads very slow
    when another process shares the 2 cores; the setting is restored after each test."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_valid(x_adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert (x_adv - x).abs().max().item() <= eps + TOL
    assert x_adv.min().item() >= -TOL and x_adv.max().item() <= 1.0 + TOL


def raw_perturb(attack, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The attack's own point, before :meth:`Attack.check_output` refuses or clamps anything
    (in the modes the call sets up: eval, frozen parameters, the chosen gradient)."""
    attack.stats = {}
    with attack_mode(attack.model), pseudogradient_mode(attack.model, attack.gradient == "pseudo"):
        return attack.perturb(x, y).detach().reshape(x.shape)


def tiny_rbfi(in_features: int = 16) -> nn.Module:
    torch.manual_seed(1)
    return build_model("rbfi", "12,10", in_features=in_features).eval()


def tiny_relu(in_features: int = 16) -> nn.Module:
    torch.manual_seed(2)
    return build_model("relu", "12,10", in_features=in_features).eval()


@functools.lru_cache(maxsize=1)
def trained_relu() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A ReLU 128-128-10 net after 1 epoch on 10k MNIST images (~0.5 s), and 1000 test images."""
    from rbfi.data import load_mnist

    x, y = load_mnist("train")
    x_test, y_test = load_mnist("test")
    generator = torch.manual_seed(0)
    model = build_model("relu", "128,128,10")
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0)
    order = torch.randperm(10_000, generator=generator)
    for i in range(0, 10_000, 50):
        idx = order[i : i + 50]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval(), x_test[:1000], y_test[:1000]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


# --- projections ----------------------------------------------------------------------------


def test_correct_projection_hand_worked():
    x = torch.tensor([[0.0, 0.2, 0.5, 0.9, 1.0]])
    eps = 0.3
    down = project(x - 0.5, x, eps)  # darkening is allowed, down to max(x - eps, 0)
    assert torch.allclose(down, torch.tensor([[0.0, 0.0, 0.2, 0.6, 0.7]]))
    up = project(x + 0.5, x, eps)
    assert torch.allclose(up, torch.tensor([[0.3, 0.5, 0.8, 1.0, 1.0]]))
    inside = torch.tensor([[0.1, 0.1, 0.6, 0.8, 0.9]])
    assert torch.equal(project(inside, x, eps), inside)  # points of the set do not move


def test_legacy_projection_reproduces_the_one_sided_clip():
    """The author's clip: delta <- max(delta, min(x, eps)); delta <- min(delta, min(1-x, eps)).

    x = (0, 0.2, 0.5, 0.9, 1), eps = 0.3: lower = (0, 0.2, 0.3, 0.3, 0.3),
    upper = (0.3, 0.3, 0.3, 0.1, 0). A darkening attempt delta = -0.3 ends at
    delta = (0, 0.2, 0.3, 0.1, 0): every pixel is forced brighter (0.9 -> 1.0, where the
    lower bound 0.3 exceeds the upper bound 0.1 and the second clip wins).
    """
    x = torch.tensor([[0.0, 0.2, 0.5, 0.9, 1.0]])
    eps = 0.3
    expected = torch.tensor([[0.0, 0.4, 0.8, 1.0, 1.0]])
    assert torch.allclose(project(x - 0.3, x, eps, "legacy_one_sided"), expected)
    assert torch.allclose(project(x.clone(), x, eps, "legacy_one_sided"), expected)
    assert torch.allclose(
        project(x + 0.3, x, eps, "legacy_one_sided"), torch.tensor([[0.3, 0.5, 0.8, 1.0, 1.0]])
    )
    # the correct projection keeps the darkened point: the two differ
    assert not torch.allclose(project(x - 0.3, x, eps), expected)


def test_legacy_projection_matches_the_authors_formula_and_never_darkens():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 30, generator=g)
    x[:, :5] = 0.0
    x[:, 5:10] = 1.0
    for eps in (0.05, 0.3, 0.6):
        x_adv = x + (2 * torch.rand(x.shape, generator=g) - 1) * eps
        delta = x_adv - x
        author = torch.min(torch.max(delta, x.clamp(0, eps)), (1 - x).clamp(0, eps))
        legacy = project(x_adv, x, eps, "legacy_one_sided")
        assert torch.allclose(legacy, (x + author).clamp(0, 1))
        assert (legacy >= x).all()  # one-sided: pixels can only get brighter
        assert_valid(legacy, x, eps)


def test_random_start_is_uniform_on_the_feasible_box():
    g = torch.Generator().manual_seed(0)
    x = torch.tensor([[0.0, 0.5, 1.0]]).repeat(20_000, 1)
    start = random_start(x, 0.2, g)
    assert_valid(start, x, 0.2)
    # pixel 0: U[0, 0.2], mean 0.1; pixel 1: U[0.3, 0.7], mean 0.5; pixel 2: U[0.8, 1]
    assert torch.allclose(start.mean(0), torch.tensor([0.1, 0.5, 0.9]), atol=0.01)
    legacy = random_start(x, 0.2, g, "legacy_one_sided")
    assert_valid(legacy, x, 0.2)
    assert (legacy >= x).all()


# --- every attack stays in the threat model ---------------------------------------------------


def gradient_attacks(model: nn.Module, eps: float, seed: int) -> list:
    return [
        FGSM(model, eps, seed=seed),
        FGSM(model, eps, loss="margin", gradient="pseudo", seed=seed),
        IFGSM(model, eps, steps=3, loss="cross_entropy", seed=seed),
        PGD(model, eps, steps=3, restarts=2, loss="margin", seed=seed),
        PGD(model, eps, steps=3, alpha=0.7, gradient="pseudo", early_stop=False, seed=seed),
        PGD(model, eps, steps=2, projection="legacy_one_sided", seed=seed),
        PaperPGD(model, eps, steps=3, restarts=2, seed=seed),
        PaperPGD(model, eps, steps=3, restarts=1, projection="legacy_one_sided", seed=seed),
        UniformNoise(model, eps, seed=seed),
    ]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    eps=st.one_of(st.sampled_from([0.0, 1e-4, 0.3, 0.5, 1.0]), st.floats(0.0, 1.0)),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 5),
    extremes=st.booleans(),
)
def test_attacks_stay_within_eps_and_pixel_range(eps, seed, batch, extremes):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, 16, generator=g)
    if extremes:  # pixels at the borders of [0, 1]
        x = (x > 0.5).float()
    y = torch.randint(0, 10, (batch,), generator=g)
    for model in (tiny_rbfi(), tiny_relu()):
        # the raw points (before check_output's clamp of rounding), from a second set of the
        # same attacks (each is deterministic given its seed)
        raw = [raw_perturb(a, x, y) for a in gradient_attacks(model, eps, seed)]
        for attack, point in zip(gradient_attacks(model, eps, seed), raw):
            assert_valid(point, x, eps)
            final = attack(x, y)
            assert_valid(final, x, eps)
            assert (final - point).abs().max().item() <= TOL  # the check only removes rounding


class _Broken(FGSM):
    """An attack with a bug: its point is ``offset`` away from x in every pixel."""

    def __init__(self, model, eps, offset):
        super().__init__(model, eps)
        self.offset = offset

    def perturb(self, x, y):
        return x + self.offset


@pytest.mark.parametrize(
    "offset, x_value",
    [(0.1 + 1e-4, 0.5), (-(0.1 + 1e-4), 0.5), (0.05, 0.98), (-0.05, 0.02), (float("nan"), 0.5)],
    ids=["beyond eps", "beyond -eps", "above 1", "below 0", "nan"],
)
def test_check_output_refuses_a_point_outside_the_threat_model(offset, x_value):
    attack = _Broken(tiny_relu(), 0.1, offset)
    x, y = torch.full((2, 16), x_value), torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="outside the threat model|non-finite"):
        attack(x, y)


def test_check_output_clamps_only_rounding():
    """A point off by less than the rounding allowance is projected exactly onto the set."""
    attack = _Broken(tiny_relu(), 0.1, 0.1 + 5e-7)
    x, y = torch.full((2, 16), 0.5), torch.tensor([0, 1])
    out = attack(x, y)
    assert torch.equal(out, torch.full((2, 16), 0.5) + torch.tensor(0.1))


def test_noise_has_the_papers_distribution():
    """Paper Sec. 6.2: x' = (1 - eps) x + eps z, z uniform on [0, 1]^n. So pixel i of x' is
    uniform on [(1 - eps) x_i, (1 - eps) x_i + eps]: for x_i = 0, 0.5, 1 the ranges
    [0, eps], [0.5 - eps/2, 0.5 + eps/2], [1 - eps, 1], mean at the centre, variance
    eps^2 / 12; pixels independent; in the eps-ball and in [0, 1]."""
    n, eps = 20_000, 0.25
    x = torch.tensor([0.0, 0.5, 1.0]).repeat(n, 1)
    y = torch.zeros(n, dtype=torch.long)
    model = build_model("relu", "12,10", in_features=3).eval()
    x_adv = UniformNoise(model, eps, seed=3)(x, y)
    assert_valid(x_adv, x, eps)
    low = torch.tensor([0.0, 0.5 - eps / 2, 1 - eps])
    assert (x_adv >= low - TOL).all() and (x_adv <= low + eps + TOL).all()
    u = (x_adv - low) / eps  # should be U[0, 1] in every column
    assert torch.allclose(u.mean(0), torch.full((3,), 0.5), atol=0.01)
    assert torch.allclose(u.var(0), torch.full((3,), 1 / 12), atol=0.003)
    for column in u.T:  # every tenth of the range gets ~10% of the draws
        counts = torch.histc(column, bins=10, min=0.0, max=1.0) / n
        assert (counts - 0.1).abs().max() < 0.015
    corr = torch.corrcoef(u.T)
    assert (corr - torch.eye(3)).abs().max() < 0.03  # independent pixels
    again = UniformNoise(model, eps, seed=3)(x[:5], y[:5])
    other = UniformNoise(model, eps, seed=4)(x[:5], y[:5])
    assert torch.equal(again, UniformNoise(model, eps, seed=3)(x[:5], y[:5]))
    assert not torch.equal(again, other)


def test_eps_zero_reaches_every_attack_and_changes_nothing(monkeypatch):
    """eps = 0 is not special-cased by the base class: each attack's own perturb runs (the spy
    counts it) and must return x itself, B_0(x) = {x}."""
    model, source = tiny_rbfi(784), tiny_relu(784)
    x = torch.rand(3, 784)
    y = torch.tensor([0, 1, 2])
    attacks = gradient_attacks(model, 0.0, 0) + [
        Transfer(model, 0.0, source=source, steps=2),
        Square(model, 0.0, queries=5),
        AutoAttack(model, 0.0, version="apgd"),
    ]
    for attack in attacks:
        calls = []
        original = type(attack).perturb

        def spy(self, xb, yb, original=original, calls=calls):
            calls.append(len(xb))
            return original(self, xb, yb)

        monkeypatch.setattr(type(attack), "perturb", spy)
        assert torch.equal(attack(x, y), x), type(attack).__name__
        assert calls == [3], type(attack).__name__
        monkeypatch.undo()


def test_images_and_flat_inputs_give_the_same_examples():
    model = tiny_rbfi(784)
    x = torch.rand(3, 784)
    y = torch.tensor([0, 1, 2])
    flat = PGD(model, 0.1, steps=3, seed=5)(x, y)
    images = PGD(model, 0.1, steps=3, seed=5)(x.reshape(3, 1, 28, 28), y)
    assert images.shape == (3, 1, 28, 28)
    assert torch.allclose(images.reshape(3, 784), flat)
    assert torch.equal(ImageInput(model)(x.reshape(3, 1, 28, 28)), model(x))


# --- settings, modes, checks ------------------------------------------------------------------


def test_bad_settings_and_inputs_are_refused():
    model = tiny_relu()
    x, y = torch.rand(2, 16), torch.tensor([0, 1])
    for kwargs in ({"loss": "hinge"}, {"gradient": "fake"}):
        with pytest.raises(ValueError):
            FGSM(model, 0.1, **kwargs)
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError):
            FGSM(model, eps)
    with pytest.raises(ValueError):
        PGD(model, 0.1, projection="one_sided")
    with pytest.raises(ValueError):
        PGD(model, 0.1, steps=0)
    attack = FGSM(model, 0.1)
    with pytest.raises(ValueError):
        attack(x * 2, y)  # pixels outside [0, 1]
    with pytest.raises(ValueError):
        attack(x, y.float())
    with pytest.raises(ValueError):
        attack(x, y[:1])


def test_pseudogradient_mode_sets_and_restores_each_layer():
    model = build_model("rbfi", "8,8,10", in_features=16)
    layers = list(model.body)
    layers[0].pseudogradient, layers[1].pseudogradient, layers[2].pseudogradient = True, False, True
    with pseudogradient_mode(model, False):
        assert [layer.pseudogradient for layer in layers] == [False] * 3
    assert [layer.pseudogradient for layer in layers] == [True, False, True]
    with pytest.raises(RuntimeError), pseudogradient_mode(model, True):
        assert all(layer.pseudogradient for layer in layers)
        raise RuntimeError("boom")
    assert [layer.pseudogradient for layer in layers] == [True, False, True]
    relu = tiny_relu()
    x = torch.rand(3, 16, requires_grad=True)
    grads = []
    for enabled in (True, False):  # no RBFI layers: both modes give the same gradient
        with pseudogradient_mode(relu, enabled):
            (grad,) = torch.autograd.grad(relu(x).sum(), x)
        grads.append(grad)
    assert torch.equal(grads[0], grads[1]) and grads[0].abs().sum() > 0


def test_attack_uses_the_chosen_gradient_and_restores_model_state():
    model = build_model("rbfi", "8,10", in_features=16)
    model.train()
    seen = []
    model.body[0].register_forward_hook(lambda m, i, o: seen.append((m.pseudogradient, m.training)))
    x, y = torch.rand(4, 16), torch.randint(0, 10, (4,))
    for gradient, flag in (("pseudo", True), ("true", False)):
        seen.clear()
        model.body[0].pseudogradient = not flag
        PGD(model, 0.2, steps=2, gradient=gradient)(x, y)
        assert seen and all(s == (flag, False) for s in seen)  # mode on, eval mode
        assert model.body[0].pseudogradient is (not flag)  # restored
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_attack_mode_freezes_parameters_temporarily():
    """From train mode, with one parameter already frozen: eval and all frozen inside; the
    training flag and each parameter's own flag back afterwards (also after an exception)."""
    model = tiny_relu().train()
    first = next(model.parameters())
    first.requires_grad_(False)
    before = [p.requires_grad for p in model.parameters()]
    assert model.training and not all(before) and any(before)
    with pytest.raises(RuntimeError), attack_mode(model):
        assert not any(p.requires_grad for p in model.parameters())
        assert not model.training and not any(m.training for m in model.modules())
        raise RuntimeError("boom")
    assert model.training and all(m.training for m in model.modules())
    assert [p.requires_grad for p in model.parameters()] == before


def test_pseudogradients_change_the_attack_on_rbfi():
    model = tiny_rbfi(784)
    x, y = torch.rand(8, 784), torch.randint(0, 10, (8,))
    true = FGSM(model, 0.2, gradient="true")(x, y)
    pseudo = FGSM(model, 0.2, gradient="pseudo")(x, y)
    assert not torch.equal(true, pseudo)


def test_attacks_are_reproducible_from_their_seed():
    model = tiny_rbfi()
    x, y = torch.rand(5, 16), torch.randint(0, 10, (5,))
    a = PaperPGD(model, 0.3, steps=3, restarts=2, seed=7)(x, y)
    b = PaperPGD(model, 0.3, steps=3, restarts=2, seed=7)(x, y)
    c = PaperPGD(model, 0.3, steps=3, restarts=2, seed=8)(x, y)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- strength on a trained ReLU net -----------------------------------------------------------


def test_fgsm_and_pgd_break_a_relu_net_at_eps_0_3():
    model, x, y = trained_relu()
    x, y = x[:500], y[:500]
    assert accuracy(model, x, y) > 0.8
    for attack in (
        FGSM(model, 0.3),
        PGD(model, 0.3, steps=20),
        PaperPGD(model, 0.3, steps=100, restarts=1),
    ):
        assert accuracy(model, attack(x, y), y) < 0.10, type(attack).__name__


def test_legacy_projection_weakens_the_paper_pgd():
    model, x, y = trained_relu()
    x, y = x[:300], y[:300]
    correct = accuracy(model, PaperPGD(model, 0.1, steps=50, restarts=1)(x, y), y)
    legacy = PaperPGD(model, 0.1, steps=50, restarts=1, projection="legacy_one_sided")
    assert accuracy(model, legacy(x, y), y) > correct + 0.1


def test_pgd_agrees_with_torchattacks():
    # installed by install.sh, so this runs there; skipped with the reason where it is absent
    torchattacks = pytest.importorskip(
        "torchattacks", reason="torchattacks is not installed (install.sh installs it)"
    )

    model, x, y = trained_relu()
    eps, steps = 0.1, 20  # mid-range accuracy, where a disagreement would show
    ours = PGD(model, eps, steps=steps, alpha=2.5 * eps / steps, early_stop=False, seed=0)
    theirs = torchattacks.PGD(model, eps=eps, alpha=2.5 * eps / steps, steps=steps)
    torch.manual_seed(0)
    acc_ours, acc_theirs = accuracy(model, ours(x, y), y), accuracy(model, theirs(x, y), y)
    assert 0.1 < acc_theirs < 0.7
    assert abs(acc_ours - acc_theirs) <= 0.02, (acc_ours, acc_theirs)


def test_paper_pgd_any_step_success_is_never_below_last_step_success():
    model, x, y = trained_relu()
    x, y = x[:300], y[:300]
    attack = PaperPGD(model, 0.08, steps=30, restarts=1, early_stop=False, seed=1)
    x_adv = attack(x, y)
    with torch.no_grad():
        last = model(x_adv).argmax(1) != y
    any_step = attack.stats["success_any"]
    assert last.any() and (any_step | ~last).all()  # last-step success implies any-step
    # with early stopping the first misclassified point is returned: success = any-step
    early = PaperPGD(model, 0.08, steps=30, restarts=1, seed=1)
    x_early = early(x, y)
    with torch.no_grad():
        assert torch.equal(model(x_early).argmax(1) != y, early.stats["success_any"])


def test_transfer_attack_from_a_relu_source():
    source, x, y = trained_relu()
    x, y = x[:200], y[:200]
    target = build_model("relu", "32,10").eval()  # another (untrained) net: just the mechanics
    attack = Transfer(target, 0.3, source=source, steps=10)
    x_adv = attack(x, y)
    assert_valid(x_adv, x, 0.3)
    assert accuracy(source, x_adv, y) < 0.05  # crafted on the source
    assert attack.stats["source_success"] >= 190


def test_package_attacks_on_a_relu_net():
    model, x, y = trained_relu()
    x, y = x[:40], y[:40]
    square = Square(model, 0.3, queries=100)
    x_sq = square(x, y)
    assert_valid(x_sq, x, 0.3)
    assert accuracy(model, x_sq, y) < accuracy(model, x, y) - 0.3
    auto = AutoAttack(model, 0.3, version="apgd")
    x_aa = auto(x, y)
    assert_valid(x_aa, x, 0.3)
    assert accuracy(model, x_aa, y) < 0.05
    assert auto.stats["zero_gradient"] == 0 and "package_warnings" in auto.stats
