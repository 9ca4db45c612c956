"""Robustness evaluation: a suite of attacks over a grid of eps, per-example outcomes, the
per-example worst case, masking checks, and the reports (JSON, Markdown table, PNG plot).

Protocol (docs/evaluation.md): every attack of the suite runs on every test example that is
correctly classified without attack, at every eps > 0 of the grid (so each attack's accuracy is
exact); inside an attack an example stops costing passes once it is broken. Examples
misclassified without attack count as broken everywhere. The *worst case* at eps counts an
example as robust only if no attack broke it at any eps' <= eps of the grid (B_eps' ⊂ B_eps,
so an adversarial example at eps' is one at eps too).

Command line: ``rbfi attack CHECKPOINT`` (:func:`add_attack_arguments`,
:func:`run_attack_command`).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import sys
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rbfi.argtypes import positive_float, positive_int
from rbfi.attacks.base import ROUNDING
from rbfi.attacks.external import AutoAttack
from rbfi.attacks.pgd import PGD
from rbfi.attacks.suites import (
    AUTOATTACK_CHOICES,
    SUITES,
    AttackSpec,
    SuiteOptions,
    build_suite,
    step_check_spec,
)

FORMAT = "rbfi-robustness"
DEFAULT_EPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
RESULT_FILES = ("robustness.json", "robustness.md", "robustness.png")
RELU_SANITY_EPS = 0.5  # the constant 0.5 image is within 0.5 of every image
RELU_SANITY_MAX_ACCURACY = 0.02
TOLERANCE = 0.02  # accuracy differences below this are noise for the checks


@dataclass
class EvalConfig:
    """What to run (recorded in the results)."""

    suite: str = "strong"
    eps: tuple[float, ...] = DEFAULT_EPS
    batch_size: int = 250
    seed: int = 0
    attacks: tuple[str, ...] | None = None  # only these attacks of the suite
    check_subset: int = 100  # examples for the step-doubling check (0: skip it)
    options: SuiteOptions = field(default_factory=SuiteOptions)

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"unknown suite {self.suite!r}; choose one of {', '.join(SUITES)}")
        eps = sorted({float(e) for e in self.eps})
        if not eps or any(not (math.isfinite(e) and 0.0 <= e <= 1.0) for e in eps):
            raise ValueError(f"eps values must lie in [0, 1], got {self.eps}")
        self.eps = tuple(eps)
        if int(self.batch_size) < 1 or int(self.check_subset) < 0:
            raise ValueError("batch_size must be >= 1 and check_subset >= 0")

    def to_json(self) -> dict:
        out = asdict(self)
        out["options"] = self.options.to_json()
        return out


def attack_seed(seed: int, name: str, eps: float) -> int:
    """A stable seed per (run seed, attack, eps)."""
    return zlib.crc32(f"{seed}/{name}/{eps:g}".encode())


def bits(mask: Tensor) -> str:
    """Per-example outcomes as a string: '1' robust (still correct), '0' broken."""
    return "".join("1" if v else "0" for v in mask.tolist())


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int) -> Tensor:
    return torch.cat(
        [model(x[i : i + batch_size]).argmax(dim=1) for i in range(0, len(x), batch_size)]
    )


def versions() -> dict[str, str]:
    import numpy

    import rbfi

    out = {
        "rbfi": rbfi.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }
    try:
        import pyautoattack

        out["pyautoattack"] = pyautoattack.__version__
    except ImportError:
        out["pyautoattack"] = "not installed"
    return out


def describe_model(model: nn.Module) -> str:
    try:
        from rbfi.models import describe

        return describe(model)
    except (AttributeError, KeyError, TypeError):
        return type(model).__name__


def is_relu(model: nn.Module | None) -> bool:
    return model is not None and getattr(model, "config", {}).get("arch") == "relu"


# --- cost -----------------------------------------------------------------------------------


def measure_pass_seconds(model: nn.Module, x: Tensor, y: Tensor) -> dict[str, float]:
    """Seconds per example of a forward pass and of a forward + backward (true and pseudo
    gradients), the best of 3 timings on up to 100 examples."""
    from rbfi.attacks.fgsm import FGSM

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

    def add(name: str, passes: dict, gradient: str, count: int) -> None:
        backward = "backward_pseudo" if gradient == "pseudo" else "backward_true"
        counts = {
            "forward": passes["forward"] * count,
            backward: passes["backward"] * count,
            "source_backward": passes.get("source_backward", 0) * count,
        }
        for key, value in counts.items():
            totals[key] += value
        time_s = sum(v * seconds.get(k, source_seconds) for k, v in counts.items())
        per_attack[name] = {**{k: v for k, v in counts.items() if v}, "seconds": time_s}

    for spec in specs:
        add(spec.name, _passes(spec), spec.gradient, n_attacked * n_eps)
    if check is not None:  # k and 2k steps, one start, no early stop
        steps = check.kwargs.get("steps", 100)
        passes = {"forward": 2, "backward": 3 * steps}
        add(f"step check ({check.name})", passes, check.gradient, check_examples * n_eps)
    return {
        "example_passes": totals,
        "per_attack": per_attack,
        "seconds_per_example_pass": {**seconds, "source_backward": source_seconds},
        "upper_bound_seconds": sum(v["seconds"] for v in per_attack.values()),
    }


def _passes(spec: AttackSpec) -> dict[str, int]:
    """The attack's per-example pass bound (built on a throw-away eps)."""
    return spec.build(_Probe(), 0.1, 0).passes()


