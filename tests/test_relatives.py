"""The relatives study (issue 26) and Sec. 6.9's RBF init: the item end to end on the smoke
profile, its claims on hand-made numbers (decided both ways and undecided), learning curves
against minutes, the extrapolation on synthetic curves with a known answer, the equal-compute
shape against brute force."""

from __future__ import annotations

import json
import math

import pytest

import rbfi.experiments.studies.compute as compute
from rbfi.cli import main
from rbfi.experiments.items import ITEMS
from rbfi.experiments.paper.baselines import ITEM as BASELINES
from rbfi.experiments.paper.common import strong_eval
from rbfi.experiments.paper.sec69 import Section69
from rbfi.experiments.profiles import PROFILES, STANDARD, RelativesOptions
from rbfi.experiments.studies.relatives import (
    LINF_V1,
    LINF_V2,
    LINF_WIDE,
    RBFI,
    RBFI_U1,
    RBFI_WIDE,
    Relatives,
    evaluation,
    units,
)
from rbfi.models import ModelConfig
from rbfi.stats import proportion
from rbfi.training import TrainConfig
from tests.test_reproduce import ROOT

# -- the item end to end ---------------------------------------------------------------------


def test_relatives_on_the_smoke_profile_end_to_end(tmp_path, capsys):
    """`rbfi reproduce --profile smoke --only relatives` trains the six nets, evaluates them,
    renders the page, its three claims, its data and its figure; the numbers agree with the
    jobs' own files (compute minutes from the checkpoints' records, the l_inf-dist nets'
    certified flags the per-image OR of the two methods); a second run runs nothing."""
    out = tmp_path / "smoke"
    argv = ["reproduce", "--profile", "smoke", "--only", "relatives", "--out", str(out)]
    assert main(argv) == 0
    index = json.loads((out / "index.json").read_text())
    entry = index["items"]["relatives"]
    assert entry["complete"] and len(entry["claims"]) == 3 and entry["study"] is True
    assert (out / "summary.md").read_text().count("(the study's claim)") == 3
    assert index["profile"]["relatives"]["wide"] == [2, 24]
    page = (out / "relatives" / "relatives.md").read_text()
    assert "### The study's claims beside our numbers" in page
    assert "extrapolated, not measured" in page and "None of these numbers was measured" in page
    png = (out / "relatives" / "relatives-minutes.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((out / "relatives" / "data.json").read_text())["data"]
    nets = data["nets"]
    assert list(nets) == [RBFI, RBFI_U1, LINF_V2, LINF_V1, LINF_WIDE, RBFI_WIDE]
    profile = PROFILES["smoke"]
    for role, unit in units(profile).items():
        saved = json.loads((out / "jobs" / unit.job.id / "checkpoint.json").read_text())
        seconds = sum(m["train_seconds"] + m["eval_seconds"] for m in saved["metrics"])
        assert nets[role]["minutes"] == pytest.approx(seconds / 60)
        assert nets[role]["n"] == profile.relatives.strong_limit
        result = json.loads(
            (out / "jobs" / evaluation(profile, unit).id / "result.json").read_text()
        )
        for eps in ("0.1", "0.3"):
            row = result["certified"][eps]
            if unit.job.payload["train"]["model"]["arch"] == "linf-dist":
                methods = [row["methods"][m]["certified"] for m in ("interval", "margin")]
                either = "".join("1" if "1" in pair else "0" for pair in zip(*methods))
                assert row["certified"] == either
                assert set(nets[role]["by_method"]) == {"interval", "margin"}
            else:
                assert set(nets[role]["by_method"]) == {"interval"}
            k = row["certified"].count("1")
            assert nets[role]["certified"][eps]["value"] == k / len(row["certified"])
    capsys.readouterr()
    assert main(argv) == 0
    assert "0 to run" in capsys.readouterr().err


def test_standard_relatives_reuse_the_baselines_certified_rbfi_net_and_its_evaluation():
    """Under the standard profile the study's RBFI net is the baselines item's certified net
    and its evaluation the baselines' strong-suite job (trained and run once, both committed);
    every profile but smoke evaluates on at least 500 images."""
    nets = units(STANDARD)
    baseline = BASELINES.nets(STANDARD)["RBFI (certified training)"]
    assert nets[RBFI].job.id == baseline.id
    assert evaluation(STANDARD, nets[RBFI]).id == strong_eval(STANDARD, baseline).id
    committed = ROOT / "results" / "paper-standard" / "jobs"
    assert nets[RBFI].job.is_done(committed.parent)
    assert evaluation(STANDARD, nets[RBFI]).is_done(committed.parent)
    assert "the same job" in nets[RBFI].recipe and "the same job" not in nets[RBFI_U1].recipe
    for name, profile in PROFILES.items():
        assert name == "smoke" or profile.relatives.strong_limit >= 500
    assert "relatives" in ITEMS and list(ITEMS)[-1] == "relatives"
    with pytest.raises(ValueError, match="must hold 0.1 and 0.3"):
        RelativesOptions(eps=(0.1, 0.2))


# -- the claims on hand-made numbers ---------------------------------------------------------


def entry(
    label: str,
    right: dict[str, int],
    n: int = 1000,
    minutes: float = 20.0,
    status: str = "converged",
) -> dict:
    """A net's summary as summarise() makes it, with ``right[eps]`` of n images certified."""
    return {
        "label": label,
        "n": n,
        "minutes": minutes,
        "certified": {e: proportion(k, n).to_json() for e, k in right.items()},
        "healthy": status == "converged",
        "health": {"status": status, "short": "" if status == "converged" else "reasons"},
    }


def flags_of(nets: dict) -> dict:
    """The first k images certified, for every net: paired flags whose discordant pairs all
    favour the more accurate net."""
    return {
        role: {
            "certified": {
                e: [i < round(v["value"] * v["n"]) for i in range(v["n"])]
                for e, v in e_["certified"].items()
            }
        }
        for role, e_ in nets.items()
    }


def study(
    rbfi=(900, 960),
    v2=(500, 700),
    v1=(600, 800),
    wide=(550, 750),
    rbfi_wide=(910, 965),
    u1=(700, 900),
    changes: dict | None = None,
) -> dict:
    """(eps 0.3, eps 0.1) counts of each net; ``changes``: role -> entry fields to set."""
    counts = {
        RBFI: rbfi,
        RBFI_U1: u1,
        LINF_V2: v2,
        LINF_V1: v1,
        LINF_WIDE: wide,
        RBFI_WIDE: rbfi_wide,
    }
    nets = {role: entry(role, {"0.3": c[0], "0.1": c[1]}) for role, c in counts.items() if c}
    for role, fields in (changes or {}).items():
        nets[role].update(fields)
    return nets


def verdicts(nets: dict) -> list:
    claims = Relatives.claims({"nets": nets}, flags_of(nets))
    return [(c.holds, c.reason) for c in claims]


def test_claims_decided_both_ways_and_undecided():
    """Hand-made numbers: RBFI ahead of every l_inf-dist net at both radii and of its u = 1
    ablation: all three hold; an l_inf-dist net ahead at 0.3: that claim does not hold; equal
    numbers, a profile without the wide shape, unequal compute in the winner's favour, a net
    still learning or every l_inf-dist net failed: undecided; a failed v2 net is left out."""
    holds = verdicts(study())
    assert [h for h, _ in holds] == [True, True, True]
    lost = verdicts(study(v1=(950, 800)))  # l_inf-dist v1 certifies more at 0.3
    assert [h for h, _ in lost] == [False, True, True]
    assert "McNemar" in lost[0][1]
    tie = verdicts(study(rbfi=(600, 960), v1=(600, 800), wide=(500, 700), rbfi_wide=(600, 965)))
    assert tie[0][0] is None and "McNemar p = 1" in tie[0][1]
    narrow = verdicts(study(wide=None, rbfi_wide=None))
    assert narrow[0][0] is None and "equal compute: not measured in this profile" in narrow[0][1]
    cheap = verdicts(
        study(changes={LINF_WIDE: {"minutes": 10.0}})
    )  # half RBFI's minutes, and it lost
    assert cheap[0][0] is None and "compute not equal" in cheap[0][1]
    costly = verdicts(
        study(changes={LINF_WIDE: {"minutes": 40.0}})
    )  # twice the minutes, still lost
    assert costly[0][0] is True
    rising = verdicts(
        study(
            changes={RBFI: {"healthy": False, "health": {"status": "under-trained", "short": "+1"}}}
        )
    )
    assert [h for h, _ in rising] == [None, None, None]
    assert all("rests on rbfi under-trained" in r for _, r in rising)
    failed = {"healthy": False, "health": {"status": "failed", "short": "near chance"}}
    gone = study(changes={LINF_V2: failed})
    claims = Relatives.claims({"nets": gone}, flags_of(gone))
    assert claims[0].holds is True and any("left out" in d for d in claims[0].details)
    none_learned = verdicts(study(changes={LINF_V2: failed, LINF_V1: failed}))
    assert none_learned[0][0] is None and "every l_inf-dist net failed" in none_learned[0][1]
    ablation = verdicts(study(changes={RBFI_U1: failed}))
    assert ablation[2][0] is None and "rests on" in ablation[2][1]
    better_without_u = verdicts(study(u1=(950, 990)))
    assert better_without_u[2][0] is False


def test_sec69_claim_holds_only_under_every_rbf_init():
    """Sec. 6.9 on hand-made numbers: RBF nets at chance under both inits: holds; RBF with u of
    order 1 / sqrt(n) more accurate than RBFI: does not hold; as accurate: undecided; the
    evidence names the init of each RBF net."""

    def clean(rbf_new, rbf_old=0.1, rbfi=0.97, n=10_000):
        def est(v):
            return proportion(round(v * n), n)

        out = {}
        for depth in ("shallow", "deep"):
            out[f"rbf {depth}"] = est(rbf_new)
            out[f"rbf {depth}, rbfi init"] = est(rbf_old)
            out[f"rbfi {depth}"] = est(rbfi)
        return out

    inits = {
        k: ("rbfi" if k.startswith("rbfi") or "rbfi init" in k else "sqrt-n") for k in clean(0.1)
    }
    bound = {"rbf shallow": 10.0, "rbfi shallow": 1.0}

    def verdict(**kw):
        return Section69.claims(clean(**kw), bound, [], inits)[0]

    at_chance = verdict(rbf_new=0.1)
    assert at_chance.holds is True
    assert "u init sqrt-n" in at_chance.evidence and "u init rbfi" in at_chance.evidence
    assert verdict(rbf_new=0.985).holds is False
    assert verdict(rbf_new=0.97).holds is None


# -- curves against minutes ------------------------------------------------------------------


def test_curves_against_minutes_sum_train_and_eval_seconds():
    metrics = [
        {"train_seconds": 30, "eval_seconds": 6, "test_accuracy": 0.5, "test_certified_0.3": 0.1},
        {
            "train_seconds": 60,
            "eval_seconds": 0,
            "test_accuracy": 0.6,
            "test_accuracy_p_inf": 0.55,
            "test_certified_0.1": 0.4,
        },
        {
            "train_seconds": 54,
            "eval_seconds": 6,
            "test_accuracy": 0.7,
            "test_accuracy_p_inf": 0.7,
            "test_certified_0.3": 0.3,
            "test_certified_0.1": 0.5,
        },
    ]
    assert compute.minutes(metrics) == pytest.approx([0.6, 1.6, 2.6])
    curves = compute.minutes_curves(metrics)
    assert curves["clean"] == ([0.6, 1.6, 2.6], [0.5, 0.55, 0.7])  # p = inf where recorded
    assert curves["certified 0.3"][0] == pytest.approx([0.6, 2.6])
    assert curves["certified 0.3"][1] == [0.1, 0.3]
    assert curves["certified 0.1"][0] == pytest.approx([1.6, 2.6])


# -- the extrapolation -----------------------------------------------------------------------


def power_law(ts, a=0.5, b=0.4, wiggle=0.0):
    """Accuracies of error a t^-b, times exp(+-wiggle) alternating (a known deterministic
    noise)."""
    return [1 - a * t**-b * math.exp(wiggle * (-1) ** i) for i, t in enumerate(ts)]


def test_power_law_fit_recovers_a_known_curve():
    """Exact e = 0.5 t^-0.4: the fit gives b = 0.4, the accuracy at any t and the minutes to
    an accuracy (0.5 / e*)^(1 / 0.4) with a degenerate interval; with noise the 95% intervals
    contain the truth; fit_from keeps only the later records."""
    ts = [float(t) for t in range(1, 13)]
    fit = compute.fit_power_law(ts, power_law(ts), fit_from=0.0)
    assert fit.exponent == pytest.approx(0.4) and fit.n == 12
    assert fit.accuracy_at(100.0) == pytest.approx(1 - 0.5 * 100**-0.4)
    truth = (0.5 / 0.05) ** (1 / 0.4)  # minutes to 95% accuracy
    estimate, low, high = fit.minutes_to(0.95)
    assert estimate == pytest.approx(truth) and low == pytest.approx(truth, rel=1e-6)
    assert high == pytest.approx(truth, rel=1e-6)
    later = compute.fit_power_law(ts, power_law(ts), fit_from=0.5)
    assert later.n == 6 and later.first == 7.0
    noisy = compute.fit_power_law(ts, power_law(ts, wiggle=0.05), fit_from=0.0)
    low, high = noisy.exponent_interval()
    assert low < 0.4 < high and high - low < 0.2
    estimate, low, high = noisy.minutes_to(0.95)
    assert low < truth < high and math.isfinite(high)
    lo_acc, hi_acc = noisy.accuracy_interval_at(100.0)
    assert lo_acc < 1 - 0.5 * 100**-0.4 < hi_acc
    assert isinstance(compute.fit_power_law(ts[:2], power_law(ts[:2])), str)  # too few


def test_a_rising_error_extrapolates_to_accuracy_zero_never_below():
    """Error 0.5 t^0.1 (rising, as in a net whose certified accuracy falls while its eps
    ramps): at t = 10^4 the fitted error 0.5 * 10^0.4 = 1.26 > 1 is read as 1 (accuracy 0),
    its interval stays in [0, 1]; where the error is below 1 the exact value is kept."""
    ts = [float(t) for t in range(1, 13)]
    rising = compute.fit_power_law(ts, power_law(ts, b=-0.1, wiggle=0.02), fit_from=0.0)
    assert rising.exponent < 0
    assert rising.accuracy_at(1e4) == 0.0
    low, high = rising.accuracy_interval_at(1e4)
    assert 0.0 <= low <= high <= 1.0
    assert rising.accuracy_at(100.0) == pytest.approx(1 - 0.5 * 100**0.1, abs=0.02)


def test_minutes_interval_is_where_the_band_holds_the_target():
    """The interval of the minutes to a target is exactly the set of t where the fitted line's
    95% band contains the target (checked on a fine grid); a flat curve's is unbounded and a
    rising error never gets there."""
    ts = [float(t) for t in range(2, 14)]
    fit = compute.fit_power_law(ts, power_law(ts, wiggle=0.08), fit_from=0.0)
    target = 0.9
    _, low, high = fit.minutes_to(target)
    y = math.log(1 - target)
    inside = []
    for k in range(4000):
        t = math.exp(math.log(1.0) + k * (math.log(1e4) / 4000))
        d = math.log(t) - fit.center
        half = fit.q * math.sqrt(fit.s2 * (1 / fit.n + d * d / fit.sxx))
        if abs(fit.alpha + fit.beta * d - y) <= half:
            inside.append(t)
    assert inside[0] == pytest.approx(low, rel=0.01) and inside[-1] == pytest.approx(high, rel=0.01)
    flat = [0.8 + 0.01 * (-1) ** i for i in range(len(ts))]
    _, _, high = compute.fit_power_law(ts, flat, fit_from=0.0).minutes_to(0.95)
    assert math.isinf(high)
    rising = [0.9 - 0.01 * t for t in ts]
    assert math.isinf(compute.fit_power_law(ts, rising, fit_from=0.0).minutes_to(0.95)[0])


# -- the equal-compute shape -----------------------------------------------------------------


def test_pick_shape_matches_brute_force(capsys):
    """Seconds per epoch 2 + 1e-5 M measured on two shapes: the fit recovers both constants and
    the widest width per depth under a budget is the brute-force answer; the tool prints the
    pick and refuses bad input in one line."""

    def cost(layers):
        return 2 + 1e-5 * compute.layer_products(layers)

    measured = {(512, 512, 512, 10): cost((512, 512, 512, 10)), (128, 10): cost((128, 10))}
    c0, c1 = compute.fit_epoch_cost(measured)
    assert c0 == pytest.approx(2) and c1 == pytest.approx(1e-5)
    budget, epochs, widths = 30.0, 20, range(64, 4097, 64)
    choice = compute.pick_shape(budget, epochs, measured, range(2, 6), widths)
    best_m = -1
    for depth in range(2, 6):
        fits = [w for w in widths if epochs * cost((w,) * depth + (10,)) / 60 <= budget]
        assert choice.per_depth[depth][0] == max(fits)
        m = compute.layer_products((max(fits),) * depth + (10,))
        if m > best_m:
            best_m, best = m, (depth, max(fits))
    assert choice.shape == best
    from tools.equal_compute import main as tool

    assert tool(["512,512,512,10=95", "--budget", "23.4", "--epochs", "30"]) == 0
    assert "pick: " in capsys.readouterr().out
    assert tool(["512,512,512,10=-1", "--budget", "23.4", "--epochs", "30"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("equal_compute: error:") and err.count("\n") == 1


def test_linf_dist_cost_is_rbfi_steps_times_the_layer_ratio_at_each_p():
    """The cost model: an l_inf-dist net's training job costs the RBFI net's of the same shape
    and epochs times the fractions of the steps at each p weighted by the layer benchmark's
    ratios (p = 8: 2.1, annealed: 5.4, inf: 0.71)."""
    from rbfi.experiments.paper.common import LINF_STEP_COST, linf_step_factor, net

    linf = net(STANDARD, "linf-dist", 0, epochs=30)
    rbfi = net(STANDARD, "rbfi", 0, epochs=30)
    a, b = 25 / 450, 400 / 450
    expected = a * 2.1 + (b - a) * 5.4 + (1 - b) * 0.71
    assert linf_step_factor(TrainConfig.from_json(linf.payload["train"])) == pytest.approx(expected)
    assert linf.cost / rbfi.cost == pytest.approx(expected)
    stays = TrainConfig(model=ModelConfig("linf-dist"), linf_p_end=50.0, linf_p_anneal=(0.0, 0.5))
    assert linf_step_factor(stays) == pytest.approx(0.5 * 5.4 + 0.5 * LINF_STEP_COST["integer"])
