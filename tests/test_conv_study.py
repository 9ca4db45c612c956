"""The conv item of ``rbfi reproduce`` (rbfi/experiments/studies/conv.py): its nets and recipes,
the cost model for conv nets, the paired statistics its claims use, its claims on hand-made
numbers, and the item end to end on the smoke profile."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

import rbfi.stats as stats
from rbfi.experiments.items import ITEMS
from rbfi.experiments.paper.baselines import ITEM as BASELINES
from rbfi.experiments.paper.common import (
    CONV_SPEED,
    REFERENCE_ELEMENTS,
    SECONDS_PER_EXAMPLE,
    elements,
    net,
    transfer_source,
)
from rbfi.experiments.paper.table1 import ITEM as TABLE1
from rbfi.experiments.profiles import PROFILES, SMOKE, reductions
from rbfi.experiments.recipes import recipe
from rbfi.experiments.reproduce import reproduce
from rbfi.experiments.studies.conv import (
    BEATS_IBP,
    BEATS_MLP,
    CNN,
    CNN_CERT,
    IBP,
    ITEM,
    KEEPS,
    MLP,
    MLP_CERT,
    RECIPES,
)
from rbfi.models import ModelConfig, build_model
from rbfi.nn import RBFI, RBFIConv2d
from rbfi.training import TrainConfig


def config_of(job) -> TrainConfig:
    return TrainConfig.from_json(job.payload["train"])


# --- the nets --------------------------------------------------------------------------------


def test_nets_reuse_the_mlps_and_follow_the_profiles_recipes():
    assert ITEMS["conv"] is ITEM and list(ITEMS).index("conv") > list(ITEMS).index("baselines")
    profile = PROFILES["standard"]
    nets = ITEM.nets(profile)
    assert nets[MLP].id in {j.id for j in TABLE1.jobs(profile)}  # trained once
    assert nets[MLP_CERT].id == BASELINES.nets(profile)["RBFI (certified training)"].id
    configs = {name: config_of(job) for name, job in nets.items()}
    spec = ("c16k5s2", "c32k4s2", 512, 10)
    for name in RECIPES:  # every CNN has the study's spec; the RBFI ones its geometry
        assert configs[name].model.layers == spec
        assert configs[name].train_limit is None and configs[name].pixel_scale == 255
    assert {configs[n].model.geometry for n in (CNN, *CNN_CERT.values())} == {"^v^v"}
    assert configs[CNN].certified_eps is None and configs[CNN].epochs == profile.epochs
    assert [configs[CNN_CERT[e]].certified_eps for e in (0.1, 0.3)] == [0.15, 0.35]
    madry = configs["ReLU CNN (Madry PGD)"]
    assert (madry.model.arch, madry.adversarial, madry.adv_eps, madry.adv_eps_ramp) == (
        "relu",
        "madry",
        0.3,
        0.5,
    )
    assert (madry.optimizer, madry.lr, madry.lr_schedule) == ("adam", 1e-3, "cosine")
    assert configs["ReLU CNN (TRADES)"].trades_beta == 6.0
    for eps, train_eps in ((0.1, 0.2), (0.3, 0.4)):  # Gowal et al.'s training eps
        ibp = configs[IBP[eps]]
        assert (ibp.certified_eps, ibp.certified_ramp, ibp.lr_schedule) == (train_eps, 0.6, "step")
    # one strong-suite evaluation per net, on the same images; the transfer source runs first
    jobs = ITEM.jobs(profile)
    evals = [j for j in jobs if j.kind == "evaluate"]
    assert len(evals) == len(nets) == 10 and {e.payload["limit"] for e in evals} == {1000}
    assert transfer_source(profile).id in {j.id for j in jobs}
    # the paper has no conv item: its profile trains the standard profile's nets
    paper = {name: job.id for name, job in ITEM.nets(PROFILES["paper"]).items() if name in RECIPES}
    assert paper == {name: nets[name].id for name in RECIPES}
    assert not [line for line in reductions(profile) if line.startswith("conv.")]
    assert "conv.rbfi.epochs 3 (paper: 30)" in reductions(PROFILES["quick"])


def test_a_recipe_is_one_place_to_change():
    """Changing one recipe of the profile changes that net's job (and its evaluation's) and no
    other; the study's spec changes every CNN; bad recipes are refused by name."""
    profile = PROFILES["standard"]
    before = {j.label: j.id for j in ITEM.jobs(profile)}
    longer = profile.conv.rbfi_cert_03.but(certified_ramp=0.8, epochs=30)
    changed = replace(profile, conv=replace(profile.conv, rbfi_cert_03=longer))
    after = {j.label: j.id for j in ITEM.jobs(changed)}
    moved = sorted(label for label in before if before[label] != after[label])
    name = CNN_CERT[0.3]
    assert moved == [f"eval {name} strong suite", f"train {name}"]
    config = config_of(ITEM.nets(changed)[name])
    assert (config.certified_ramp, config.epochs, config.certified_eps) == (0.8, 30, 0.35)
    wide = replace(profile, conv=replace(profile.conv, layers="c32k5s2,c64k4s2,512,10"))
    assert all(config_of(j).model.layers[0] == "c32k5s2" for j in map(ITEM.nets(wide).get, RECIPES))
    bounded = profile.conv.rbfi.but(u_bounds=(0.01, 1.0))  # a model setting
    nets = ITEM.nets(replace(profile, conv=replace(profile.conv, rbfi=bounded)))
    assert config_of(nets[CNN]).model.u_bounds == (0.01, 1.0)
    for bad in ({"train_limit": 100}, {"lyers": 3}, {"epochs": 2}):
        with pytest.raises((ValueError, TypeError), match="recipe|epochs"):
            recipe("rbfi", 3, **bad)