class _Probe(nn.Module):
    """Stand-in model to build attack objects for their settings and pass counts."""

    loss = "cross_entropy"

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - never called
        return x


# --- the evaluation -------------------------------------------------------------------------


class _Stats:
    """Sums an attack's per-batch diagnostics."""

    def __init__(self) -> None:
        self.data: dict = {}

    def add(self, stats: dict) -> None:
        d = self.data
        for key in ("zero_gradient", "source_success"):
            if key in stats:
                d[key] = d.get(key, 0) + int(stats[key])
        if "gradient_l1_median" in stats:
            d.setdefault("gradient_l1_medians", []).append(stats["gradient_l1_median"])
        if "restart_successes" in stats:
            old, new = d.get("restart_successes", []), stats["restart_successes"]
            size = max(len(old), len(new))
            old, new = old + [0] * (size - len(old)), new + [0] * (size - len(new))
            d["restart_successes"] = [a + b for a, b in zip(old, new)]
        for message in stats.get("package_warnings", []):
            d.setdefault("package_warnings", {})
            d["package_warnings"][message] = d["package_warnings"].get(message, 0) + 1

    def result(self) -> dict:
        d = dict(self.data)
        medians = d.pop("gradient_l1_medians", None)
        if medians:
            d["gradient_l1_median"] = float(torch.tensor(medians).median())
        return d


