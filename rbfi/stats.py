"""Error bars and verdicts: 95% intervals of accuracies, and claims decided only when the
interval excludes the threshold (or the other side of a comparison).

- One net on n images, k correct: the Clopper-Pearson interval [p_lo, p_hi] (exact: p_lo solves
  P(X >= k | p_lo) = alpha / 2 and p_hi solves P(X <= k | p_hi) = alpha / 2 for X ~ Bin(n, p);
  p_lo = 0 at k = 0, p_hi = 1 at k = n), found by bisection on the exact binomial tail summed
  in log space.
- Several runs (seeds): mean ± sd and the t-interval mean ± t(1 - alpha/2, r - 1) sd / sqrt(r),
  with Student's t distribution function in closed form for integer degrees of freedom
  (Abramowitz & Stegun 26.7.3-4) and its quantile by bisection. The verdicts use the wider of
  that interval and the binomial interval of the mean on n images.
- Two nets on the same images with per-example flags: McNemar's exact test (the discordant
  pairs are Bin(b + c, 1/2) when both nets are equally accurate), and the difference of their
  accuracies with its interval given the discordant pairs (for "A is at most d points below B").

A :class:`Verdict` is "holds" / "does not hold" only when the evidence excludes the other
outcome at the 95% level; otherwise "undecided", with the reason (short enough for a table
cell) and its details (every part of a conjunction, every doubt of a premise). These three words
are the one verdict vocabulary: :data:`WORDS` maps a claim's ``holds`` (True / False / None) to
them. A utility part: it imports nothing else of the package.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LEVEL = 0.95
HOLDS, FAILS, UNDECIDED = "holds", "does not hold", "undecided"
WORDS = {True: HOLDS, False: FAILS, None: UNDECIDED}  # a claim's ``holds`` -> its verdict
SHOWN_PROBLEMS = 3  # a premise's doubts named in a reason (the rest counted)
_BISECTIONS = 60  # interval width 2^-60: below float resolution


# -- the binomial distribution ------------------------------------------------------------


def _log_pmf(j: int, n: int, log_p: float, log_q: float, log_comb_n: float) -> float:
    return log_comb_n - math.lgamma(j + 1) - math.lgamma(n - j + 1) + j * log_p + (n - j) * log_q


def binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Bin(n, p), exact up to rounding (terms summed from the tail end
    nearest k outward in log space until they no longer change the sum)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    mode = (n + 1) * p
    if k < mode:  # the lower tail is the small side: sum k, k-1, ... (decreasing terms)
        return _tail(k, n, p, step=-1)
    return 1.0 - _tail(k + 1, n, p, step=+1)  # the upper tail P(X >= k + 1) is small


def _tail(start: int, n: int, p: float, step: int) -> float:
    """sum of P(X = j) for j = start, start + step, ... while the terms matter (they decrease
    monotonically away from the mode, so the sum stops when a term is < 1e-17 of it)."""
    log_p, log_q, log_comb_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    first = _log_pmf(start, n, log_p, log_q, log_comb_n)
    total, j = 0.0, start
    while 0 <= j <= n:
        term = math.exp(_log_pmf(j, n, log_p, log_q, log_comb_n) - first)
        total += term
        if term < 1e-17 * total:
            break
        j += step
    return math.exp(first) * total


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Bin(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k > (n + 1) * p:
        return _tail(k, n, p, step=+1)
    return 1.0 - _tail(k - 1, n, p, step=-1)


def _bisect(f, target: float, increasing: bool, low: float = 0.0, high: float = 1.0) -> float:
    """The x in [low, high] where the monotone f crosses target."""
    for _ in range(_BISECTIONS):
        mid = 0.5 * (low + high)
        if (f(mid) < target) == increasing:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _check_counts(k: int, n: int) -> None:
    if not (isinstance(k, int) and isinstance(n, int)) or n < 1 or not 0 <= k <= n:
        raise ValueError(f"expected counts 0 <= k <= n with n >= 1, got k={k!r}, n={n!r}")


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a proportion: k successes of n."""
    _check_counts(k, n)
    tail = (1.0 - level) / 2
    low = 0.0 if k == 0 else _bisect(lambda p: binomial_sf(k, n, p), tail, increasing=True)
    high = 1.0 if k == n else _bisect(lambda p: binomial_cdf(k, n, p), tail, increasing=False)
    return low, high


