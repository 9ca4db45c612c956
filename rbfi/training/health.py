"""Training health: did a net finish learning? A pure function of its per-epoch records
(``metrics.jsonl`` / the checkpoint's ``metrics``) and its training settings.

A run is *under-trained* when

- its clean test accuracy was still rising: it gained more than ``tolerance`` (default 0.3
  points) over its last ``window`` epochs (default 3; fewer when the run has fewer), or
- it ended below the floor of its kind. Floors exist only for the paper's 512-512-512-10 nets
  trained normally on the full training set (pseudogradients for RBFI): ReLU 97%, sigmoid 95%,
  RBFI 95%, about 1.5-2 points under what such nets reach after the paper's 30 epochs here
  (README: ReLU 98.67, sigmoid 96.82, RBFI 97.02 on the full test set); other nets (smaller,
  deeper, adversarially or certified trained, regularised, true gradients, RBF units) have no
  floor, since what they reach is what the experiments measure;

and it *failed* when it ended below 20% clean accuracy (ten classes: chance is about 10%), e.g. a
PGD-trained net stuck at 11.7%, or when its robust training collapsed: a robust accuracy it
records per epoch (``test_certified_<eps>`` of certified training, ``monitor_pgd<K>_<eps>`` of
adversarial training, at an eps up to the one the training aims at) ended more than 20 points
below its best epoch, e.g. an IBP-trained ReLU net whose certified accuracy at 0.1 peaked at
71% and ended at 9% while its clean accuracy stayed at 91%. Whether a claim rests on a net's
health is the claim's business: "the deep sigmoid net barely beats chance" is about a failed
net.

A run of one epoch shows no trend: its health is *unknown*. :func:`write_health` stores the
assessment as ``health.json`` in the run directory at the end of training; :func:`run_health`
reads it, or computes it from ``metrics.jsonl`` and ``checkpoint.json`` for older runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rbfi.io import atomic_write_json

HEALTH_NAME = "health.json"
CONVERGED, UNDER_TRAINED, FAILED, UNKNOWN = "converged", "under-trained", "failed", "unknown"
WINDOW = 3  # epochs over which the accuracy must have stopped rising
TOLERANCE = 0.003  # 0.3 points
CHANCE_MARGIN = 0.2  # below 20% clean (10 classes: chance is about 10%) a net learnt nothing
COLLAPSE_DROP = 0.2  # a robust accuracy that fell 20 points below its best epoch collapsed
ROBUST_PREFIXES = ("test_certified_", "monitor_pgd")
FLOORS = {"relu": 0.97, "sigmoid": 0.95, "rbfi": 0.95}  # 512^3 nets trained normally
FLOOR_WIDTH, FLOOR_DEPTH = 512, 3


@dataclass(frozen=True)
class Health:
    """``status``: converged / under-trained / failed / unknown; ``reasons``: why (empty when
    converged); the numbers the verdict came from."""

    status: str
    reasons: tuple[str, ...] = ()
    epochs: int = 0
    final_accuracy: float | None = None
    gain: float | None = None  # accuracy gained over the last ``window`` epochs
    window: int = WINDOW
    tolerance: float = TOLERANCE
    floor: float | None = None

    @property
    def trained(self) -> bool:
        return self.status == CONVERGED

    def problem(self, name: str) -> str:
        """'Sigmoid seed 0 under-trained: clean 78.0 below the floor 95 for sigmoid' ('' when
        converged): the text a claim resting on this net cites."""
        if self.trained:
            return ""
        return f"{name} {self.status}: " + "; ".join(self.reasons)

    def short(self) -> str:
        """The reasons in a few words: 'clean 75.9 < floor 95, +64.2 points in the last 3
        epochs' ('' when converged)."""
        parts = []
        near_chance = self.final_accuracy is not None and self.final_accuracy < CHANCE_MARGIN
        if self.status == FAILED and near_chance:
            parts.append(f"clean {100 * self.final_accuracy:.1f}, near chance")
        elif self.floor is not None and self.final_accuracy is not None:
            if self.final_accuracy < self.floor:
                parts.append(f"clean {100 * self.final_accuracy:.1f} < floor {100 * self.floor:g}")
        if self.gain is not None and self.gain > self.tolerance + 1e-9:
            span = min(self.window, self.epochs - 1)
            parts.append(f"+{100 * self.gain:.1f} points in the last {span} epochs")
        parts.extend(r for r in self.reasons if r.startswith("robust training collapsed"))
        if self.status == UNKNOWN:
            parts.append(self.reasons[0] if self.reasons else "unknown")
        return ", ".join(parts)

    def to_json(self) -> dict:
        out = asdict(self)
        out["reasons"] = list(self.reasons)
        return out


def floor_for(training: Mapping) -> float | None:
    """The clean-accuracy floor of a net with these training settings (None: no floor)."""
    model = training.get("model") or {}
    arch, layers = model.get("arch"), list(model.get("layers") or [])
    standard = (
        arch in FLOORS
        and layers == [FLOOR_WIDTH] * FLOOR_DEPTH + [10]
        and training.get("adversarial", "none") == "none"
        and training.get("certified_eps") is None
        and not training.get("reg_lambda")
        and not training.get("train_limit")
        and (arch != "rbfi" or training.get("pseudogradient", True))
    )
    return FLOORS[arch] if standard else None