def evaluate_robustness(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: EvalConfig | None = None,
    *,
    transfer_source: nn.Module | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    estimate_only: bool = False,
) -> dict:
    """Run the suite over the eps grid on (x, y); return the results dict (see
    :func:`write_results`). ``transfer_source``: a separately trained (ReLU) model, used by
    the transfer attack and as the ReLU reference of the masking checks."""
    config = config or EvalConfig()
    log = log or (lambda message: print(message, file=sys.stderr))
    device = next(iter(model.parameters()), torch.empty(0)).device
    x, y = x.to(device), y.to(device)
    if transfer_source is not None:
        transfer_source = transfer_source.to(device).eval()
    was_training = model.training
    model.eval()
    try:
        specs, skipped = build_suite(
            config.suite, model, config.options, transfer_source=transfer_source
        )
        if config.attacks is not None:
            names = [s.name for s in specs]
            unknown = [a for a in config.attacks if a not in names]
            if unknown:
                raise ValueError(
                    f"unknown attack(s) {', '.join(unknown)} for this suite and model; "
                    f"choose from {', '.join(names)}"
                )
            specs = [s for s in specs if s.name in config.attacks]

        clean_pred = predict(model, x, config.batch_size)
        clean = clean_pred == y
        attacked = clean.nonzero().squeeze(1)
        eps_attacked = [e for e in config.eps if e > 0]
        check = step_check_spec(specs) if config.check_subset else None
        seconds = measure_pass_seconds(model, x, y) if len(x) else {}
        source_seconds = 0.0
        if transfer_source is not None and len(x):
            source_seconds = measure_pass_seconds(transfer_source, x, y)["backward_true"]
        cost = estimate_cost(
            specs,
            len(attacked),
            len(eps_attacked),
            seconds,
            source_seconds,
            check,
            min(config.check_subset, len(attacked)),
        )
        passes = cost["example_passes"]
        costly = sorted(cost["per_attack"].items(), key=lambda kv: -kv[1]["seconds"])[:4]
        total_s = max(cost["upper_bound_seconds"], 1e-9)
        log(
            f"suite {config.suite}: {len(specs)} attacks x {len(eps_attacked)} eps > 0 on "
            f"{len(x)} images ({len(attacked)} correct without attack): up to "
            f"{passes['forward']:.3g} forward, {passes['backward_true']:.3g} true-gradient and "
            f"{passes['backward_pseudo']:.3g} pseudogradient backward example-passes (checks "
            f"included); at the measured speed at most ~{_hours(total_s)}, early stopping "
            f"usually cuts this a lot. Largest shares: "
            + ", ".join(f"{name} {v['seconds'] / total_s:.0%}" for name, v in costly)
        )
        results = {
            "format": FORMAT,
            "format_version": 1,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model": {
                "description": describe_model(model),
                "config": getattr(model, "config", None),
                "training_loss": getattr(model, "loss", None),
            },
            "transfer_source": describe_model(transfer_source) if transfer_source else None,
            "settings": config.to_json(),
            "versions": versions(),
            "device": str(device),
            "threads": torch.get_num_threads(),
            "n_examples": len(x),
            "labels": y.tolist(),
            "clean_predictions": clean_pred.tolist(),
            "clean_accuracy": clean.float().mean().item() if len(x) else float("nan"),
            "eps": list(config.eps),
            "attacks": [_spec_json(s, config.seed) for s in specs],
            "skipped": skipped,
            "cost_estimate": cost,
        }
        if estimate_only:
            return results

        total = sum(sum(_passes(s).values()) for s in specs) * len(attacked) * len(eps_attacked)
        bar = tqdm(
            total=total,
            unit="pass",
            unit_scale=True,
            disable=not progress,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
            desc="attacks",
        )
        outcomes: dict[str, dict[str, dict]] = {s.name: {} for s in specs}
        started = time.perf_counter()
        for eps in config.eps:
            for spec in specs:
                outcomes[spec.name][f"{eps:g}"] = _run_attack(
                    spec, model, x, y, clean, attacked, eps, config, bar
                )
        bar.close()
        results["seconds"] = time.perf_counter() - started
        results["results"] = outcomes
        results["worst_case"] = worst_case(outcomes, clean, config.eps)
        checks, warnings, notes = masking_checks(
            model,
            x,
            y,
            clean,
            attacked,
            outcomes,
            results["worst_case"],
            specs,
            config,
            transfer_source,
            check,
        )
        results["checks"], results["warnings"], results["notes"] = checks, warnings, notes
        return results
    finally:
        model.train(was_training)


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _spec_json(spec: AttackSpec, seed: int) -> dict:
    settings = spec.build(_Probe(), 0.1, 0).settings()
    settings.pop("eps", None)
    settings.pop("seed", None)
    return {
        "name": spec.name,
        "kind": spec.kind,
        "gradient": spec.gradient,
        "loss": spec.loss,
        "summary": spec.summary,
        "settings": settings,
        "seeds": f"zlib.crc32(f'{seed}/{spec.name}/{{eps:g}}')",
    }


def _run_attack(
    spec: AttackSpec,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    attacked: Tensor,
    eps: float,
    config: EvalConfig,
    bar,
) -> dict:
    """One attack at one eps on every initially-correct example; outcomes per example."""
    correct = clean.clone()
    if eps == 0:  # every attack is the identity at eps = 0
        return {"accuracy": correct.float().mean().item(), "correct": bits(correct)}
    attack = spec.build(model, eps, attack_seed(config.seed, spec.name, eps))
    stats = _Stats()
    units = sum(attack.passes().values())
    bar.set_description(f"{spec.name} eps {eps:g}", refresh=False)
    start = time.perf_counter()
    for i in range(0, len(attacked), config.batch_size):
        idx = attacked[i : i + config.batch_size]
        x_adv = attack(x[idx], y[idx])
        _verify(x_adv, x[idx], eps, spec.name)  # independent of the attack's own check
        correct[idx] = predict(model, x_adv, len(idx)) == y[idx]
        stats.add(attack.stats)
        bar.update(units * len(idx))
    return {
        "accuracy": correct.float().mean().item(),
        "correct": bits(correct),
        "seconds": time.perf_counter() - start,
        "attacked": len(attacked),
        "seed": attack.seed,
        **stats.result(),
    }