# -- Student's t ----------------------------------------------------------------------------


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with integer ``df`` >= 1, in closed form (A & S 26.7.3-4):
    with theta = atan(t / sqrt(df)), A = P(|T| < |t|) is
    odd df:  (2 / pi) (theta + sin theta (cos theta + (2/3) cos^3 theta + ... +
             (2 4 ... (df-3)) / (1 3 ... (df-2)) cos^(df-2) theta))   (df = 1: 2 theta / pi);
    even df: sin theta (1 + (1/2) cos^2 theta + ... + (1 3 ... (df-3)) / (2 4 ... (df-2))
             cos^(df-2) theta)."""
    if not isinstance(df, int) or df < 1:
        raise ValueError(f"expected an integer df >= 1, got {df!r}")
    theta = math.atan(abs(t) / math.sqrt(df))
    s, c = math.sin(theta), math.cos(theta)
    if df % 2:
        series, term = 0.0, c
        if df > 1:
            series = term
            for j in range(3, df - 1, 2):  # term_j = term_{j-2} (j - 1) / j cos^2
                term *= (j - 1) / j * c * c
                series += term
        a = 2 / math.pi * (theta + s * series)
    else:
        series, term = 1.0, 1.0
        for j in range(2, df - 1, 2):
            term *= (j - 1) / j * c * c
            series += term
        a = s * series
    return 0.5 + math.copysign(a / 2, t)


def t_quantile(q: float, df: int) -> float:
    """The q-quantile of Student's t with ``df`` degrees of freedom (bisection on t_cdf)."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"expected a probability in (0, 1), got {q!r}")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1 - q, df)
    high = 1.0
    while t_cdf(high, df) < q:
        high *= 2
    return _bisect(lambda t: t_cdf(t, df), q, True, 0.0, high)


