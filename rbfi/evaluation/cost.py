"""What an evaluation will cost: seconds per example-pass measured on the model, and an upper
bound on the passes each attack may take (no early stopping), printed before attacking and
recorded with the results."""

from __future__ import annotations

import time
from collections.abc import Callable

from torch import Tensor, nn

from rbfi.attacks.fgsm import FGSM
from rbfi.attacks.suites import AttackSpec
from rbfi.models import predict


def measure_pass_seconds(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """Seconds per example of a forward pass and of a forward + backward (true and pseudo
    gradients), the best of 3 timings on up to 100 examples."""
    x, y = x[:100], y[:100]

    def best_of_3(run: Callable[[], object]) -> float:
        run()  # warm-up (kernel build, allocations)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return min(times) / len(x)

    out = {"forward": best_of_3(lambda: predict(model, x, len(x)))}
    for gradient in ("true", "pseudo"):
        attack = FGSM(model, 0.1, loss="cross_entropy", gradient=gradient)
        out[f"backward_{gradient}"] = best_of_3(lambda: attack(x, y))  # noqa: B023
    return out


def estimate_cost(
    specs: list[AttackSpec],
    n_attacked: int,
    n_eps: int,
    seconds: dict[str, float],
    source_seconds: float,
    check: AttackSpec | None = None,
    check_examples: int = 0,
) -> dict:
    """Upper bound on example-passes (no early stopping) and the wall time it would take at the
    measured seconds per example-pass. A backward pass is counted with its forward."""
    totals = {"forward": 0, "backward_true": 0, "backward_pseudo": 0, "source_backward": 0}
    per_attack = {}

    def add(name: str, per_example: dict, gradient: str, count: int) -> None:
        backward = "backward_pseudo" if gradient == "pseudo" else "backward_true"
        counts = {
            "forward": per_example["forward"] * count,
            backward: per_example["backward"] * count,
            "source_backward": per_example.get("source_backward", 0) * count,
        }
        for key, value in counts.items():
            totals[key] += value
        time_s = sum(v * seconds.get(k, source_seconds) for k, v in counts.items())
        per_attack[name] = {**{k: v for k, v in counts.items() if v}, "seconds": time_s}

    for spec in specs:
        add(spec.name, passes(spec), spec.gradient, n_attacked * n_eps)
    if check is not None:  # k and 2k steps, one start, no early stop
        steps = check.kwargs.get("steps", 100)
        add(
            f"step check ({check.name})",
            {"forward": 2, "backward": 3 * steps},
            check.gradient,
            check_examples * n_eps,
        )
    return {
        "example_passes": totals,
        "per_attack": per_attack,
        "seconds_per_example_pass": {**seconds, "source_backward": source_seconds},
        "upper_bound_seconds": sum(v["seconds"] for v in per_attack.values()),
    }


def passes(spec: AttackSpec) -> dict[str, int]:
    """The attack's per-example pass bound (built on a stand-in model)."""
    return spec.probe().passes()


def hours(seconds: float) -> str:
    """A duration the way a person reads it: 42 s, 17 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