# --- the cost model ----------------------------------------------------------------------------


def measured_elements(config: ModelConfig) -> float:
    """Elements of one image's forward pass counted on the built net: each RBFI layer's
    outputs x its units' inputs (a conv layer's outputs seen by a forward hook), conv layers
    divided by CONV_SPEED."""
    model = build_model(config)
    total = []

    def hook(layer, _, output):
        per_output = output[0].numel() * layer.w.shape[1]
        total.append(per_output / CONV_SPEED if isinstance(layer, RBFIConv2d) else per_output)

    for layer in model.modules():
        if isinstance(layer, RBFI):
            layer.register_forward_hook(hook)
    model(torch.zeros(1, 784))
    return sum(total)


@pytest.mark.parametrize(
    "layers",
    [(512, 512, 512, 10), "c16k5s2,c32k4s2,512,10", "c4k5s3,16,10", "c8k3p1,c8k3s2p2,32,10"],
)
def test_cost_model_counts_each_layers_elements(layers):
    config = ModelConfig("rbfi", layers)
    assert elements(config) == pytest.approx(measured_elements(config))
    assert elements(ModelConfig("relu", layers)) == elements(config)  # the same shape


def test_cost_of_a_conv_net_and_of_the_papers_nets():
    """The paper's MLP keeps the cost it had (784 x 512 + 2 x 512^2 + 512 x 10 elements); a
    conv net's training costs its elements' share; --stop-after slices by these costs."""
    standard = PROFILES["standard"]
    mlp = net(standard, "rbfi", 0)
    assert elements(ModelConfig("rbfi", (512, 512, 512, 10))) == 930_816
    expected = 30 * 60_000 * SECONDS_PER_EXAMPLE["rbfi"] * 930_816 / REFERENCE_ELEMENTS
    assert mlp.cost == pytest.approx(expected)
    cnn = ITEM.nets(standard)[CNN]
    # 12 x 12 positions x 16 units x 5 x 5 inputs, 5 x 5 x 32 x (16 x 4 x 4); 800 x 512, 512 x 10
    by_hand = (12 * 12 * 16 * 25 + 5 * 5 * 32 * 16 * 16) / 0.82 + 800 * 512 + 512 * 10
    assert cnn.cost == pytest.approx(expected * by_hand / 930_816)  # both: 30 epochs
    certified = ITEM.nets(standard)[CNN_CERT[0.3]]
    ratio = standard.conv.rbfi_cert_03.epochs / standard.conv.rbfi.epochs
    assert certified.cost == pytest.approx(cnn.cost * ratio * 2.5)  # its epochs, interval pass


# --- the paired statistics ---------------------------------------------------------------------


def pairs(a_only: int, b_only: int, both: int = 0, neither: int = 0):
    a = [True] * a_only + [False] * b_only + [True] * both + [False] * neither
    b = [False] * a_only + [True] * b_only + [True] * both + [False] * neither
    return a, b


def test_the_paired_interval_excludes_0_exactly_when_mcnemar_rejects():
    for a_only in range(13):
        for b_only in range(13):
            a, b = pairs(a_only, b_only, both=5, neither=3)
            diff, low, high = stats.paired_difference(a, b)
            assert diff == pytest.approx((a_only - b_only) / len(a))
            assert low <= diff <= high
            _, _, p = stats.mcnemar(a, b)
            assert (low > 0 or high < 0) == (p < 0.05), (a_only, b_only)