# -- estimates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """An accuracy with its 95% interval (fractions in [0, 1]). ``n``: test images per run;
    ``runs``: how many runs the value is the mean of; ``sd``: their sd (None for one run)."""

    value: float
    low: float
    high: float
    n: int
    runs: int = 1
    sd: float | None = None
    method: str = "Clopper-Pearson"

    @property
    def digits(self) -> int:
        """Decimals of the percentages: 2 when the interval is narrower than 1 point."""
        return 2 if self.high - self.low < 0.01 else 1

    def interval_text(self) -> str:
        """'75.3-90.6' (in %)."""
        return f"{100 * self.low:.{self.digits}f}-{100 * self.high:.{self.digits}f}"

    def value_text(self) -> str:
        """'84.0' (in %, with the decimals of :meth:`text`)."""
        return f"{100 * self.value:.{self.digits}f}"

    def text(self) -> str:
        """'84.0 [75.3-90.6]' for one run, '94.6 ± 0.2 [92.1-97.0]' over runs (in %); two
        decimals for intervals under a point wide ('0.00 [0.00-0.04]' for 0 of 10,000)."""
        spread = f" ± {100 * self.sd:.{self.digits}f}" if self.sd is not None else ""
        return f"{self.value_text()}{spread} [{self.interval_text()}]"

    def describe(self) -> str:
        """'n = 100: 95% CI 75.3-90.6' (over runs: 'mean of 2 runs on n = 2000 each: ...')."""
        where = f"n = {self.n}" if self.runs == 1 else f"{self.runs} runs on n = {self.n}"
        return f"{where}: 95% CI {self.interval_text()}"

    @classmethod
    def from_json(cls, data: dict) -> Estimate:
        """The inverse of :meth:`to_json`."""
        return cls(
            data["value"],
            data["low"],
            data["high"],
            data["n"],
            data.get("runs", 1),
            data.get("sd"),
            data.get("method", "Clopper-Pearson"),
        )

    def to_json(self) -> dict:
        return {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "runs": self.runs,
            "sd": self.sd,
            "method": self.method,
        }


def counts(accuracy: float, n: int) -> int:
    """k from an accuracy k / n (ValueError unless k / n rounds back to it)."""
    k = round(accuracy * n)
    if abs(k / n - accuracy) > 1e-6:
        raise ValueError(f"accuracy {accuracy!r} is not k / {n} for an integer k")
    return k


def proportion(k: int, n: int, level: float = LEVEL) -> Estimate:
    """k of n correct, with the Clopper-Pearson interval."""
    low, high = clopper_pearson(k, n, level)
    return Estimate(k / n, low, high, n)


def accuracy_estimate(accuracy: float, n: int, level: float = LEVEL) -> Estimate:
    """An accuracy measured on n images (k = accuracy x n), with its exact interval."""
    return proportion(counts(accuracy, n), n, level)


def seed_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, ...]:
    """(mean, sd, low, high) over r >= 2 runs: the t-interval
    mean -+ t(1 - alpha/2, r - 1) sd / sqrt(r)."""
    if len(values) < 2:
        raise ValueError("an interval over runs needs at least 2 runs")
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = t_quantile(1 - (1 - level) / 2, len(values) - 1) * sd / math.sqrt(len(values))
    return mean, sd, mean - half, mean + half


def over_runs(values: Sequence[float], n: int, level: float = LEVEL) -> Estimate:
    """The mean accuracy of several runs, each measured on n images: mean ± sd, and the wider
    of the t-interval over runs (:func:`seed_interval`) and the Clopper-Pearson interval of the
    mean on n images (one run: just the latter)."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("expected at least one value")
    if len(values) == 1:
        return accuracy_estimate(values[0], n, level)
    mean, sd, t_low, t_high = seed_interval(values, level)
    cp_low, cp_high = clopper_pearson(min(n, max(0, round(mean * n))), n, level)
    low, high = max(0.0, min(t_low, cp_low)), min(1.0, max(t_high, cp_high))
    return Estimate(mean, low, high, n, len(values), sd, f"t over {len(values)} runs")


def mcnemar(a: Sequence[bool], b: Sequence[bool]) -> tuple[int, int, float]:
    """McNemar's exact test on paired per-example flags (correct or not) of two nets on the same
    images: (images only a got right, images only b got right, the two-sided p-value
    min(1, 2 P(X <= min of the two)) for X ~ Bin(their sum, 1/2))."""
    if len(a) != len(b):
        raise ValueError(f"paired flags of different lengths {len(a)} and {len(b)}")
    a_only = sum(1 for x, y in zip(a, b) if x and not y)
    b_only = sum(1 for x, y in zip(a, b) if y and not x)
    discordant = a_only + b_only
    p = 1.0 if discordant == 0 else min(1.0, 2 * binomial_cdf(min(a_only, b_only), discordant, 0.5))
    return a_only, b_only, p


def paired_difference(
    a: Sequence[bool], b: Sequence[bool], level: float = LEVEL
) -> tuple[float, float, float]:
    """The difference of two nets' accuracies on the same n images, (a_only - b_only) / n, and
    its interval given the d = a_only + b_only discordant images: a_only ~ Bin(d, pi) and the
    difference is (2 pi - 1) d / n, so pi's Clopper-Pearson interval maps to it (d = 0: exactly
    0). It excludes 0 exactly when McNemar's exact test (:func:`mcnemar`) rejects at 1 - level."""
    a_only, b_only, _ = mcnemar(a, b)
    n, d = len(a), a_only + b_only
    if d == 0:
        return 0.0, 0.0, 0.0
    low, high = clopper_pearson(a_only, d, level)
    return (a_only - b_only) / n, (2 * low - 1) * d / n, (2 * high - 1) * d / n