def _verify(x_adv: Tensor, x: Tensor, eps: float, name: str) -> None:
    distance = (x_adv - x).abs().amax().item() if x.numel() else 0.0
    if distance > eps + ROUNDING or (x.numel() and (x_adv.min() < 0 or x_adv.max() > 1)):
        raise RuntimeError(f"{name} produced a point outside the threat model at eps {eps}")


def worst_case(outcomes: dict, clean: Tensor, eps_grid: Sequence[float]) -> dict:
    """Per eps: robust iff no attack broke the example at this or any smaller eps of the grid.
    Also reports the same-eps-only accuracy."""
    clean = clean.cpu()
    out, robust = {}, clean.clone()
    for eps in eps_grid:
        key = f"{eps:g}"
        same = clean.clone()
        for per_eps in outcomes.values():
            same &= _mask(per_eps[key]["correct"])
        robust &= same
        out[key] = {
            "accuracy": robust.float().mean().item(),
            "accuracy_same_eps": same.float().mean().item(),
            "correct": bits(robust),
        }
    return out


def _mask(bit_string: str) -> Tensor:
    return torch.tensor([c == "1" for c in bit_string], dtype=torch.bool)


# --- masking checks -------------------------------------------------------------------------


def masking_checks(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    attacked: Tensor,
    outcomes: dict,
    worst: dict,
    specs: list[AttackSpec],
    config: EvalConfig,
    transfer_source: nn.Module | None,
    step_spec: AttackSpec | None,
) -> tuple[dict, list[str], list[str]]:
    """Signs that the attacks were too weak (gradient masking). Returns (checks, warnings,
    notes): checks are the measured numbers, warnings the failed checks, notes information."""
    checks: dict = {}
    warnings: list[str] = []
    notes: list[str] = []
    eps_grid = [e for e in config.eps if e > 0]
    n = max(len(x), 1)
    clean_cpu = clean.cpu()

    # 1. zero gradients at the start of each gradient attack
    zero = {}
    for spec in specs:
        per_eps = {
            k: v["zero_gradient"] / max(v["attacked"], 1)
            for k, v in outcomes[spec.name].items()
            if "zero_gradient" in v
        }
        if per_eps:
            zero[spec.name] = per_eps
            worst_frac = max(per_eps.values())
            if worst_frac > 0:
                warnings.append(
                    f"{spec.name}: {worst_frac:.1%} of the attacked examples have an exactly "
                    f"zero input gradient at the start: the gradient cannot move them"
                )
    checks["zero_gradient_fraction"] = zero

    # 2. black-box attacks must not beat the ensemble of the gradient attacks (AutoAttack is
    # left out of it: it contains Square)
    white = [s.name for s in specs if s.kind == "white-box" and s.cls is not AutoAttack]
    black = [s.name for s in specs if s.kind == "black-box"]
    bb_check = {}
    if white and black:
        for eps in eps_grid:
            key = f"{eps:g}"
            ensemble = clean_cpu.clone()
            for name in white:
                ensemble &= _mask(outcomes[name][key]["correct"])
            only_black = torch.zeros_like(ensemble)
            row = {"gradient_ensemble": ensemble.float().mean().item()}
            for name in black:
                robust = _mask(outcomes[name][key]["correct"])
                only_black |= ensemble & ~robust
                row[name] = outcomes[name][key]["accuracy"]
                if row[name] < row["gradient_ensemble"]:
                    warnings.append(
                        f"black-box {name} beats the gradient attacks together at eps {key} "
                        f"({row[name]:.1%} < {row['gradient_ensemble']:.1%}): the gradients "
                        f"are being masked"
                    )
            row["broken_only_by_black_box"] = int(only_black.sum())
            if only_black.any():
                notes.append(
                    f"eps {key}: {int(only_black.sum())} example(s) broken only by black-box "
                    f"attacks"
                )
            bb_check[key] = row
    checks["black_box_vs_white_box"] = bb_check

    # 3. accuracy must not rise with eps (B_eps grows)
    rising = {}
    for name, per_eps in outcomes.items():
        accs = [per_eps[f"{e:g}"]["accuracy"] for e in config.eps]
        rise = max((b - a for a, b in zip(accs, accs[1:])), default=0.0)
        if rise > TOLERANCE:
            rising[name] = rise
            warnings.append(f"{name}: accuracy rises by {rise:.1%} from one eps to the next")
    checks["accuracy_rises_with_eps"] = rising

    # 4. more steps must not help the model (same start, k vs 2k steps, last iterate)
    if step_spec is not None and len(attacked):
        subset = attacked[: config.check_subset]
        steps = step_spec.kwargs.get("steps", 100)
        table = {}
        for eps in eps_grid:
            accs = {}
            for k in (steps, 2 * steps):
                kwargs = {**step_spec.kwargs, "steps": k, "restarts": 1, "early_stop": False}
                attack = step_spec.cls(
                    model, eps, seed=attack_seed(config.seed, "step-check", eps), **kwargs
                )
                x_adv = torch.cat(
                    [
                        attack(
                            x[subset[i : i + config.batch_size]],
                            y[subset[i : i + config.batch_size]],
                        )
                        for i in range(0, len(subset), config.batch_size)
                    ]
                )
                correct = predict(model, x_adv, config.batch_size) == y[subset]
                accs[k] = correct.float().mean().item()
            table[f"{eps:g}"] = {f"{k}_steps": v for k, v in accs.items()}
            if accs[2 * steps] - accs[steps] > max(TOLERANCE, 1.0 / len(subset)):
                warnings.append(
                    f"{step_spec.name} at eps {eps:g}: {2 * steps} steps leave more examples "
                    f"correct than {steps} ({accs[2 * steps]:.1%} > {accs[steps]:.1%}, last "
                    f"iterate, same start, {len(subset)} examples)"
                )
        checks["step_doubling"] = {
            "attack": step_spec.name,
            "examples": len(subset),
            "accuracy_on_subset": table,
        }

    # 5. restarts still finding new examples: more restarts may lower accuracy further
    for name, per_eps in outcomes.items():
        late = [
            f"{key} ({v['restart_successes'][-1]})"
            for key, v in per_eps.items()
            if len(v.get("restart_successes", [])) > 1 and v["restart_successes"][-1] > 0
        ]
        if late:
            notes.append(
                f"{name}: its last restart still broke examples at eps {', '.join(late)}; "
                f"more restarts may lower its accuracy"
            )

    # 6. a ReLU net must reach ~0 accuracy at eps = 0.5
    relu_check = {}
    big = [e for e in eps_grid if e >= RELU_SANITY_EPS]
    if is_relu(model) and big:
        acc = worst[f"{big[-1]:g}"]["accuracy"]
        relu_check["evaluated_model"] = {"eps": big[-1], "worst_case_accuracy": acc}
    references = [("evaluated_model", model)] if is_relu(model) and not big else []
    if is_relu(transfer_source):
        references.append(("transfer_source", transfer_source))
    for label, reference in references:
        subset = torch.arange(min(len(x), max(config.check_subset, 100)), device=x.device)
        attack = PGD(reference, RELU_SANITY_EPS, steps=20, loss="cross_entropy", seed=config.seed)
        x_adv = attack(x[subset], y[subset])
        acc = (predict(reference, x_adv, config.batch_size) == y[subset]).float().mean().item()
        relu_check[label] = {"eps": RELU_SANITY_EPS, "pgd_ce_20_steps_accuracy": acc}
    for label, row in relu_check.items():
        acc = row.get("worst_case_accuracy", row.get("pgd_ce_20_steps_accuracy"))
        if acc > RELU_SANITY_MAX_ACCURACY:
            warnings.append(
                f"ReLU reference ({label}) keeps {acc:.1%} accuracy at eps {row['eps']:g}; "
                f"expected ~0: the attack machinery is suspect"
            )
    if not relu_check:
        notes.append("no ReLU reference check: pass --transfer-source with a ReLU checkpoint")
    checks["relu_reference"] = relu_check

    # 7. at eps >= 0.5 the constant 0.5 image is an admissible point for every example
    if big:
        gray = torch.full_like(x[:1], 0.5)
        gray_class = int(predict(model, gray, 1)[0])
        bound = (y.cpu() == gray_class).float().mean().item()
        for eps in big:
            acc = worst[f"{eps:g}"]["accuracy"]
            if acc > bound + 1.0 / n / 2:
                warnings.append(
                    f"eps {eps:g}: worst-case accuracy {acc:.1%} exceeds {bound:.1%}, the bound "
                    f"given by the constant 0.5 image (classified {gray_class}), reachable "
                    f"from every image: the suite missed adversarial examples that exist"
                )
        checks["gray_image_bound"] = {"class": gray_class, "max_accuracy": bound}

    # 8. the package's own warnings (AutoAttack checks)
    for name, per_eps in outcomes.items():
        for key, v in per_eps.items():
            for message, count in v.get("package_warnings", {}).items():
                first = message.split(". ")[0].rstrip(".")
                times = f" (x{count})" if count > 1 else ""
                warnings.append(f"{name} at eps {key}, the package's own check: {first}{times}")

    return checks, warnings, notes


