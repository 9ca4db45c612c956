"""Learning-rate schedules: the learning rate of global step ``t`` as a pure function of ``t``
and the run's settings (no state, so a resumed run takes exactly the steps of an uninterrupted
one).

With ``T`` steps in all and ``W = round(warmup * T)`` warm-up steps (steps counted from 0):

- warm-up (any schedule): ``lr(t) = base * (t + 1) / W`` for ``t < W``;
- ``constant``: ``lr(t) = base``;
- ``cosine``: ``lr(t) = base * (1 + cos(pi * p)) / 2`` with ``p = (t - W) / (T - W)``, so
  ``base`` at the end of warm-up, ``base / 2`` half way, 0 at ``t = T``;
- ``step``: ``lr(t) = base * factor ** k``, ``k`` = how many decay points ``d`` (fractions of
  training) have ``t >= d * T``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

SCHEDULES = ("constant", "cosine", "step")


def learning_rate(
    step: int,
    total_steps: int,
    base: float,
    schedule: str = "constant",
    *,
    warmup: float = 0.0,
    decay_at: Sequence[float] = (),
    decay_factor: float = 0.1,
) -> float:
    """The learning rate of global step ``step`` (0-based) out of ``total_steps``."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; one of {SCHEDULES}")
    if total_steps < 1 or step < 0:
        raise ValueError(f"need 0 <= step and total_steps >= 1, got {step}, {total_steps}")
    warmup_steps = round(warmup * total_steps)
    if step < warmup_steps:
        return base * (step + 1) / warmup_steps
    if schedule == "cosine":
        remaining = total_steps - warmup_steps
        progress = min(1.0, (step - warmup_steps) / remaining) if remaining > 0 else 1.0
        return base * 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        passed = sum(1 for point in decay_at if step >= point * total_steps)
        return base * decay_factor**passed
    return base
