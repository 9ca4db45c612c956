"""Robustness evaluation: a suite of attacks over a grid of eps, per-example outcomes, the
per-example worst case, the certified lower bound beside it, and the checks.

Protocol (docs/evaluation.md): every attack of the suite runs on every test example that is
correctly classified without attack, at every eps > 0 of the grid (so each attack's accuracy is
exact); inside an attack an example stops costing passes once it is broken. Examples
misclassified without attack count as broken everywhere. The *worst case* at eps counts an
example as robust only if no attack broke it at any eps' <= eps of the grid (B_eps' ⊂ B_eps,
so an adversarial example at eps' is one at eps too). The *certified* accuracy at eps counts
the examples interval bounds prove robust (:func:`rbfi.bounds.certify`): the true robust
accuracy lies between the two. An example both certified and broken fails the evaluation.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rbfi.attacks.base import ROUNDING
from rbfi.attacks.suites import AttackSpec, build_suite, step_check_spec
from rbfi.bounds import unsupported
from rbfi.evaluation.checks import (
    CheckContext,
    SoundnessError,
    run_masking_checks,
    soundness_violations,
)
from rbfi.evaluation.config import EvalConfig, attack_seed
from rbfi.evaluation.cost import estimate_cost, hours, measure_pass_seconds, passes
from rbfi.evaluation.results import (
    bits,
    certified_rows,
    mask,
    model_device,
    require_images,
    results_header,
)
from rbfi.io import Progress
from rbfi.models import describe, predict

FORMAT = "rbfi-robustness"
FORMAT_VERSION = 3  # 3: certified flags under "certified" (2: "correct"), shared header


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


def select_specs(specs: list[AttackSpec], wanted: Sequence[str] | None) -> list[AttackSpec]:
    """The specs named in ``wanted`` (all when None); ValueError for unknown names."""
    if wanted is None:
        return specs
    names = [s.name for s in specs]
    unknown = [a for a in wanted if a not in names]
    if unknown:
        raise ValueError(
            f"unknown attack(s) {', '.join(unknown)} for this suite and model; "
            f"choose from {', '.join(names)}"
        )
    return [s for s in specs if s.name in wanted]


def spec_json(spec: AttackSpec, seed: int) -> dict:
    """What the results record of an attack: its declarations and full settings."""
    attack = spec.probe()
    settings = attack.settings()
    settings.pop("eps", None)
    settings.pop("seed", None)
    return {
        "name": spec.name,
        "family": spec.family,
        "kind": spec.kind,
        "gradient": attack.reported_gradient(),
        "loss": attack.reported_loss(),
        "summary": spec.summary,
        "settings": settings,
        "seeds": f"zlib.crc32(f'{seed}/{spec.name}/{{eps:g}}')",
    }


@dataclass
class _Plan:
    """What an evaluation runs: the attacks, the examples they run on, the cost estimate."""

    specs: list[AttackSpec]
    skipped: list[dict]
    clean_predictions: Tensor  # (n,) the model's classes without attack
    clean: Tensor  # (n,) bool: correct without attack
    attacked: Tensor  # indices of the examples the attacks run on (the clean-correct ones)
    step_spec: AttackSpec | None  # the attack of the step-doubling check
    cost: dict


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
    :func:`rbfi.evaluation.report.write_results`). ``transfer_source``: a separately trained
    (ReLU) model, used by the transfer attack and as the ReLU reference of the checks.

    Raises ValueError for an empty set of images, and :class:`SoundnessError` (after filling
    ``results``, available as the error's ``results`` attribute) when an example is both
    certified and broken.
    """
    config = config or EvalConfig()
    log = log or (lambda message: print(message, file=sys.stderr))
    require_images(x, y)
    device = model_device(model)
    x, y = x.to(device), y.to(device)
    if transfer_source is not None:
        transfer_source = transfer_source.to(device).eval()
    was_training = model.training
    model.eval()
    try:
        plan = plan_evaluation(model, x, y, config, transfer_source)
        log(describe_cost(plan, config, len(x)))
        results = robustness_header(model, y, plan, config, transfer_source)
        if estimate_only:
            return results
        started = time.perf_counter()
        results["certified"], certify_note = certified_floor(model, x, y, config)
        outcomes = run_suite(model, x, y, plan, config, progress)
        results["seconds"] = time.perf_counter() - started
        results["results"] = outcomes
        results["worst_case"] = worst_case(outcomes, plan.clean, config.eps)
        ctx = CheckContext(
            model,
            x,
            y,
            plan.clean,
            plan.attacked,
            outcomes,
            results["worst_case"],
            plan.specs,
            config,
            transfer_source,
            plan.step_spec,
        )
        results["checks"], results["warnings"], results["notes"] = run_masking_checks(ctx)
        results["notes"] += [certify_note] if certify_note else []
        results["soundness_violations"] = soundness_violations(outcomes, results["certified"] or {})
        raise_on_violations(results)
        return results
    finally:
        model.train(was_training)


def plan_evaluation(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    config: EvalConfig,
    transfer_source: nn.Module | None,
) -> _Plan:
    """The suite's attacks (those of ``config.attacks``), the clean predictions, and the cost
    estimate from passes timed on this model (:mod:`rbfi.evaluation.cost`)."""
    specs, skipped = build_suite(
        config.suite, model, config.options, transfer_source=transfer_source
    )
    specs = select_specs(specs, config.attacks)
    clean_predictions = predict(model, x, config.batch_size)
    clean = clean_predictions == y
    attacked = clean.nonzero().squeeze(1)
    step_spec = step_check_spec(specs) if config.check_subset else None
    source_seconds = 0.0
    if transfer_source is not None:
        source_seconds = measure_pass_seconds(transfer_source, x, y)["backward_true"]
    cost = estimate_cost(
        specs,
        len(attacked),
        len([e for e in config.eps if e > 0]),
        measure_pass_seconds(model, x, y),
        source_seconds,
        step_spec,
        min(config.check_subset, len(attacked)),
    )
    return _Plan(specs, skipped, clean_predictions, clean, attacked, step_spec, cost)


