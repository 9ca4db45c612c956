"""Checks of an evaluation, one function per check, numbered as in docs/evaluation.md.

Masking checks (1-8) look for signs that the attacks were too weak (gradient masking); each
returns a :class:`CheckResult`: what it measured, the warnings it raises, and notes. The
soundness check (:func:`soundness_violations`) compares the certified lower bound with the
attacks: an example both certified and broken means a bug in the bounds or in an attack, and
the evaluation fails (:class:`SoundnessError`), it does not warn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from rbfi.attacks.pgd import PGD
from rbfi.attacks.suites import AttackSpec
from rbfi.evaluation.config import EvalConfig, attack_seed
from rbfi.evaluation.results import mask, row_flags
from rbfi.models import predict

RELU_SANITY_EPS = 0.5  # the constant 0.5 image is within 0.5 of every image
RELU_SANITY_MAX_ACCURACY = 0.02
TOLERANCE = 0.02  # accuracy differences below this are noise for the checks


class SoundnessError(RuntimeError):
    """An example is certified at some eps and yet an attack broke it there."""


@dataclass
class CheckContext:
    """Everything the checks look at."""

    model: nn.Module
    x: Tensor
    y: Tensor
    clean: Tensor  # (n,) bool: correct without attack
    attacked: Tensor  # indices of the examples the attacks ran on
    outcomes: dict  # attack -> eps key -> outcome (see rbfi.evaluation.runner)
    worst: dict  # eps key -> worst case
    specs: list[AttackSpec]
    config: EvalConfig
    transfer_source: nn.Module | None = None
    step_spec: AttackSpec | None = None

    @property
    def eps_grid(self) -> list[float]:
        return [e for e in self.config.eps if e > 0]


@dataclass
class CheckResult:
    key: str  # where the measurements go in results["checks"]
    measured: dict | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def is_relu(model: nn.Module | None) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "arch", None) == "relu"


def check_1_zero_gradients(ctx: CheckContext) -> CheckResult:
    """Raised if a gradient attack starts with an exactly zero input gradient on some
    examples: it cannot move them (gradient masking in its plainest form)."""
    result = CheckResult("zero_gradient_fraction", {})
    for spec in ctx.specs:
        per_eps = {
            k: v["zero_gradient"] / max(v["attacked"], 1)
            for k, v in ctx.outcomes[spec.name].items()
            if "zero_gradient" in v
        }
        if per_eps:
            result.measured[spec.name] = per_eps
            worst = max(per_eps.values())
            if worst > 0:
                result.warnings.append(
                    f"{spec.name}: {worst:.1%} of the attacked examples have an exactly "
                    f"zero input gradient at the start: the gradient cannot move them"
                )
    return result


def check_2_black_box_vs_white_box(ctx: CheckContext) -> CheckResult:
    """Raised if a black-box attack beats all gradient attacks together at some eps: the
    gradients are being masked. AutoAttack is left out of the ensemble (it contains Square)."""
    result = CheckResult("black_box_vs_white_box", {})
    white = [s.name for s in ctx.specs if s.kind == "white-box" and s.cls.in_gradient_ensemble]
    black = [s.name for s in ctx.specs if s.kind == "black-box"]
    if not (white and black):
        return result
    for eps in ctx.eps_grid:
        key = f"{eps:g}"
        ensemble = ctx.clean.cpu().clone()
        for name in white:
            ensemble &= mask(ctx.outcomes[name][key]["correct"])
        only_black = torch.zeros_like(ensemble)
        row = {"gradient_ensemble": ensemble.float().mean().item()}
        for name in black:
            robust = mask(ctx.outcomes[name][key]["correct"])
            only_black |= ensemble & ~robust
            row[name] = ctx.outcomes[name][key]["accuracy"]
            if row[name] < row["gradient_ensemble"]:
                result.warnings.append(
                    f"black-box {name} beats the gradient attacks together at eps {key} "
                    f"({row[name]:.1%} < {row['gradient_ensemble']:.1%}): the gradients "
                    f"are being masked"
                )
        row["broken_only_by_black_box"] = int(only_black.sum())
        if only_black.any():
            result.notes.append(
                f"eps {key}: {int(only_black.sum())} example(s) broken only by black-box attacks"
            )
        result.measured[key] = row
    return result


def check_3_accuracy_rises_with_eps(ctx: CheckContext) -> CheckResult:
    """Raised if an attack's accuracy rises by more than 2 points from one eps to the next:
    B_eps grows with eps, so a sound attack can only find more."""
    result = CheckResult("accuracy_rises_with_eps", {})
    for name, per_eps in ctx.outcomes.items():
        accs = [per_eps[f"{e:g}"]["accuracy"] for e in ctx.config.eps]
        rise = max((b - a for a, b in zip(accs, accs[1:])), default=0.0)
        if rise > TOLERANCE:
            result.measured[name] = rise
            result.warnings.append(f"{name}: accuracy rises by {rise:.1%} from one eps to the next")
    return result


def check_4_step_doubling(ctx: CheckContext) -> CheckResult:
    """Raised if the strongest iterative attack, from the same random start, leaves more than
    2 points more accuracy with 2k steps than with k (last iterate, one restart)."""
    spec = ctx.step_spec
    if spec is None or not len(ctx.attacked):
        return CheckResult("step_doubling")
    subset = ctx.attacked[: ctx.config.check_subset]
    steps = spec.kwargs.get("steps", 100)
    batch = ctx.config.batch_size
    result = CheckResult("step_doubling")
    table = {}
    for eps in ctx.eps_grid:
        accs = {}
        for k in (steps, 2 * steps):
            kwargs = {**spec.kwargs, "steps": k, "restarts": 1, "early_stop": False}
            attack = spec.cls(
                ctx.model, eps, seed=attack_seed(ctx.config.seed, "step-check", eps), **kwargs
            )
            x_adv = torch.cat(
                [
                    attack(ctx.x[subset[i : i + batch]], ctx.y[subset[i : i + batch]])
                    for i in range(0, len(subset), batch)
                ]
            )
            correct = predict(ctx.model, x_adv, batch) == ctx.y[subset]
            accs[k] = correct.float().mean().item()
        table[f"{eps:g}"] = {f"{k}_steps": v for k, v in accs.items()}
        if accs[2 * steps] - accs[steps] > max(TOLERANCE, 1.0 / len(subset)):
            result.warnings.append(
                f"{spec.name} at eps {eps:g}: {2 * steps} steps leave more examples correct "
                f"than {steps} ({accs[2 * steps]:.1%} > {accs[steps]:.1%}, last iterate, "
                f"same start, {len(subset)} examples)"
            )
    result.measured = {"attack": spec.name, "examples": len(subset), "accuracy_on_subset": table}
    return result


def check_5_late_restarts(ctx: CheckContext) -> CheckResult:
    """A note (not a warning) when the last restart of an attack still broke examples: more
    restarts may lower its accuracy further."""
    result = CheckResult("late_restarts", {})
    for name, per_eps in ctx.outcomes.items():
        late = {
            key: v["restart_successes"][-1]
            for key, v in per_eps.items()
            if len(v.get("restart_successes", [])) > 1 and v["restart_successes"][-1] > 0
        }
        if late:
            result.measured[name] = late
            cells = ", ".join(f"{key} ({count})" for key, count in late.items())
            result.notes.append(
                f"{name}: its last restart still broke examples at eps {cells}; "
                f"more restarts may lower its accuracy"
            )
    return result


def check_6_relu_reference(ctx: CheckContext) -> CheckResult:
    """Raised if a ReLU net keeps more than 2% accuracy at eps 0.5 (its worst case when it is
    the evaluated model, else a 20-step PGD-CE on the transfer source): the attack machinery is
    suspect."""
    result = CheckResult("relu_reference", {})
    big = [e for e in ctx.eps_grid if e >= RELU_SANITY_EPS]
    if is_relu(ctx.model) and big:
        acc = ctx.worst[f"{big[-1]:g}"]["accuracy"]
        result.measured["evaluated_model"] = {"eps": big[-1], "worst_case_accuracy": acc}
    references = [("evaluated_model", ctx.model)] if is_relu(ctx.model) and not big else []
    if is_relu(ctx.transfer_source):
        references.append(("transfer_source", ctx.transfer_source))
    for label, reference in references:
        subset = torch.arange(min(len(ctx.x), max(ctx.config.check_subset, 100)))
        subset = subset.to(ctx.x.device)
        attack = PGD(
            reference, RELU_SANITY_EPS, steps=20, loss="cross_entropy", seed=ctx.config.seed
        )
        x_adv = attack(ctx.x[subset], ctx.y[subset])
        acc = (predict(reference, x_adv, ctx.config.batch_size) == ctx.y[subset]).float()
        result.measured[label] = {
            "eps": RELU_SANITY_EPS,
            "pgd_ce_20_steps_accuracy": acc.mean().item(),
        }
    for label, row in result.measured.items():
        acc = row.get("worst_case_accuracy", row.get("pgd_ce_20_steps_accuracy"))
        if acc > RELU_SANITY_MAX_ACCURACY:
            result.warnings.append(
                f"ReLU reference ({label}) keeps {acc:.1%} accuracy at eps {row['eps']:g}; "
                f"expected ~0: the attack machinery is suspect"
            )
    if not result.measured:
        result.notes.append(
            "no ReLU reference check: pass --transfer-source with a ReLU checkpoint"
        )
    return result


def check_7_constant_image_bound(ctx: CheckContext) -> CheckResult:
    """Raised if, at eps >= 0.5, the worst case exceeds the share of examples whose label is
    the class of the constant 0.5 image (within 0.5 of every image): the suite missed
    adversarial examples that provably exist."""
    big = [e for e in ctx.eps_grid if e >= RELU_SANITY_EPS]
    if not big:
        return CheckResult("gray_image_bound")
    gray = torch.full_like(ctx.x[:1], 0.5)
    gray_class = int(predict(ctx.model, gray, 1)[0])
    bound = (ctx.y.cpu() == gray_class).float().mean().item()
    n = max(len(ctx.x), 1)
    result = CheckResult("gray_image_bound", {"class": gray_class, "max_accuracy": bound})
    for eps in big:
        acc = ctx.worst[f"{eps:g}"]["accuracy"]
        if acc > bound + 1.0 / n / 2:
            result.warnings.append(
                f"eps {eps:g}: worst-case accuracy {acc:.1%} exceeds {bound:.1%}, the bound "
                f"given by the constant 0.5 image (classified {gray_class}), reachable "
                f"from every image: the suite missed adversarial examples that exist"
            )
    return result


def check_8_package_warnings(ctx: CheckContext) -> CheckResult:
    """The package attacks' own checks (AutoAttack: zero gradients, Square beating the
    gradient attacks), passed on as warnings."""
    result = CheckResult("package_warnings", {})
    for name, per_eps in ctx.outcomes.items():
        for key, v in per_eps.items():
            for message, count in v.get("package_warnings", {}).items():
                first = message.split(". ")[0].rstrip(".")
                times = f" (x{count})" if count > 1 else ""
                result.warnings.append(
                    f"{name} at eps {key}, the package's own check: {first}{times}"
                )
                result.measured.setdefault(name, {})[key] = v["package_warnings"]
    return result


MASKING_CHECKS: tuple[Callable[[CheckContext], CheckResult], ...] = (
    check_1_zero_gradients,
    check_2_black_box_vs_white_box,
    check_3_accuracy_rises_with_eps,
    check_4_step_doubling,
    check_5_late_restarts,
    check_6_relu_reference,
    check_7_constant_image_bound,
    check_8_package_warnings,
)


def run_masking_checks(ctx: CheckContext) -> tuple[dict, list[str], list[str]]:
    """(measurements by check, warnings, notes) of every masking check."""
    checks: dict = {}
    warnings: list[str] = []
    notes: list[str] = []
    for check in MASKING_CHECKS:
        result = check(ctx)
        if result.measured is not None:
            checks[result.key] = result.measured
        warnings += result.warnings
        notes += result.notes
    return checks, warnings, notes


def soundness_violations(outcomes: dict, certified: dict) -> list[dict]:
    """Examples certified at an eps that an attack broke at that eps (or a smaller one: a
    certificate at eps covers every smaller ball). Each is a bug in the bounds or the attack.

    ``certified``: eps key -> a certified row (:data:`rbfi.evaluation.results.CERTIFIED_ROW`;
    its flags under "certified", or "correct" in files before format 3). Returns
    [{"attack", "eps", "examples": [indices]}].
    """
    found = []
    keys = list(certified)
    for name, per_eps in outcomes.items():
        for key, outcome in per_eps.items():
            broken = ~mask(outcome["correct"])
            for cert_key in keys:
                if float(cert_key) < float(key):
                    continue
                certified_here = torch.tensor(row_flags(certified[cert_key]), dtype=torch.bool)
                bad = (certified_here & broken).nonzero().squeeze(1)
                if len(bad):
                    found.append(
                        {
                            "attack": name,
                            "eps": key,
                            "certified_at": cert_key,
                            "examples": bad.tolist(),
                        }
                    )
    return found