# -- verdicts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """ "holds", "does not hold" or "undecided"; ``reason``: why, in a sentence that fits a
    table cell; ``details``: what the reason summarises (each part of a conjunction, each doubt
    of a premise), for the item's own page."""

    status: str
    reason: str
    details: tuple[str, ...] = ()
    parts: tuple[Verdict, ...] = ()  # a conjunction's parts (:func:`all_of` flattens them)

    @property
    def holds(self) -> bool | None:
        return {word: holds for holds, word in WORDS.items()}[self.status]


@dataclass(frozen=True)
class Doubt:
    """What puts a claim's premise in doubt: ``subject`` (a net) is ``status`` (e.g.
    "under-trained"), ``detail`` says why (e.g. "seed 0: clean 75.9 < floor 95")."""

    subject: str
    status: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.subject} {self.status}" + (f" ({self.detail})" if self.detail else "")


def _pct(x: float) -> str:
    """0.9 -> '90', 0.005 -> '0.5' (a threshold in %)."""
    return f"{round(100 * x, 6):g}"


def at_least(estimate: Estimate, threshold: float) -> Verdict:
    """The claim "accuracy >= threshold" (strictly above when decided)."""
    if estimate.low > threshold:
        return Verdict(HOLDS, f"{estimate.describe()} above {_pct(threshold)}")
    if estimate.high < threshold:
        return Verdict(FAILS, f"{estimate.describe()} below {_pct(threshold)}")
    return Verdict(UNDECIDED, f"{estimate.describe()} contains {_pct(threshold)}")


def at_most(estimate: Estimate, threshold: float) -> Verdict:
    """The claim "accuracy <= threshold"."""
    flipped = at_least(estimate, threshold)
    status = {HOLDS: FAILS, FAILS: HOLDS, UNDECIDED: UNDECIDED}[flipped.status]
    return Verdict(status, flipped.reason)


def greater(
    a: Estimate,
    b: Estimate,
    names: tuple[str, str] = ("A", "B"),
    flags: tuple[Sequence[bool], Sequence[bool]] | None = None,
    level: float = LEVEL,
    margin: float = 0.0,
) -> Verdict:
    """The claim "a is more accurate than b" (by more than ``margin``). With per-example
    ``flags`` of both nets on the same images (and no margin): McNemar's exact test at
    1 - ``level``; otherwise decided only when the intervals are apart: a.low - b.high >
    margin holds, a.high - b.low < margin does not (conservative: two 95% intervals)."""
    first, second = names
    if flags is not None and margin == 0.0:
        a_only, b_only, p = mcnemar(*flags)
        why = (
            f"{first} {a.text()} vs {second} {b.text()}, paired on n = {len(flags[0])}: "
            f"{first} alone right on {a_only}, {second} alone on {b_only}, McNemar p "
            + (f"= {p:.2g}" if p > 1e-300 else "< 1e-300")
        )
        if p < 1 - level:
            return Verdict(HOLDS if a_only > b_only else FAILS, why)
        return Verdict(UNDECIDED, why + f" (not below {1 - level:.2g})")
    by = f" by more than {_pct(margin)} points" if margin else ""
    why = f"{first} {a.text()} vs {second} {b.text()}"
    if a.low - b.high > margin:
        return Verdict(HOLDS, why + f": 95% CIs apart{by}")
    if a.high - b.low < margin:
        return Verdict(FAILS, why + (": 95% CIs apart" if not margin else f": not{by}"))
    return Verdict(UNDECIDED, why + (": 95% CIs overlap" if not margin else f": maybe{by}"))


