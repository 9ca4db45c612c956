"""Intervals and verdicts against hand-worked cases, closed forms and brute force."""

import math
from decimal import Decimal, localcontext
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


def upper_tail_decimal(k: int, n: int, p: float, digits: int = 50) -> Decimal:
    """P(X >= k), X ~ Bin(n, p), summed term by term with exact binomial coefficients in
    50-digit decimal arithmetic: independent of the log-space tails of rbfi.stats."""
    with localcontext() as ctx:
        ctx.prec = digits
        p, q = Decimal(p), 1 - Decimal(p)
        return sum((math.comb(n, j) * p**j * q ** (n - j) for j in range(k, n + 1)), Decimal(0))


def test_clopper_pearson_at_10000_solves_its_defining_equations():
    """At n = 10,000 the ends solve P(X >= k | low) = P(X <= k | high) = 0.025 (checked by
    exact summation), the interval of 678 mirrors that of 9322, and its width is close to the
    normal approximation's 2 x 1.96 sqrt(p (1 - p) / n)."""
    k, n = 9322, 10_000
    low, high = stats.clopper_pearson(k, n)
    mirrored = stats.clopper_pearson(n - k, n)
    assert float(upper_tail_decimal(k, n, low)) == pytest.approx(0.025, abs=1e-9)
    assert float(1 - upper_tail_decimal(k + 1, n, high)) == pytest.approx(0.025, abs=1e-9)
    assert (low, high) == (
        pytest.approx(1 - mirrored[1], abs=1e-12),
        pytest.approx(1 - mirrored[0], abs=1e-12),
    )
    p = k / n
    assert high - low == pytest.approx(2 * 1.96 * math.sqrt(p * (1 - p) / n), rel=0.03)


def test_quantiles_against_tables():
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
    h, f, u = (stats.Verdict(s, f"part {s}") for s in (HOLDS, FAILS, UNDECIDED))
    assert stats.all_of([h, h]).status == HOLDS
    assert stats.all_of([h, u]).status == UNDECIDED and stats.all_of([u, f]).status == FAILS
    assert stats.all_of([h]) is h  # one part: that part
    # several deciding parts: the first one's reason and their count; every part in the details
    both = stats.all_of([u, h, stats.Verdict(UNDECIDED, "second")])
    assert both.reason == "2 of 3 parts undecided, first: part undecided"
    assert both.details == ("undecided: part undecided", "holds: part holds", "undecided: second")
    assert stats.all_of([h, f]).reason == "part does not hold"  # the one deciding part
    doubt = stats.Doubt("Sigmoid", "under-trained", "seed 0: clean 78.0 < floor 95")
    v = stats.premise(f, [doubt])
    assert v.status == UNDECIDED
    assert v.reason == "rests on Sigmoid under-trained (the numbers alone: does not hold)"
    assert "in doubt: Sigmoid under-trained (seed 0: clean 78.0 < floor 95)" in v.details
    assert "the numbers alone: does not hold: part does not hold" in v.details
    many = stats.premise(f, [stats.Doubt(f"net {i}", "failed") for i in range(5)])
    assert "net 2 failed and 2 more" in many.reason and "net 3" not in many.reason
    assert len([d for d in many.details if d.startswith("in doubt")]) == 5
    assert stats.premise(f, []) is f
    assert stats.premise(h, [stats.Doubt("RBFI", "under-trained")], unless=HOLDS) is h
    assert (
        stats.premise(f, [stats.Doubt("RBFI", "under-trained")], unless=HOLDS).status == UNDECIDED
    )


def test_verdict_words_and_estimate_json_round_trip():
    """One vocabulary: WORDS maps a claim's holds to the status words, Verdict.holds back."""
    assert stats.WORDS == {True: HOLDS, False: FAILS, None: UNDECIDED}
    for holds, word in stats.WORDS.items():
        assert stats.Verdict(word, "").holds is holds
    for estimate in (stats.proportion(84, 100), stats.over_runs([0.9, 0.92, 0.95], 1000)):
        assert stats.Estimate.from_json(estimate.to_json()) == estimate
    assert stats.proportion(84, 100).value_text() == "84.0"


def test_comparison_by_a_margin():
    pseudo, true = stats.proportion(940, 1000), stats.proportion(700, 1000)
    assert stats.greater(pseudo, true, margin=0.02).status == HOLDS
    close = stats.proportion(9400, 10_000), stats.proportion(9390, 10_000)
    assert stats.greater(*close, margin=0.02).status == FAILS  # 94.5 - 93.4 < 2 points
    assert stats.greater(pseudo, stats.proportion(915, 1000), margin=0.02).status == UNDECIDED