# --- reports --------------------------------------------------------------------------------


def to_markdown(results: dict) -> str:
    """A table: one row per attack, one column per eps, the worst case last (accuracy, %)."""
    eps = results["eps"]
    keys = [f"{e:g}" for e in eps]
    suite = results["settings"]["suite"]
    lines = [
        f"# Robustness of {results['model']['description']} (suite `{suite}`)",
        "",
        f"{results['n_examples']} test images (the first ones), clean accuracy "
        f"{results['clean_accuracy']:.2%}; l_inf, pixels in [0, 1]; robust accuracy in %; "
        f"seed {results['settings']['seed']}; {results.get('seconds', 0):.0f} s on "
        f"{results['device']}.",
        "",
        "| attack | kind | gradient | loss | " + " | ".join(f"eps {k}" for k in keys) + " |",
        "|---|---|---|---|" + "---:|" * len(keys),
    ]
    for attack in results["attacks"]:
        per_eps = results["results"][attack["name"]]
        cells = " | ".join(f"{100 * per_eps[k]['accuracy']:.1f}" for k in keys)
        lines.append(
            f"| {attack['name']} | {attack['kind']} | {attack['gradient']} | {attack['loss']} "
            f"| {cells} |"
        )
    worst = " | ".join(f"**{100 * results['worst_case'][k]['accuracy']:.1f}**" for k in keys)
    lines.append(f"| **worst case** | | | | {worst} |")
    lines += ["", "Attacks:", ""]
    lines += [f"- `{a['name']}`: {a['summary']}" for a in results["attacks"]]
    if results.get("skipped"):
        lines += [
            "",
            "Skipped: " + "; ".join(f"{s['name']} ({s['reason']})" for s in results["skipped"]),
        ]
    lines += ["", "## Masking checks", ""]
    lines += [f"- {line}" for line in _check_lines(results["checks"])]
    if results["warnings"]:
        lines += [f"- **warning**: {w}" for w in results["warnings"]]
    else:
        lines.append("- no warnings")
    lines += [f"- note: {note}" for note in results["notes"]]
    return "\n".join(lines) + "\n"