def test_not_worse_on_hand_worked_cases():
    """0 of 20 discordant images won: pi's exact upper end is 1 - 0.025^(1/20) = 0.16843, so
    the difference's interval on n = 1000 is [-0.02, (2 x 0.16843 - 1) x 20 / 1000 =
    -0.01326]."""
    a, b = pairs(0, 20, both=880, neither=100)
    diff, low, high = stats.paired_difference(a, b)
    assert diff == pytest.approx(-0.02) and low == pytest.approx(-0.02)
    assert high == pytest.approx((2 * (1 - 0.025 ** (1 / 20)) - 1) * 20 / 1000)
    est = stats.proportion(880, 1000), stats.proportion(900, 1000)
    assert stats.not_worse(*est, 0.02, (a, b)).status == stats.UNDECIDED  # contains -2
    assert stats.not_worse(*est, 0.03, (a, b)).status == stats.HOLDS  # above -3
    assert stats.not_worse(*est, 0.01, (a, b)).status == stats.FAILS  # below -1
    same = [True] * 900 + [False] * 100
    assert stats.paired_difference(same, same) == (0.0, 0.0, 0.0)
    verdict = stats.not_worse(est[1], est[1], 0.02, (same, same), ("CNN", "MLP"))
    assert verdict.status == stats.HOLDS and "difference +0.0 points [+0.0, +0.0]" in verdict.reason


# --- the claims --------------------------------------------------------------------------------


def flags(right: range | list, n: int = 1000) -> list[bool]:
    """n images, right on the indices in ``right``."""
    chosen = set(right)
    return [i in chosen for i in range(n)]


def hand_data(worst: dict, certified: dict, eps=(0.1, 0.2, 0.3)):
    """data and per-example flags for the claims: {net: {eps: flags}} per kind (nets absent
    from one kind get no flags there)."""
    data = {"eps": list(eps), "nets": {}}
    per_example = {}
    for kind, table in (("worst", worst), ("certified", certified)):
        for name, by_eps in table.items():
            entry = data["nets"].setdefault(name, {"worst": {}, "certified": {}})
            mine = per_example.setdefault(name, {"worst": {}, "certified": {}})
            for e, right in by_eps.items():
                mine[kind][e] = right
                entry[kind][e] = stats.proportion(sum(right), len(right)).to_json()
    return data, per_example


def decided(data, per_example, doubts=()):
    return {c.text: c for c in ITEM.claims(data, per_example, list(doubts))}


def test_keeps_the_mlps_resistance_holds_fails_and_is_undecided():
    keys = ("0.1", "0.2", "0.3")
    mlp = {k: flags(range(900)) for k in keys}
    cases = {
        "equal": (stats.HOLDS, {k: flags(range(900)) for k in keys}),
        # loses 100 images at 0.3: difference -10 points [-9.3 at best]
        "worse": (stats.FAILS, {**mlp, "0.3": flags(range(800))}),
        # loses 20 at 0.2: [-2.0, -1.3] contains -2
        "borderline": (stats.UNDECIDED, {**mlp, "0.2": flags(range(880))}),
    }
    for what, (status, cnn) in cases.items():
        data, per_example = hand_data({MLP: mlp, CNN: cnn}, {})
        keeps = decided(data, per_example)[KEEPS]
        assert keeps.holds is stats.Verdict(status, "").holds, what
        assert "eps 0.1: RBFI CNN 90.0 [88.0-91.8], RBFI MLP 90.0 [88.0-91.8]" in keeps.evidence
    data, per_example = hand_data({MLP: mlp, CNN: cases["worse"][1]}, {})
    keeps = decided(data, per_example)[KEEPS]
    assert keeps.reason.startswith("eps 0.3: RBFI CNN 80.0") and "below -2" in keeps.reason
    assert len(keeps.details) == 3  # a part per eps
    # a doubt about either net leaves it undecided and names the net
    doubt = stats.Doubt(CNN, "under-trained", "still rising")
    keeps = decided(*hand_data({MLP: mlp, CNN: mlp}, {}), [doubt])[KEEPS]
    assert keeps.holds is None and keeps.reason.startswith("rests on RBFI CNN under-trained")


def certified_case(cnn01: int, cnn03: int, mlp: int, ibp01: int, ibp03: int):
    """Certified flags: each net right on its first k images at every eps."""
    counts = {CNN_CERT[0.1]: cnn01, CNN_CERT[0.3]: cnn03, MLP_CERT: mlp}
    counts |= {IBP[0.1]: ibp01, IBP[0.3]: ibp03}
    return {n: {k: flags(range(c)) for k in ("0.1", "0.2", "0.3")} for n, c in counts.items()}


