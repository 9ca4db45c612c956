"""Compute as the axis: learning curves against CPU minutes, their extrapolation, and the net
shape that fits a budget of minutes.

- **Minutes** of a run: the cumulative ``train_seconds + eval_seconds`` of its per-epoch records
  (``metrics.jsonl``, the checkpoint's ``metrics``), / 60: what the epochs cost on the machine
  that ran them, the per-epoch evaluation included.
- **Extrapolation** (:func:`fit_power_law`): the error e = 1 - accuracy of the later records
  fitted as a power law of the minutes t, e = A t^(-b), by least squares on
  y = ln e = alpha + beta (ln t - mean ln t), beta = -b. Its 95% intervals are Student's t with
  n - 2 degrees of freedom. The minutes to reach an accuracy (error e*) solve
  alpha + beta d = ln e*, d = ln t - mean ln t; their 95% interval is the set of d where the
  fitted line's 95% confidence band contains ln e* (inverse prediction, Fieller):
  (beta^2 - q^2 s^2 / Sxx) d^2 + 2 beta (alpha - ln e*) d + (alpha - ln e*)^2 - q^2 s^2 / n
  <= 0, with s^2 the residual variance, Sxx = sum (x - mean x)^2 and q the t quantile; a
  slope not significantly negative leaves it unbounded. A power law has no floor: a real curve
  that saturates above the target never reaches it, so every number it gives is an
  extrapolation, not a measurement.
- **Shape** (:func:`pick_shape`): seconds per epoch modelled as c0 + c1 M, M = sum over
  layers of inputs x units (the kernels cost O(batch x inputs x units)), fitted to measured
  epochs; the widest hidden width per depth whose epochs fit the budget, and the one with
  the largest M of those.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rbfi.stats import LEVEL, t_quantile

CLEAN_KEYS = ("test_accuracy_p_inf", "test_accuracy")  # l_inf-dist nets: the net certified


def minutes(metrics: Sequence[Mapping]) -> list[float]:
    """The cumulative compute in minutes at the end of every epoch."""
    total, out = 0.0, []
    for record in metrics:
        total += float(record.get("train_seconds", 0)) + float(record.get("eval_seconds", 0))
        out.append(total / 60)
    return out


def minutes_curves(
    metrics: Sequence[Mapping], eps: Iterable[float] = (0.3, 0.1)
) -> dict[str, tuple[list[float], list[float]]]:
    """{"clean": (minutes, accuracies), "certified 0.3": ..., "certified 0.1": ...}: each
    series where the records hold it (``test_certified_<eps>``; clean: the accuracy at p = inf
    of l_inf-dist nets, the net as certified, else ``test_accuracy``); an epoch without the
    value is left out of that series."""
    at = minutes(metrics)
    keys = {"clean": CLEAN_KEYS} | {f"certified {e:g}": (f"test_certified_{e:g}",) for e in eps}
    out = {}
    for name, candidates in keys.items():
        points = []
        for t, record in zip(at, metrics):
            value = next((record[k] for k in candidates if record.get(k) is not None), None)
            if value is not None:
                points.append((t, float(value)))
        if points:
            out[name] = ([t for t, _ in points], [v for _, v in points])
    return out


@dataclass(frozen=True)
class PowerLawFit:
    """e = exp(alpha + beta (ln t - center)) fitted on ``n`` points (module docstring)."""

    alpha: float
    beta: float
    center: float  # mean ln t of the fitted points
    n: int
    s2: float  # residual variance (n - 2 degrees of freedom)
    sxx: float
    first: float  # the minutes of the first and last fitted point
    last: float
    level: float = LEVEL

    @property
    def q(self) -> float:
        return t_quantile(1 - (1 - self.level) / 2, self.n - 2)

    @property
    def exponent(self) -> float:
        """b of e = A t^(-b)."""
        return -self.beta

    def exponent_interval(self) -> tuple[float, float]:
        """The 95% interval of b."""
        half = self.q * math.sqrt(self.s2 / self.sxx)
        return -self.beta - half, -self.beta + half

    def accuracy_at(self, t: float) -> float:
        """1 - the fitted error at ``t`` minutes (an error is at most 1: a rising fit carried
        far enough gives accuracy 0, never below)."""
        return 1 - _error(self.alpha + self.beta * (math.log(t) - self.center))

    def accuracy_interval_at(self, t: float) -> tuple[float, float]:
        """The 95% interval of the fitted accuracy at ``t`` minutes (the line's confidence band
        alpha + beta d -+ q s sqrt(1/n + d^2/Sxx), mapped back; within [0, 1])."""
        d = math.log(t) - self.center
        half = self.q * math.sqrt(self.s2 * (1 / self.n + d * d / self.sxx))
        y = self.alpha + self.beta * d
        return 1 - _error(y + half), 1 - _error(y - half)

    def minutes_to(self, accuracy: float) -> tuple[float, float, float]:
        """(estimate, low, high) of the minutes at which the fitted accuracy reaches
        ``accuracy``: estimate inf where the fitted error does not fall (all three inf where
        it rises significantly); high inf where the interval is unbounded (the slope is not
        significantly negative: low is then where the band first holds the target beyond the
        records, 0 where it holds it everywhere)."""
        if not 0 < accuracy < 1:
            raise ValueError(f"expected an accuracy in (0, 1), got {accuracy!r}")
        gap = self.alpha - math.log(1 - accuracy)
        estimate = math.inf if self.beta >= 0 else math.exp(self.center - gap / self.beta)
        a = self.beta**2 - self.q**2 * self.s2 / self.sxx
        b = 2 * self.beta * gap
        c = gap**2 - self.q**2 * self.s2 / self.n
        if a > 0:  # the slope is significant: a bounded interval around the estimate
            root = math.sqrt(max(b * b - 4 * a * c, 0.0))  # >= 0 but for rounding
            lo, hi = sorted(((-b - root) / (2 * a), (-b + root) / (2 * a)))
            if self.beta > 0:  # significantly rising error: never
                return math.inf, math.inf, math.inf
            return estimate, _exp(self.center + lo), _exp(self.center + hi)
        # not significant: the set is unbounded; its finite end (if any) is the lower bound
        if a == 0:
            return estimate, math.nan, math.inf
        disc = b * b - 4 * a * c
        if disc < 0:
            return estimate, 0.0, math.inf  # every t: the data cannot tell
        root = math.sqrt(disc)
        small, large = sorted(((-b - root) / (2 * a), (-b + root) / (2 * a)))
        # a < 0: the set is d <= small or d >= large; the later end is the lower bound where
        # the estimate lies beyond it
        return estimate, _exp(self.center + large), math.inf

    def to_json(self) -> dict:
        low, high = self.exponent_interval()
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "center": self.center,
            "n": self.n,
            "s2": self.s2,
            "sxx": self.sxx,
            "minutes": [self.first, self.last],
            "exponent": self.exponent,
            "exponent_interval": [low, high],
        }

    @classmethod
    def from_json(cls, data: dict) -> PowerLawFit:
        first, last = data["minutes"]
        keys = ("alpha", "beta", "center", "n", "s2", "sxx")
        return cls(*(data[k] for k in keys), first, last)


def _exp(x: float) -> float:
    return math.exp(x) if x < 700 else math.inf


def _error(log_error: float) -> float:
    """exp(``log_error``) as an error rate: at most 1."""
    return math.exp(min(log_error, 0.0))


def fit_power_law(
    at: Sequence[float], accuracies: Sequence[float], fit_from: float = 0.5, min_points: int = 3
) -> PowerLawFit | str:
    """Fit e = A t^(-b) to the points after the first ``fit_from`` of them (at least
    ``min_points``, the last ones; points with t <= 0 or error <= 0 dropped); a string saying
    why where it cannot (too few points, all at one time)."""
    if len(at) != len(accuracies):
        raise ValueError(f"{len(at)} times for {len(accuracies)} accuracies")
    start = min(int(math.floor(fit_from * len(at))), max(0, len(at) - min_points))
    points = [(t, 1 - a) for t, a in zip(at[start:], accuracies[start:]) if t > 0 and a < 1]
    if len(points) < min_points:
        return f"{len(points)} usable point(s) in the later records: at least {min_points} needed"
    xs = [math.log(t) for t, _ in points]
    ys = [math.log(e) for _, e in points]
    n, center = len(xs), math.fsum(xs) / len(xs)
    sxx = math.fsum((x - center) ** 2 for x in xs)
    if sxx <= 0:
        return "the later records are all at one time"
    alpha = math.fsum(ys) / n
    beta = math.fsum((x - center) * y for x, y in zip(xs, ys)) / sxx
    s2 = math.fsum((y - alpha - beta * (x - center)) ** 2 for x, y in zip(xs, ys)) / (n - 2)
    return PowerLawFit(alpha, beta, center, n, s2, sxx, points[0][0], points[-1][0])


# -- the shape that fits a budget ------------------------------------------------------------


def layer_products(layers: Sequence[int], in_features: int = 784) -> int:
    """M = sum over layers of inputs x units (``layers``: output layer included)."""
    sizes = (in_features, *layers)
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def fit_epoch_cost(measured: Mapping[tuple[int, ...], float]) -> tuple[float, float]:
    """(c0, c1) of seconds per epoch = c0 + c1 M from ``measured`` {layers: seconds per
    epoch}: least squares with c0 >= 0 when the nets differ in M, else through the origin."""
    if not measured:
        raise ValueError("no measured epochs")
    points = [(layer_products(k), float(v)) for k, v in measured.items()]
    if any(v <= 0 for _, v in points):
        raise ValueError("measured seconds per epoch must be positive")
    ms = [m for m, _ in points]
    if len(set(ms)) > 1:
        mean_m, mean_s = sum(ms) / len(ms), sum(s for _, s in points) / len(points)
        slope = sum((m - mean_m) * (s - mean_s) for m, s in points)
        slope /= sum((m - mean_m) ** 2 for m in ms)
        intercept = mean_s - slope * mean_m
        if intercept >= 0 and slope > 0:
            return intercept, slope
    return 0.0, sum(s * m for m, s in points) / sum(m * m for m in ms)


@dataclass(frozen=True)
class ShapeChoice:
    """The shape :func:`pick_shape` chose (None: nothing fits) and, per depth, the widest
    width that fits with its predicted minutes."""

    shape: tuple[int, int] | None
    per_depth: dict[int, tuple[int, float] | None]
    cost: tuple[float, float]

    def layers(self, classes: int = 10) -> tuple[int, ...] | None:
        if self.shape is None:
            return None
        depth, width = self.shape
        return (width,) * depth + (classes,)


def pick_shape(
    budget_minutes: float,
    epochs: int,
    measured: Mapping[tuple[int, ...], float],
    depths: Iterable[int] = range(2, 7),
    widths: Iterable[int] = range(64, 8193, 64),
    in_features: int = 784,
    classes: int = 10,
) -> ShapeChoice:
    """The widest ``width`` per depth whose ``epochs`` epochs, at the seconds per epoch fitted
    to ``measured`` ({layers, output included: seconds per epoch}), take at most
    ``budget_minutes``; of those the shape with the largest M (ties: the shallower)."""
    c0, c1 = fit_epoch_cost(measured)
    widths = sorted(widths)
    per_depth: dict[int, tuple[int, float] | None] = {}
    for depth in depths:
        best = None
        for width in widths:
            layers = (width,) * depth + (classes,)
            total = epochs * (c0 + c1 * layer_products(layers, in_features)) / 60
            if total <= budget_minutes:
                best = (width, total)
        per_depth[depth] = best
    fits = [(d, w) for d, v in per_depth.items() if v is not None for w in (v[0],)]
    shape = None
    if fits:
        shape = max(
            fits,
            key=lambda dw: (layer_products((dw[1],) * dw[0] + (classes,), in_features), -dw[0]),
        )
    return ShapeChoice(shape, per_depth, (c0, c1))