def _check_lines(checks: dict) -> list[str]:
    """One line per masking check with what it measured."""
    lines = []
    zero = {
        name: max(per_eps.values())
        for name, per_eps in checks.get("zero_gradient_fraction", {}).items()
        if max(per_eps.values()) > 0
    }
    found = ", ".join(f"{name} {frac:.1%}" for name, frac in zero.items()) or "none"
    lines.append(f"exactly zero input gradient at the start (worst eps): {found}")
    for key, row in checks.get("black_box_vs_white_box", {}).items():
        cells = ", ".join(f"{k} {v:.1%}" for k, v in row.items() if isinstance(v, float))
        lines.append(f"black-box attacks vs the gradient attacks together, eps {key}: {cells}")
    rising = checks.get("accuracy_rises_with_eps", {})
    lines.append(f"accuracy rising with eps: {', '.join(rising) or 'none'}")
    doubling = checks.get("step_doubling")
    if doubling:
        cells = "; ".join(
            f"eps {key}: " + " vs ".join(f"{v:.1%} ({k.replace('_', ' ')})" for k, v in row.items())
            for key, row in doubling["accuracy_on_subset"].items()
        )
        lines.append(
            f"more steps (`{doubling['attack']}`, 1 start, last iterate, "
            f"{doubling['examples']} examples): {cells}"
        )
    for label, row in checks.get("relu_reference", {}).items():
        acc = row.get("worst_case_accuracy", row.get("pgd_ce_20_steps_accuracy"))
        lines.append(f"ReLU reference ({label}) at eps {row['eps']:g}: {acc:.1%} (expected ~0)")
    gray = checks.get("gray_image_bound")
    if gray:
        lines.append(
            f"eps >= 0.5: the constant 0.5 image (class {gray['class']}) caps any robust "
            f"accuracy at {gray['max_accuracy']:.1%}"
        )
    return lines