def not_worse(
    a: Estimate,
    b: Estimate,
    margin: float,
    flags: tuple[Sequence[bool], Sequence[bool]],
    names: tuple[str, str] = ("A", "B"),
    level: float = LEVEL,
) -> Verdict:
    """The claim "a is at most ``margin`` less accurate than b" on the same images (a
    non-inferiority test): holds when the paired difference's interval
    (:func:`paired_difference`) lies above -margin, does not hold when it lies below it."""
    diff, low, high = paired_difference(*flags, level)
    why = (
        f"{names[0]} {a.text()} vs {names[1]} {b.text()}, paired on n = {len(flags[0])}: "
        f"difference {100 * diff:+.1f} points [{100 * low:+.1f}, {100 * high:+.1f}]"
    )
    if low > -margin:
        return Verdict(HOLDS, why + f" above -{_pct(margin)}")
    if high < -margin:
        return Verdict(FAILS, why + f" below -{_pct(margin)}")
    return Verdict(UNDECIDED, why + f" contains -{_pct(margin)}")


def within(a: Estimate, b: Estimate, margin: float, names: tuple[str, str] = ("A", "B")) -> Verdict:
    """The claim "a and b differ by at most ``margin``": holds when every pair of values in
    the two intervals is within it, does not hold when the intervals are more than it apart."""
    widest = max(a.high - b.low, b.high - a.low)
    gap = max(a.low - b.high, b.low - a.high)
    why = f"{names[0]} {a.text()} vs {names[1]} {b.text()}, margin {_pct(margin)} points"
    if widest <= margin:
        return Verdict(HOLDS, why + ": the intervals lie within it")
    if gap > margin:
        return Verdict(FAILS, why + ": the intervals are further apart")
    return Verdict(UNDECIDED, why + ": the intervals allow both")


_PLURAL = {HOLDS: "hold", FAILS: "do not hold", UNDECIDED: "undecided"}


def all_of(verdicts: Iterable[Verdict]) -> Verdict:
    """A conjunction: does not hold if any part does not, holds if every part does, else
    undecided. Conjunctions among the parts count by their own parts. Its reason is the
    deciding part's (with several, the first, and how many there are); its details every part's
    status and reason."""
    verdicts = [part for v in verdicts for part in (v.parts or (v,))]
    if len(verdicts) == 1:
        return verdicts[0]
    if not verdicts:
        return Verdict(HOLDS, "no parts")
    status = next((s for s in (FAILS, UNDECIDED) if any(v.status == s for v in verdicts)), HOLDS)
    deciding = [v for v in verdicts if v.status == status]
    reason = deciding[0].reason
    if len(deciding) > 1:
        reason = f"{len(deciding)} of {len(verdicts)} parts {_PLURAL[status]}, first: {reason}"
    details = tuple(f"{v.status}: {v.reason}" for v in verdicts)
    details += tuple(d for v in verdicts for d in v.details)
    return Verdict(status, reason, details, tuple(verdicts))


def premise(verdict: Verdict, doubts: Sequence[Doubt], unless: str | None = None) -> Verdict:
    """``verdict`` unless its premise is in doubt: any ``doubts`` (e.g. the Sigmoid net is
    under-trained) make it undecided, naming them. ``unless``: a status that more training
    cannot overturn (e.g. "holds" for "clean accuracy above 90%": an under-trained net only gets
    better), kept as it is."""
    doubts = list(doubts)
    if not doubts or verdict.status == unless:
        return verdict
    shown = ", ".join(f"{d.subject} {d.status}" for d in doubts[:SHOWN_PROBLEMS])
    if len(doubts) > SHOWN_PROBLEMS:
        shown += f" and {len(doubts) - SHOWN_PROBLEMS} more"
    details = tuple(f"in doubt: {d}" for d in doubts)
    alone = f"the numbers alone: {verdict.status}"  # and their parts, where they have parts
    details += ((alone,) if verdict.details else (f"{alone}: {verdict.reason}",)) + verdict.details
    return Verdict(UNDECIDED, f"rests on {shown} (the numbers alone: {verdict.status})", details)
