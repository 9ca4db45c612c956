"""Timings that survive a noisy machine.

Other processes slow a benchmark down in bursts. So every benchmark times its variants
*interleaved*: ``rounds`` rounds, each running every variant once, the order rotated by one
variant per round (so no variant always runs first, after the warm-up or after the slowest one),
and reports per variant the median with its min-max. A ratio of two variants is computed per
round (both timed within one round, under the same load) and reported as the median of those
per-round ratios with their min-max: a burst that hits one round shows in the range, not in the
median.

    times = interleaved({"fused": step_fused, "relu": step_relu}, rounds=7)
    spread_ms(times["fused"])             # {"median": 21.9, "min": 20.6, "max": 35.0}
    ratio(times, "fused", "relu")         # {"median": 5.1, "min": 4.2, "max": 5.4,
                                          #  "per_round": [...]}
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence

DEFAULT_ROUNDS = 7


def interleaved(
    fns: dict[str, Callable[[], object]],
    rounds: int = DEFAULT_ROUNDS,
    *,
    warmup: int = 1,
    before_round: Callable[[int], None] | None = None,
    sync: Callable[[], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each call of each variant: ``warmup`` untimed calls of each, then ``rounds``
    rounds; round r runs the variants once each, starting at the (r mod V)-th. ``before_round(r)``
    runs untimed before round r (e.g. to pick its batch); ``sync`` around every timed call (e.g.
    ``torch.cuda.synchronize``)."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        if before_round is not None:
            before_round(r)
        k = r % len(names)
        for name in names[k:] + names[:k]:
            if sync is not None:
                sync()
            start = time.perf_counter()
            fns[name]()
            if sync is not None:
                sync()
            times[name].append(time.perf_counter() - start)
    return times


def spread(values: Sequence[float]) -> dict[str, float]:
    """{"median", "min", "max"} of ``values``."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def spread_ms(seconds: Sequence[float]) -> dict[str, float]:
    """:func:`spread` of times given in seconds, in milliseconds."""
    return spread([1e3 * s for s in seconds])


def ratio(times: dict[str, list[float]], numerator: str, denominator: str) -> dict:
    """``numerator`` over ``denominator`` per round (the calls of one round share its load):
    the median of the per-round ratios with their min-max, and the ratios themselves."""
    per_round = [a / b for a, b in zip(times[numerator], times[denominator])]
    return {**spread(per_round), "per_round": per_round}


def text(s: dict[str, float], digits: int = 1, unit: str = "") -> str:
    """``{"median": 5.12, "min": 4.2, "max": 5.4}`` -> ``"5.1x (4.2-5.4x)"`` for ``unit="x"``."""
    m, lo, hi = (f"{s[k]:.{digits}f}" for k in ("median", "min", "max"))
    return f"{m}{unit} ({lo}-{hi}{unit})"