def plot(results: dict, path_or_buffer) -> None:
    """Accuracy vs eps, one line per attack, the worst case in bold (like the paper's Fig. 2)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    eps = results["eps"]
    keys = [f"{e:g}" for e in eps]
    fig, ax = plt.subplots(figsize=(9, 5.5))
    families: dict[str, int] = {}
    markers = {"training": "o", "cross_entropy": "s", "margin": "^"}
    for attack in results["attacks"]:
        name = attack["name"]
        family = "pgd-paper" if name.startswith("pgd-paper") else name.split("-")[0]
        color = plt.get_cmap("tab10")(families.setdefault(family, len(families)) % 10)
        style = ":" if "legacy" in name else "--" if attack["gradient"] == "pseudo" else "-"
        acc = [100 * results["results"][name][k]["accuracy"] for k in keys]
        marker = markers.get(attack["loss"], ".")
        ax.plot(eps, acc, style, color=color, marker=marker, markersize=4, label=name)
    worst = [100 * results["worst_case"][k]["accuracy"] for k in keys]
    ax.plot(eps, worst, "-", color="black", linewidth=3, label="worst case")
    ax.set_xlabel("eps (l_inf)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{results['model']['description']}: suite {results['settings']['suite']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7)
    fig.tight_layout()
    fig.savefig(path_or_buffer, format="png", dpi=120)
    plt.close(fig)


def existing_results(out_dir: Path) -> list[str]:
    return [name for name in RESULT_FILES if (out_dir / name).exists()]


def write_results(results: dict, out_dir: str | os.PathLike, overwrite: bool = False) -> list[Path]:
    """Write robustness.{png,md,json} (each through a temp file + rename; the JSON last).
    Refuses (ValueError) a directory that already holds results unless ``overwrite``."""
    from rbfi.checkpoint import atomic_write_bytes

    out_dir = Path(out_dir)
    if existing_results(out_dir) and not overwrite:
        raise ValueError(
            f"{out_dir} already holds results ({', '.join(existing_results(out_dir))}); "
            f"pass --overwrite or choose another --out"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    plot(results, buffer)
    paths = [out_dir / name for name in ("robustness.png", "robustness.md", "robustness.json")]
    atomic_write_bytes(paths[0], buffer.getvalue())
    atomic_write_bytes(paths[1], to_markdown(results).encode())
    atomic_write_bytes(paths[2], (json.dumps(results, indent=1) + "\n").encode())
    return paths


# --- command line ---------------------------------------------------------------------------


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def _eps_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None
    if not all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"eps values must lie in [0, 1], got {text!r}")
    return values


def add_attack_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``rbfi attack CHECKPOINT``."""
    defaults = SuiteOptions()
    p = parser
    p.add_argument("checkpoint", help="run directory of the model to attack")
    p.add_argument("--suite", choices=SUITES, default="strong", help="default: strong")
    p.add_argument(
        "--eps", type=_eps_list, default=DEFAULT_EPS, help="comma-separated, default 0,0.1,...,0.5"
    )
    p.add_argument(
        "--limit", type=positive_int, default=1000, help="first N test images (default 1000)"
    )
    p.add_argument("--batch-size", type=positive_int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--out", default=None, help="results directory (default results/attack-NAME-SUITE)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace results already in --out")
    p.add_argument(
        "--transfer-source", default=None, help="checkpoint of a separately trained ReLU net"
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--data-dir", default=None, help="directory of MNIST IDX files")
    p.add_argument("--attacks", default=None, help="comma-separated subset of the suite's attacks")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--estimate-only", action="store_true", help="print the cost estimate, exit")
    g = p.add_argument_group("attack budget")
    g.add_argument("--ifgsm-steps", type=positive_int, default=defaults.ifgsm_steps)
    g.add_argument("--paper-pgd-steps", type=positive_int, default=defaults.paper_pgd_steps)
    g.add_argument("--paper-pgd-restarts", type=positive_int, default=defaults.paper_pgd_restarts)
    g.add_argument("--adadelta-lr", type=positive_float, default=defaults.adadelta_lr)
    g.add_argument("--pgd-steps", type=positive_int, default=defaults.pgd_steps)
    g.add_argument("--pgd-restarts", type=positive_int, default=defaults.pgd_restarts)
    g.add_argument("--pgd-alpha", type=positive_float, default=None, help="default 2.5 eps/steps")
    g.add_argument("--square-queries", type=positive_int, default=defaults.square_queries)
    g.add_argument("--autoattack", choices=AUTOATTACK_CHOICES, default=defaults.autoattack)
    g.add_argument("--transfer-steps", type=positive_int, default=defaults.transfer_steps)
    g.add_argument(
        "--check-subset",
        type=_non_negative_int,
        default=100,
        help="examples for the step-doubling masking check (0: skip)",
    )


def run_attack_command(args: argparse.Namespace) -> int:
    """``rbfi attack``: evaluate, write robustness.{json,md,png} to --out, print the table."""
    import rbfi
    from rbfi.data import load_mnist

    options = SuiteOptions(
        ifgsm_steps=args.ifgsm_steps,
        paper_pgd_steps=args.paper_pgd_steps,
        paper_pgd_restarts=args.paper_pgd_restarts,
        adadelta_lr=args.adadelta_lr,
        pgd_steps=args.pgd_steps,
        pgd_restarts=args.pgd_restarts,
        pgd_alpha=args.pgd_alpha,
        square_queries=args.square_queries,
        autoattack=args.autoattack,
        transfer_steps=args.transfer_steps,
    )
    attacks = None
    if args.attacks:
        attacks = tuple(a.strip() for a in args.attacks.split(",") if a.strip())
    config = EvalConfig(
        suite=args.suite,
        eps=args.eps,
        batch_size=args.batch_size,
        seed=args.seed,
        attacks=attacks,
        check_subset=args.check_subset,
        options=options,
    )
    name = Path(args.checkpoint).resolve().name
    out_dir = Path(args.out or Path("results") / f"attack-{name}-{args.suite}")
    if not args.estimate_only and existing_results(out_dir) and not args.overwrite:
        raise ValueError(
            f"{out_dir} already holds results ({', '.join(existing_results(out_dir))}); "
            f"pass --overwrite or choose another --out"
        )
    if args.threads:
        torch.set_num_threads(args.threads)
    model = rbfi.load(args.checkpoint, map_location=args.device)
    source = None
    if args.transfer_source:
        source = rbfi.load(args.transfer_source, map_location=args.device)
    x, y = load_mnist("test", args.data_dir)
    x, y = x[: args.limit], y[: args.limit]
    results = evaluate_robustness(
        model,
        x,
        y,
        config,
        transfer_source=source,
        progress=not args.no_progress,
        estimate_only=args.estimate_only,
    )
    results["model"]["checkpoint"] = str(args.checkpoint)
    if args.estimate_only:
        return 0
    paths = write_results(results, out_dir, overwrite=args.overwrite)
    print(to_markdown(results))
    print(f"results: {', '.join(str(p) for p in paths)}", file=sys.stderr)
    return 0


__all__ = [
    "DEFAULT_EPS",
    "EvalConfig",
    "add_attack_arguments",
    "evaluate_robustness",
    "masking_checks",
    "plot",
    "run_attack_command",
    "to_markdown",
    "worst_case",
    "write_results",
]
