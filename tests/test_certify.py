"""Interval bounds and certificates: soundness against sampled and attacked points, exactness
per RBFI unit, brute force on a 2-input net, eps = 0, the `rbfi certify` command, and the
soundness check of the robustness report."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from rbfi import build_model, save_model
from rbfi.attacks import PGD
from rbfi.bounds import certify, input_box, interval_bounds, margin_bounds
from rbfi.nn import RBFI

ARCHS = [
    ("rbfi", "^v^"),
    ("rbfi", "*v*"),
    ("rbfi", "vv^"),
    ("rbf", "^v^"),
    ("relu", None),
    ("sigmoid", None),
]


def tiny(arch: str, geometry: str | None, in_features: int = 12, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = build_model(arch, "9,7,5", geometry, in_features=in_features).double().eval()
    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.backend = "reference"
            with torch.no_grad():  # scales up to the bound, as in trained nets
                layer.u.uniform_(0.01, 3.0)
    return model


@pytest.mark.parametrize("arch, geometry", ARCHS)
def test_bounds_at_eps_zero_equal_the_forward(arch, geometry):
    model = tiny(arch, geometry)
    x = torch.rand(6, 12, dtype=torch.float64)
    lo, hi = interval_bounds(model, x, x)
    torch.testing.assert_close(lo, model(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(hi, model(x), rtol=0, atol=1e-12)
    y = model(x).argmax(1)
    scores = model(x)
    expected = scores.gather(1, y[:, None]) - scores
    torch.testing.assert_close(margin_bounds(model, x, y, 0.0), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("arch, geometry", ARCHS)
@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_sampled_points_never_leave_the_bounds(arch, geometry, eps):
    """Random points of the box, its corners, and points found by ascent/descent on each output
    all stay inside the interval bounds (float64, no tolerance beyond 1e-12)."""
    model = tiny(arch, geometry)
    x = torch.rand(4, 12, dtype=torch.float64)
    x[:, :3] = torch.tensor([0.0, 1.0, 0.5])  # pixels at the edges of [0, 1]
    lo_in, hi_in = input_box(x, eps)
    lo, hi = interval_bounds(model, lo_in, hi_in)
    assert_inside_bounds(model, lo_in, hi_in, lo, hi, uniform=200, corners=50, steps=30, step=0.05)


def assert_inside_bounds(
    model, lo_in, hi_in, lo, hi, *, uniform: int, corners: int, steps: int, step: float
) -> None:
    """``uniform`` random points of the box [lo_in, hi_in], ``corners`` random corners, and
    for each output two points pushed up and down from the centre by ``steps`` projected
    sign-gradient steps of ``step``: every output stays in [lo, hi] (no tolerance beyond
    1e-12)."""
    g = torch.Generator().manual_seed(1)
    samples = [
        lo_in + (hi_in - lo_in) * torch.rand(lo_in.shape, generator=g, dtype=lo_in.dtype)
        for _ in range(uniform)
    ]
    samples += [
        torch.where(torch.rand(lo_in.shape, generator=g) < 0.5, lo_in, hi_in)
        for _ in range(corners)
    ]
    for j in range(lo.shape[1]):  # push each output up and down with projected gradient steps
        for sign in (1.0, -1.0):
            z = (lo_in + hi_in) / 2
            for _ in range(steps):
                z.requires_grad_(True)
                (grad,) = torch.autograd.grad(sign * model(z)[:, j].sum(), z)
                z = torch.min(torch.max(z.detach() + step * grad.sign(), lo_in), hi_in)
            samples.append(z)
    for point in samples:
        out = model(point).detach()
        assert (out >= lo - 1e-12).all() and (out <= hi + 1e-12).all()


def test_rbfi_layer_bounds_are_exact_per_unit():
    """One RBFI layer: each unit's bound is attained, at the nearest / farthest point of the
    box from its centre (computed independently, coordinate by coordinate)."""
    layer = RBFI(6, 4, "mixed", dtype=torch.float64, backend="reference")
    with torch.no_grad():
        layer.u.uniform_(0.5, 3.0)
    lo = torch.rand(3, 6, dtype=torch.float64) * 0.6
    hi = lo + 0.3
    y_lo, y_hi = layer.interval(lo, hi)
    for b in range(3):
        for j in range(4):
            w = layer.w[j].detach()
            nearest = torch.minimum(torch.maximum(w, lo[b]), hi[b])
            farthest = torch.where((hi[b] - w).abs() >= (w - lo[b]).abs(), hi[b], lo[b])
            at = {
                p: layer(point[None])[0, j].item()
                for p, point in (("near", nearest), ("far", farthest))
            }
            low, high = sorted(at.values())
            assert y_lo[b, j].item() == pytest.approx(low, abs=1e-12)
            assert y_hi[b, j].item() == pytest.approx(high, abs=1e-12)


@pytest.mark.parametrize("geometry", ["^v", "v^", "*v"])
def test_two_input_net_agrees_with_brute_force_on_a_grid(geometry):
    """A 2-input RBFI net: wherever the certificate says robust, every point of a 161 x 161
    grid of the box keeps the class; and the certified margin never exceeds the smallest
    margin found on the grid."""
    torch.manual_seed(3)
    model = build_model("rbfi", "6,3", geometry, in_features=2).double().eval()
    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.backend = "reference"
            with torch.no_grad():
                layer.u.uniform_(0.5, 3.0)
    centres = torch.rand(60, 2, dtype=torch.float64)
    labels = model(centres).argmax(1)
    checked = 0
    for eps in (0.02, 0.05, 0.15):
        cert = certify(model, centres, labels, eps)
        lo, hi = input_box(centres, eps)
        t = torch.linspace(0, 1, 161, dtype=torch.float64)
        for i in range(len(centres)):
            grid = torch.cartesian_prod(
                lo[i, 0] + (hi[i, 0] - lo[i, 0]) * t, lo[i, 1] + (hi[i, 1] - lo[i, 1]) * t
            )
            scores = model(grid)
            true = scores[:, labels[i]]
            others = scores.clone()
            others[:, labels[i]] = -float("inf")
            grid_margin = (true - others.amax(1)).min().item()
            assert cert.margins[i].item() <= grid_margin + 1e-12
            if cert.certified[i]:
                assert (scores.argmax(1) == labels[i]).all()
                checked += 1
    assert checked > 10  # the test certified (and checked) a fair number of examples


def test_relu_elision_is_tighter_and_sound():
    model = tiny("relu", None)
    x = torch.rand(16, 12, dtype=torch.float64)
    y = model(x).argmax(1)
    for eps in (0.01, 0.05):
        elided = margin_bounds(model, x, y, eps)
        lo, hi = interval_bounds(model, *input_box(x, eps))
        naive = lo.gather(1, y[:, None]) - hi
        naive = naive.scatter(1, y[:, None], 0.0)
        assert (elided >= naive - 1e-12).all() and (elided > naive + 1e-9).any()
        attack = PGD(model, eps, steps=40, restarts=3, loss="margin", seed=0)
        x_adv = attack(x, y)
        scores = model(x_adv)
        found = scores.gather(1, y[:, None]) - scores
        assert (elided <= found + 1e-12).all()


@pytest.mark.parametrize("arch, geometry", [("rbfi", "^v^"), ("rbf", "v^v"), ("relu", None)])
def test_certify_agrees_with_an_independent_numpy_computation(arch, geometry):
    """Margins and flags of :func:`certify` against tools/independent_certify.py (NumPy,
    float64, written from the formulas, sharing no code with rbfi.bounds), example by example,
    over several eps; the margins are not all of one sign, so both flags are exercised."""
    from tools.independent_certify import margins as numpy_margins

    model = tiny(arch, geometry)
    x = torch.rand(40, 12, dtype=torch.float64)
    y = model(x).argmax(1)
    y[:4] = (y[:4] + 1) % 5
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    settings = model.config.to_json()
    for eps in (0.0, 0.005, 0.02, 0.1):
        cert = certify(model, x, y, eps, batch_size=7)
        theirs = numpy_margins(settings, weights, x.numpy(), y.numpy(), eps)
        assert cert.margins.numpy() == pytest.approx(theirs, abs=1e-10)
        assert cert.certified.tolist() == (theirs > 0).tolist()
    assert 0 < (numpy_margins(settings, weights, x.numpy(), y.numpy(), 0.005) > 0).sum() < 40


def test_certify_flags_margins_and_modes():
    model = tiny("rbfi", "^v^")
    model.train()
    x = torch.rand(30, 12, dtype=torch.float64)
    y = model(x).argmax(1)
    y[:3] = (y[:3] + 1) % 5  # wrong without attack: never certified
    cert = certify(model, x, y, 0.01, batch_size=7)
    assert model.training  # its mode is given back
    assert not cert.certified[:3].any()
    assert cert.certified[3:].any()
    previous = cert.margins
    for eps in (0.02, 0.05, 0.1):  # bigger balls: margins can only shrink
        margins = certify(model, x, y, eps).margins
        assert (margins <= previous + 1e-12).all()
        previous = margins


def test_margin_bounds_carry_gradients_for_certified_training():
    model = tiny("rbfi", "^v^")
    x = torch.rand(5, 12, dtype=torch.float64)
    y = model(x).argmax(1)
    margin_bounds(model, x, y, 0.1).sum().backward()
    for layer in model.modules():
        if isinstance(layer, RBFI):
            assert layer.w.grad is not None and layer.w.grad.abs().sum() > 0
            assert layer.u.grad is not None and torch.isfinite(layer.u.grad).all()


def test_true_gradients_of_the_margin_bounds_match_finite_differences():
    model = tiny("rbfi", "*v^")
    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.pseudogradient = False
    x = torch.rand(3, 12, dtype=torch.float64)
    y = model(x).argmax(1)

    class Margins(nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self):
            return margin_bounds(self.model, x, y, 0.05)

    wrapper = Margins()

    def margins(w, u):
        params = {"model.body.0.w": w, "model.body.1.u": u}
        return torch.func.functional_call(wrapper, params, ())

    w0 = model.body[0].w.detach().clone().requires_grad_(True)
    u1 = model.body[1].u.detach().clone().requires_grad_(True)
    assert torch.autograd.gradcheck(margins, (w0, u1), eps=1e-7, atol=1e-6)


# --- the command and the report ---------------------------------------------------------------


def test_rbfi_certify_command(tmp_path, capsys, idx_dir):
    from rbfi.cli import main
    from rbfi.evaluation.certification import CERTIFY_SCHEMA

    torch.manual_seed(0)
    run = tmp_path / "run"
    save_model(run, build_model("rbfi", "16,10"), epoch=1)
    out = tmp_path / "cert"
    argv = [
        "certify",
        str(run),
        "--eps",
        "0.3,0.01,0.1",
        "--data-dir",
        str(idx_dir),
        "--out",
        str(out),
        "--json",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {"clean", "certified"}
    assert list(printed["certified"]) == ["0.01", "0.1", "0.3"]
    saved = json.loads((out / "certify.json").read_text())
    CERTIFY_SCHEMA.check(saved)
    assert saved["n_examples"] == 12 and len(saved["certified"]["0.1"]["margins"]) == 12
    for key, row in saved["certified"].items():
        flags = [c == "1" for c in row["certified"]]
        assert flags == [m > 0 for m in row["margins"]]
        assert printed["certified"][key] == round(100 * sum(flags) / 12, 2)
    assert sorted(p.name for p in out.iterdir()) == ["certify.json", "certify.md", "certify.png"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert main(argv) == 2 and "already holds results" in capsys.readouterr().err
    assert main(["certify", str(run), "--eps", "1.5", "--out", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_certified_example_broken_by_an_attack_fails_the_report(tmp_path, capsys, monkeypatch):
    """A bug that certifies what an attack breaks is not a warning: the evaluation raises, the
    command writes the evidence and exits 1."""
    import rbfi.evaluation.results as results_module
    from rbfi.bounds.certify import Certificate
    from rbfi.cli import main

    def lying_certify(model, x, y, eps, batch_size=1000):
        ones = torch.ones(len(x), dtype=torch.bool, device=x.device)
        return Certificate(eps, torch.ones(len(x)), ones, model(x).argmax(1))

    monkeypatch.setattr(results_module, "certify", lying_certify)
    torch.manual_seed(0)
    run = tmp_path / "run"
    save_model(run, build_model("relu", "16,10"), epoch=1)
    out = tmp_path / "res"
    code = main(
        [
            "attack",
            str(run),
            "--suite",
            "paper",
            "--attacks",
            "fgsm",
            "--eps",
            "0.3",
            "--limit",
            "30",
            "--out",
            str(out),
            "--check-subset",
            "0",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and "rbfi: soundness violation:" in err and "certified yet broken" in err
    saved = json.loads((out / "robustness.json").read_text())
    assert saved["soundness_violations"] and saved["soundness_violations"][0]["attack"] == "fgsm"
    assert "**VIOLATED**" in (out / "robustness.md").read_text()


@pytest.mark.parametrize("arch", ["rbfi", "relu", "sigmoid"])
def test_independent_numpy_computation_agrees_with_rbfi_certify(tmp_path, capsys, idx_dir, arch):
    """tools/independent_certify.py (NumPy, float64, from the formulas, reading the files
    itself) and `rbfi certify` give the same certified accuracy on the same checkpoint."""
    from rbfi.cli import main
    from tools import independent_certify

    run = tmp_path / "run"
    common = ["--epochs", "2", "--batch-size", "5", "--data-dir", str(idx_dir), "--no-progress"]
    assert main(["train", "--model", arch, "--layers", "24,10", "--out", str(run)] + common) == 0
    capsys.readouterr()
    eps = "0.002,0.01,0.05"
    out = ["--out", str(tmp_path / "cert"), "--json"]
    assert main(["certify", str(run), "--eps", eps, "--data-dir", str(idx_dir)] + out) == 0
    ours = json.loads(capsys.readouterr().out)
    assert independent_certify.main([str(run), "--eps", eps, "--data-dir", str(idx_dir)]) == 0
    theirs = json.loads(capsys.readouterr().out)
    assert abs(ours["clean"] - theirs["clean"]) <= 0.3
    for key in ours["certified"]:
        assert abs(ours["certified"][key] - theirs["certified"][key]) <= 0.3, key
    assert any(0 < v < 100 for v in ours["certified"].values()) or arch != "rbfi"
