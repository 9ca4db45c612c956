"""Intervals and verdicts against hand-worked cases, closed forms and brute force."""

import math
import time
from fractions import Fraction

import pytest

from rbfi import stats
from rbfi.stats import FAILS, HOLDS, UNDECIDED


def exact_cdf(k: int, n: int, p: Fraction) -> Fraction:
    """P(X <= k), X ~ Bin(n, p), in exact rational arithmetic."""
    return sum((math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1)), Fraction(0))


@pytest.mark.parametrize("n", [1, 7, 40])
def test_binomial_tails_match_exact_sums(n):
    for p in (Fraction(1, 1000), Fraction(3, 10), Fraction(1, 2), Fraction(97, 100)):
        for k in range(n + 1):
            want = exact_cdf(k, n, p)
            assert stats.binomial_cdf(k, n, float(p)) == pytest.approx(float(want), abs=1e-12)
            upper = 1 - exact_cdf(k - 1, n, p) if k > 0 else Fraction(1)
            assert stats.binomial_sf(k, n, float(p)) == pytest.approx(float(upper), abs=1e-12)


def test_clopper_pearson_84_of_100():
    low, high = stats.clopper_pearson(84, 100)
    assert (round(100 * low, 1), round(100 * high, 1)) == (75.3, 90.6)
    # the defining equations, checked in exact arithmetic at the returned ends
    assert float(1 - exact_cdf(83, 100, Fraction(low))) == pytest.approx(0.025, abs=1e-9)
    assert float(exact_cdf(84, 100, Fraction(high))) == pytest.approx(0.025, abs=1e-9)


@pytest.mark.parametrize("n", [1, 10, 100, 10_000])
def test_clopper_pearson_edges_in_closed_form(n):
    # k = 0: P(X <= 0 | p) = (1 - p)^n = alpha/2; k = n: P(X >= n | p) = p^n = alpha/2
    assert stats.clopper_pearson(0, n) == (0.0, pytest.approx(1 - 0.025 ** (1 / n), abs=1e-12))
    assert stats.clopper_pearson(n, n) == (pytest.approx(0.025 ** (1 / n), abs=1e-12), 1.0)


def test_clopper_pearson_is_fast_and_symmetric_at_10000():
    start = time.perf_counter()
    low, high = stats.clopper_pearson(9322, 10_000)
    mirrored = stats.clopper_pearson(678, 10_000)
    assert time.perf_counter() - start < 1.0
    assert (low, high) == (
        pytest.approx(1 - mirrored[1], abs=1e-12),
        pytest.approx(1 - mirrored[0]),
    )
    assert low < 0.9322 < high and high - low == pytest.approx(2 * 1.96 * 0.0025, rel=0.03)


def test_wilson_by_hand():
    # 84/100, z = 1.959964, z^2 = 3.841459: centre (84 + 1.920729) / 103.841459 = 0.827422;
    # half-width 1.959964 / 103.841459 x sqrt(84 x 16 / 100 + 0.960365) = 0.071625
    low, high = stats.wilson(84, 100)
    assert low == pytest.approx(0.827422 - 0.071625, abs=2e-6)
    assert high == pytest.approx(0.827422 + 0.071625, abs=2e-6)
    assert stats.wilson(0, 10)[0] == 0.0 and stats.wilson(10, 10)[1] == 1.0


def test_quantiles_against_tables():
    assert stats.normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    table = {1: 12.706, 2: 4.303, 3: 3.182, 5: 2.571, 10: 2.228, 20: 2.086, 30: 2.042, 120: 1.980}
    for df, t in table.items():
        assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=5e-4)
    assert stats.t_quantile(0.025, 4) == pytest.approx(-2.776, abs=5e-4)
    # closed forms: df 1 is Cauchy (F(t) = 1/2 + atan(t) / pi), df 2: 1/2 + t / (2 sqrt(2 + t^2))
    for t in (-3.0, -0.5, 0.0, 0.7, 10.0):
        assert stats.t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi, abs=1e-14)
        assert stats.t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)), abs=1e-14)