def describe_cost(plan: _Plan, config: EvalConfig, n_images: int) -> str:
    """One line: how many attacks, images and passes, the time bound and the largest shares."""
    counts = plan.cost["example_passes"]
    total_s = max(plan.cost["upper_bound_seconds"], 1e-9)
    costly = sorted(plan.cost["per_attack"].items(), key=lambda kv: -kv[1]["seconds"])[:4]
    return (
        f"suite {config.suite}: {len(plan.specs)} attacks x "
        f"{len([e for e in config.eps if e > 0])} eps > 0 on {n_images} images "
        f"({len(plan.attacked)} correct without attack): up to {counts['forward']:.3g} forward, "
        f"{counts['backward_true']:.3g} true-gradient and {counts['backward_pseudo']:.3g} "
        f"pseudogradient backward example-passes (checks included); at the measured speed at "
        f"most ~{hours(total_s)}, early stopping usually cuts this a lot. Largest shares: "
        + ", ".join(f"{name} {v['seconds'] / total_s:.0%}" for name, v in costly)
    )


def robustness_header(
    model: nn.Module,
    y: Tensor,
    plan: _Plan,
    config: EvalConfig,
    transfer_source: nn.Module | None,
) -> dict:
    """The shared header (:func:`rbfi.evaluation.results.results_header`) and what the
    evaluation will run: the eps grid, the attacks and their settings, those skipped, the
    cost estimate."""
    results = results_header(
        model,
        y,
        plan.clean_predictions,
        format_name=FORMAT,
        version=FORMAT_VERSION,
        settings=config.to_json(),
    )
    results["transfer_source"] = describe(transfer_source) if transfer_source else None
    results["eps"] = list(config.eps)
    results["attacks"] = [spec_json(s, config.seed) for s in plan.specs]
    results["skipped"] = plan.skipped
    results["cost_estimate"] = plan.cost
    return results


def certified_floor(
    model: nn.Module, x: Tensor, y: Tensor, config: EvalConfig
) -> tuple[dict | None, str | None]:
    """(the certified rows, None); (None, why) for a model without interval rules; (None,
    None) when ``config.certify`` is off."""
    if not config.certify:
        return None, None
    missing_rule = unsupported(model)
    if missing_rule is not None:
        return (
            None,
            f"no certified bound: {missing_rule} has no interval rule (rbfi.bounds.interval)",
        )
    return certified_rows(model, x, y, config.eps, config.batch_size), None


def run_suite(
    model: nn.Module, x: Tensor, y: Tensor, plan: _Plan, config: EvalConfig, progress: bool
) -> dict[str, dict[str, dict]]:
    """attack name -> eps key -> the outcome of that attack at that eps (:func:`_run_attack`)."""
    eps_attacked = [e for e in config.eps if e > 0]
    total = sum(sum(passes(s).values()) for s in plan.specs) * len(plan.attacked)
    outcomes: dict[str, dict[str, dict]] = {s.name: {} for s in plan.specs}
    with Progress(total * len(eps_attacked), "attacks", unit="pass", enabled=progress) as bar:
        for eps in config.eps:
            for spec in plan.specs:
                outcomes[spec.name][f"{eps:g}"] = _run_attack(
                    spec, model, x, y, plan.clean, plan.attacked, eps, config, bar
                )
    return outcomes


def raise_on_violations(results: dict) -> None:
    """:class:`SoundnessError` (carrying ``results``) when an example is certified yet broken."""
    violations = results["soundness_violations"]
    if not violations:
        return
    first = violations[0]
    error = SoundnessError(
        f"{sum(len(v['examples']) for v in violations)} example(s) certified yet broken "
        f"(first: {first['attack']} at eps {first['eps']}, certified at "
        f"{first['certified_at']}, example {first['examples'][0]}): a bug in the bounds "
        f"or in an attack"
    )
    error.results = results
    raise error


def _run_attack(
    spec: AttackSpec,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    attacked: Tensor,
    eps: float,
    config: EvalConfig,
    bar: Progress,
) -> dict:
    """One attack at one eps on every initially-correct example; outcomes per example."""
    correct = clean.clone()
    if eps == 0:  # every attack is the identity at eps = 0 (tested for each attack)
        return {"accuracy": correct.float().mean().item(), "correct": bits(correct)}
    attack = spec.build(model, eps, attack_seed(config.seed, spec.name, eps))
    stats = _Stats()
    units = sum(attack.passes().values())
    bar.set_description(f"{spec.name} eps {eps:g}")
    start = time.perf_counter()
    for i in range(0, len(attacked), config.batch_size):
        idx = attacked[i : i + config.batch_size]
        x_adv = attack(x[idx], y[idx])
        verify_threat_model(x_adv, x[idx], eps, spec.name)  # independent of the attack's check
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


def verify_threat_model(x_adv: Tensor, x: Tensor, eps: float, name: str) -> None:
    """RuntimeError unless every x_adv lies within eps of x (l_inf) and in [0, 1]."""
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
            same &= mask(per_eps[key]["correct"])
        robust &= same
        out[key] = {
            "accuracy": robust.float().mean().item(),
            "accuracy_same_eps": same.float().mean().item(),
            "correct": bits(robust),
        }
    return out