def test_certify_more_claims_pair_each_eps_with_the_net_trained_for_it():
    """At 0.1 the CNN certified for 0.1 is compared, at 0.2 and 0.3 the one for 0.3 (the
    smallest training target >= eps); against the MLP and the IBP CNN for that eps."""
    # the 0.3 CNN certifies more than everything, the 0.1 CNN less than everything
    data, per_example = hand_data({}, certified_case(500, 900, 800, 700, 600))
    claims = decided(data, per_example)
    for text in (BEATS_MLP, BEATS_IBP):
        assert claims[text].holds is False  # at 0.1 the 0.1 net loses
        assert claims[text].reason.startswith("eps 0.1: RBFI CNN (certified for 0.1)")
        failing = [d for d in claims[text].details if d.startswith(stats.FAILS)]
        assert len(failing) == 1  # 0.2 and 0.3 pair the 0.3 net, which wins
    assert "ReLU CNN (IBP for 0.1)" in claims[BEATS_IBP].evidence.split(";")[0]
    assert "ReLU CNN (IBP for 0.3)" in claims[BEATS_IBP].evidence.split(";")[1]
    # the 0.1 net now wins at 0.1 and the 0.3 net at 0.2 and 0.3: both claims hold
    claims = decided(*hand_data({}, certified_case(950, 900, 800, 700, 600)))
    assert claims[BEATS_MLP].holds is True and claims[BEATS_IBP].holds is True
    assert "McNemar p" in claims[BEATS_MLP].details[0]
    # the IBP CNN for 0.3 certifies the same images as the 0.3 CNN: undecided (no discordant
    # pairs) while the MLP claim still holds; a failed IBP net leaves only its claim undecided
    claims = decided(*hand_data({}, certified_case(950, 900, 800, 700, 900)))
    assert claims[BEATS_MLP].holds is True and claims[BEATS_IBP].holds is None
    collapsed = stats.Doubt(IBP[0.3], "failed", "robust training collapsed")
    claims = decided(*hand_data({}, certified_case(950, 900, 800, 700, 600)), [collapsed])
    assert claims[BEATS_MLP].holds is True and claims[BEATS_IBP].holds is None
    assert "ReLU CNN (IBP for 0.3) failed" in claims[BEATS_IBP].reason
    # only the eps the profile ran: at 0.3 alone the 0.1 net plays no part
    data, per_example = hand_data({}, certified_case(500, 900, 800, 700, 600), eps=(0.3,))
    data["nets"] = {n: e for n, e in data["nets"].items() if n != CNN_CERT[0.1]}
    assert decided(data, per_example)[BEATS_MLP].holds is True
    assert decided({"eps": [], "nets": {}}, {}) == {}  # nothing measured: no claims


# --- end to end on the smoke profile -------------------------------------------------------------


def test_the_item_runs_and_renders_on_the_smoke_profile(tmp_path):
    """A real smoke run of the item (tiny CNNs, 1 epoch, the strong suite on 20 images): every
    net in the table with its numbers measured on the same images, the transfer attack run on
    every CNN, no certified image broken by an attack, the three claims undecided (one epoch:
    no trend, health unknown), its figures; rendering again from the results gives the same."""
    index = reproduce("smoke", tmp_path, only=["conv"], log=lambda line: None)
    entry = index["items"]["conv"]
    assert entry["complete"] and entry["compute_seconds"] >= 0
    assert [c["text"] for c in entry["claims"]] == [KEEPS, BEATS_MLP, BEATS_IBP]
    assert all(c["holds"] is None and c["reason"].startswith("rests on ") for c in entry["claims"])
    page = (tmp_path / "conv" / "conv.md").read_text()
    data = json.loads((tmp_path / "conv" / "data.json").read_text())["data"]
    nets, evals = ITEM.evals(SMOKE)
    assert list(data["nets"]) == list(nets) and data["eps"] == [0.3]
    for name, numbers in data["nets"].items():
        assert f"| {name} (unknown) | " in page
        assert numbers["n"] == 20 and numbers["clean_test"]["n"] == 100
        result = json.loads((evals[name].directory(tmp_path) / "result.json").read_text())
        assert "transfer" in result["results"]
        assert "transfer" not in {skipped["name"] for skipped in result["skipped"]}
        worst = result["worst_case"]["0.3"]["correct"]
        certified = result["certified"]["0.3"]["certified"]
        assert not any(c == "1" and w == "0" for c, w in zip(certified, worst))
        assert result["model"]["description"] == numbers["model"]  # the net evaluated
        assert numbers["parameters"] == sum(
            p.numel() for p in build_model(config_of(nets[name]).model).parameters()
        )
    assert "RBFI(c4k5s3^, 16v, 10^)" in page and "ReLU(c4k5s3, 16, 10)" in page
    assert "### The study's claims beside our numbers" in page
    for figure in ("conv.png", "learning-curves.png"):
        assert (tmp_path / "conv" / figure).read_bytes()[:4] == b"\x89PNG"
    from rbfi.experiments.spec import Results

    again = ITEM.render(Results(tmp_path), SMOKE)
    assert again.markdown == page.rstrip("\n") and again.data == data