def test_interval_over_runs():
    mean, sd, low, high = stats.seed_interval([0.90, 0.92, 0.94])
    assert (mean, sd) == (pytest.approx(0.92), pytest.approx(0.02))
    assert high - mean == pytest.approx(4.303 * 0.02 / math.sqrt(3), abs=1e-4)
    # two equal runs: no spread, the binomial interval of the mean on n images remains
    same = stats.over_runs([0.84, 0.84], 100)
    assert (same.low, same.high) == stats.clopper_pearson(84, 100) and same.sd == 0
    assert stats.over_runs([0.84], 100) == stats.proportion(84, 100)
    with pytest.raises(ValueError, match="not k / 100"):
        stats.accuracy_estimate(0.8412, 100)


def test_verdict_against_a_threshold():
    e = stats.proportion(84, 100)
    v = stats.at_least(e, 0.90)
    assert v.status == UNDECIDED and v.holds is None
    assert v.reason == "n = 100: 95% CI 75.3-90.6 contains 90"
    assert stats.at_least(e, 0.75).status == HOLDS  # 75.3 > 75
    assert stats.at_least(e, 0.91).status == FAILS  # 90.6 < 91
    assert stats.at_most(e, 0.91).status == HOLDS and stats.at_most(e, 0.9).status == UNDECIDED
    # the same 84% on 10,000 images decides it: 95% CI 83.3-84.7
    assert stats.at_least(stats.proportion(8400, 10_000), 0.85).status == FAILS
    assert e.text() == "84.0 [75.3-90.6]"
    assert stats.proportion(0, 10_000).text() == "0.00 [0.00-0.04]"  # 1 - 0.025^(1/10000)


def test_mcnemar_by_hand():
    # a alone right on 10 images, b alone on 2, both right on 80, both wrong on 8:
    # p = 2 P(X <= 2 | 12, 1/2) = 2 (1 + 12 + 66) / 4096
    a = [True] * 10 + [False] * 2 + [True] * 80 + [False] * 8
    b = [False] * 10 + [True] * 2 + [True] * 80 + [False] * 8
    assert stats.mcnemar(a, b) == (10, 2, pytest.approx(158 / 4096))
    ea, eb = stats.proportion(sum(a), 100), stats.proportion(sum(b), 100)
    assert stats.greater(ea, eb, ("A", "B"), flags=(a, b)).status == HOLDS
    assert stats.greater(eb, ea, ("B", "A"), flags=(b, a)).status == FAILS
    # without the pairing the intervals of 90/100 and 82/100 overlap: undecided
    unpaired = stats.greater(ea, eb, ("A", "B"))
    assert unpaired.status == UNDECIDED and "overlap" in unpaired.reason
    assert stats.mcnemar(a, a) == (0, 0, 1.0)


def test_comparison_and_equivalence_without_pairs():
    high, low = stats.proportion(950, 1000), stats.proportion(780, 1000)
    assert stats.greater(high, low).status == HOLDS and stats.greater(low, high).status == FAILS
    assert stats.within(high, low, 0.01).status == FAILS  # 17 points apart
    close = stats.proportion(9460, 10_000), stats.proportion(9470, 10_000)
    assert stats.within(*close, 0.02).status == HOLDS  # both intervals within +-0.5 points
    assert stats.within(*close, 0.005).status == UNDECIDED


def test_conjunction_and_premise():
    h, f, u = (stats.Verdict(s, s) for s in (HOLDS, FAILS, UNDECIDED))
    assert stats.all_of([h, h]).status == HOLDS
    assert stats.all_of([h, u]).status == UNDECIDED and stats.all_of([u, f]).status == FAILS
    v = stats.premise(f, ["Sigmoid seed 0 under-trained: clean 78.0 below the floor 95"])
    assert v.status == UNDECIDED and "Sigmoid seed 0 under-trained" in v.reason
    assert stats.premise(f, []) is f
    assert stats.premise(h, ["RBFI under-trained: still rising"], unless=HOLDS) is h
    assert stats.premise(f, ["RBFI under-trained"], unless=HOLDS).status == UNDECIDED


def test_comparison_by_a_margin():
    pseudo, true = stats.proportion(940, 1000), stats.proportion(700, 1000)
    assert stats.greater(pseudo, true, margin=0.02).status == HOLDS
    close = stats.proportion(9400, 10_000), stats.proportion(9390, 10_000)
    assert stats.greater(*close, margin=0.02).status == FAILS  # 94.5 - 93.4 < 2 points
    assert stats.greater(pseudo, stats.proportion(915, 1000), margin=0.02).status == UNDECIDED