def assess(
    metrics: Sequence[Mapping],
    training: Mapping,
    *,
    window: int = WINDOW,
    tolerance: float = TOLERANCE,
) -> Health:
    """The health of a run from its per-epoch records (``test_accuracy`` each) and its
    training settings (:meth:`TrainConfig.to_json`)."""
    accuracies = [float(m["test_accuracy"]) for m in metrics if "test_accuracy" in m]
    floor = floor_for(training)
    if not accuracies:
        return Health(UNKNOWN, ("no per-epoch test accuracy recorded",), floor=floor)
    final, epochs = accuracies[-1], len(accuracies)
    if epochs < 2:
        return Health(
            UNKNOWN,
            ("1 epoch: no trend to judge convergence by",),
            epochs,
            final,
            None,
            window,
            tolerance,
            floor,
        )
    span = min(window, epochs - 1)
    gain = final - accuracies[-1 - span]
    reasons = []
    if gain > tolerance + 1e-9:  # 95.7 -> 96.0 is not "more than 0.3"
        reasons.append(
            f"clean accuracy still rising: +{100 * gain:.1f} points over the last {span} "
            f"epoch(s) (> {100 * tolerance:g}), {100 * accuracies[-1 - span]:.1f} -> "
            f"{100 * final:.1f} after {epochs} epochs"
        )
    if floor is not None and final < floor:
        arch = (training.get("model") or {}).get("arch")
        reasons.append(
            f"clean {100 * final:.1f} below the floor {100 * floor:g} for {arch} 512^3 nets"
        )
    status = UNDER_TRAINED if reasons else CONVERGED
    collapsed = robust_collapses(metrics, up_to=trained_eps(training))
    if collapsed:
        status = FAILED
        reasons[:0] = collapsed
    if final < CHANCE_MARGIN:
        status = FAILED
        reasons.insert(0, f"clean {100 * final:.1f} after {epochs} epochs: near chance (10%)")
    return Health(status, tuple(reasons), epochs, final, gain, window, tolerance, floor)


def trained_eps(training: Mapping) -> float | None:
    """The eps a run's robust training aims at: an l_inf-dist net's ``linf_eps``, a certified
    run's ``certified_eps``, an adversarial run's ``adv_eps``; None for normal training."""
    if (training.get("model") or {}).get("arch") == "linf-dist":
        return training.get("linf_eps")
    if training.get("certified_eps") is not None:
        return float(training["certified_eps"])
    if training.get("adversarial", "none") != "none":
        return training.get("adv_eps")
    return None


def robust_collapses(
    metrics: Sequence[Mapping], drop: float = COLLAPSE_DROP, up_to: float | None = None
) -> list[str]:
    """One reason per robust accuracy recorded per epoch (keys starting with
    ``ROBUST_PREFIXES``) whose last value is more than ``drop`` below its best epoch's. With
    ``up_to`` (the eps the training aims at), accuracies at a larger eps are not judged: a net
    certified-trained for 0.15 that also records ``test_certified_0.3`` may lose it while its
    eps ramps up, which is no collapse of what it was trained for."""
    reasons = []
    keys = sorted({k for m in metrics for k in m if k.startswith(ROBUST_PREFIXES)})
    if up_to is not None:
        keys = [k for k in keys if float(k.rsplit("_", 1)[1]) <= up_to + 1e-9]
    for key in keys:
        values = [(i + 1, float(m[key])) for i, m in enumerate(metrics) if key in m]
        if len(values) < 2:
            continue
        best_epoch, best = max(values, key=lambda item: item[1])
        last_epoch, last = values[-1]
        if best - last > drop + 1e-9:
            reasons.append(
                f"robust training collapsed: {key} peaked at {100 * best:.1f} (epoch "
                f"{best_epoch}) and ended at {100 * last:.1f} (epoch {last_epoch})"
            )
    return reasons


def write_health(run_dir: str | Path, metrics: Sequence[Mapping], training: Mapping) -> Health:
    """Assess the run and store the result as ``health.json`` in ``run_dir``."""
    health = assess(metrics, training)
    atomic_write_json(Path(run_dir) / HEALTH_NAME, health.to_json())
    return health


def run_health(run_dir: str | Path, index: Mapping | None = None) -> Health:
    """The health of the run in ``run_dir``, the one reader of it: its ``health.json`` when that
    covers every epoch recorded, else assessed from ``metrics.jsonl`` (or the checkpoint's
    metrics) and the checkpoint's training settings (runs made before ``health.json`` existed).
    ``index``: the run's parsed ``checkpoint.json``, when the caller has read it already."""
    run_dir = Path(run_dir)
    if index is None:
        index = json.loads((run_dir / "checkpoint.json").read_text())
    metrics = index.get("metrics") or []
    lines = run_dir / "metrics.jsonl"
    if lines.is_file():
        metrics = [json.loads(line) for line in lines.read_text().splitlines() if line.strip()]
    stored = run_dir / HEALTH_NAME
    if stored.is_file():
        data = json.loads(stored.read_text())
        if data.get("epochs") == len(metrics):
            return Health(**{**data, "reasons": tuple(data.get("reasons", ()))})
    return assess(metrics, index.get("training") or {})
