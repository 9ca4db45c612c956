"""Named suites of attacks, as data: ``paper`` (the attacks as the author ran them, plus his
one-sided PGD) and ``strong`` (everything: adaptive BPDA versions, other losses, sign PGD with
restarts, Square, transfer, AutoAttack).

An :class:`AttackSpec` is a recipe: ``spec.build(model, eps, seed)`` makes the attack. Names:
``<attack>[-bpda][-ce|-margin]``; no suffix = true gradients and the model's training loss
(the author's defaults). Each spec names the conditions it needs (``requires``); a spec whose
condition fails is listed as skipped, with the reason, instead of run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from rbfi.attacks._package import package_available
from rbfi.attacks.autoattack import AutoAttack
from rbfi.attacks.base import Attack
from rbfi.attacks.fgsm import FGSM
from rbfi.attacks.ifgsm import IFGSM
from rbfi.attacks.noise import UniformNoise
from rbfi.attacks.paper_pgd import PaperPGD
from rbfi.attacks.pgd import PGD
from rbfi.attacks.square import Square
from rbfi.attacks.transfer import Transfer
from rbfi.nn import has_rbfi
from rbfi.options import Choice, PositiveFloat, PositiveInt, check_fields, option

SUITES = ("paper", "strong")
# The attack catalogue: one display title per attack, for every table, figure, claim and report
# that names the attack to people (its name stays the key in results files).
TITLES = {
    "fgsm": "FGSM",
    "ifgsm": "I-FGSM",
    "noise": "noise",
    "pgd-paper": "PGD, corrected",
    "pgd-paper-legacy": "PGD as the author ran it",
}
AUTOATTACK_CHOICES = ("standard", "plus", "apgd", "off")
GROUP = "attack budget"


@dataclass
class SuiteOptions:
    """Budget knobs of the suites (all on the command line of ``rbfi attack``)."""

    ifgsm_steps: int = option(10, "I-FGSM steps (eq. 13)", kind=PositiveInt(), group=GROUP)
    paper_pgd_steps: int = option(100, "steps of the paper's PGD", kind=PositiveInt(), group=GROUP)
    paper_pgd_restarts: int = option(
        20, "restarts of the paper's PGD", kind=PositiveInt(), group=GROUP
    )
    adadelta_lr: float = option(
        1.0, "AdaDelta lr of the paper's PGD", kind=PositiveFloat(), group=GROUP
    )
    pgd_steps: int = option(100, "steps of sign PGD", kind=PositiveInt(), group=GROUP)
    pgd_restarts: int = option(5, "restarts of sign PGD", kind=PositiveInt(), group=GROUP)
    pgd_alpha: float | None = option(
        None, "sign PGD step (default 2.5 eps / steps)", kind=PositiveFloat(), group=GROUP
    )
    square_queries: int = option(
        5000, "queries of the Square attack", kind=PositiveInt(), group=GROUP
    )
    autoattack: str = option(
        "standard", "AutoAttack version", kind=Choice(AUTOATTACK_CHOICES), group=GROUP
    )
    transfer_steps: int = option(
        100, "PGD steps on the transfer source", kind=PositiveInt(), group=GROUP
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class AttackSpec:
    """How to build one attack of a suite, and where it belongs.

    ``family`` groups attacks in reports and plots: "paper" (as the author ran them),
    "white-box" (true gradients, other losses), "bpda" (through pseudogradients), "black-box".
    ``requires`` names conditions of :data:`REQUIREMENTS` the spec needs to be run.
    """

    name: str
    cls: type[Attack]
    kwargs: dict = field(default_factory=dict)
    family: str = "white-box"
    summary: str = ""
    requires: tuple[str, ...] = ()

    def build(self, model: nn.Module, eps: float, seed: int) -> Attack:
        return self.cls(model, eps, seed=seed, **self.kwargs)

    def probe(self) -> Attack:
        """The attack built on a stand-in model, to read its settings and declarations."""
        return self.build(_Probe(), 0.1, 0)

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def title(self) -> str:
        """How people read its name (:data:`TITLES`; else the name itself)."""
        return TITLES.get(self.name, self.name)

    @property
    def gradient(self) -> str:
        return self.probe().reported_gradient()

    @property
    def loss(self) -> str:
        return self.probe().reported_loss()


class _Probe(nn.Module):
    """Stand-in model to build attack objects for their settings and pass counts."""

    loss = "cross_entropy"

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - never called
        return x


@dataclass
class SuiteContext:
    """What the conditions of :data:`REQUIREMENTS` look at."""

    model: nn.Module
    options: SuiteOptions
    transfer_source: nn.Module | None = None


# condition -> (holds?, the reason given when it does not)
REQUIREMENTS: dict[str, tuple[Callable[[SuiteContext], bool], str]] = {
    "rbfi": (lambda c: has_rbfi(c.model), "no RBFI layers: pseudo = true gradients"),
    "not-ce-trained": (
        lambda c: getattr(c.model, "loss", "cross_entropy") != "cross_entropy",
        "= the training loss version",
    ),
    "pyautoattack": (lambda c: package_available(), "pyautoattack not installed"),
    "autoattack-on": (lambda c: c.options.autoattack != "off", "switched off (--autoattack off)"),
    "transfer-source": (
        lambda c: c.transfer_source is not None,
        "no source model (--transfer-source)",
    ),
}


def _gradient_variants(o: SuiteOptions) -> list[AttackSpec]:
    """FGSM and I-FGSM with each loss and gradient mode, the paper's PGD through
    pseudogradients, sign PGD with the CE and margin losses."""
    specs = []
    paper_pgd = {"steps": o.paper_pgd_steps, "restarts": o.paper_pgd_restarts, "lr": o.adadelta_lr}
    sign_pgd = {"steps": o.pgd_steps, "restarts": o.pgd_restarts, "alpha": o.pgd_alpha}
    alpha = "2.5 eps/steps" if o.pgd_alpha is None else f"{o.pgd_alpha:g}"
    for gradient, tag, family, what, needs in (
        ("true", "", "white-box", "true gradients", ()),
        ("pseudo", "-bpda", "bpda", "pseudogradients (BPDA)", ("rbfi",)),
    ):
        for loss, suffix in (("training", ""), ("cross_entropy", "-ce"), ("margin", "-margin")):
            if gradient == "true" and loss == "training":
                continue  # fgsm, ifgsm: the paper's versions, already in the suite
            extra = ("not-ce-trained",) if loss == "cross_entropy" else ()
            common = {"loss": loss, "gradient": gradient}
            specs += [
                AttackSpec(
                    f"fgsm{tag}{suffix}",
                    FGSM,
                    common,
                    family,
                    f"{what}, {loss} loss",
                    needs + extra,
                ),
                AttackSpec(
                    f"ifgsm{tag}{suffix}",
                    IFGSM,
                    {**common, "steps": o.ifgsm_steps},
                    family,
                    f"{what}, {loss} loss, {o.ifgsm_steps} steps, any step",
                    needs + extra,
                ),
            ]
        if gradient == "pseudo":
            specs.append(
                AttackSpec(
                    "pgd-paper-bpda",
                    PaperPGD,
                    {**paper_pgd, "gradient": "pseudo"},
                    family,
                    f"AdaDelta lr {o.adadelta_lr:g}, {o.paper_pgd_steps} steps x "
                    f"{o.paper_pgd_restarts} restarts, any step, {what}",
                    needs,
                )
            )
        for loss, suffix in (("cross_entropy", "-ce"), ("margin", "-margin")):
            specs.append(
                AttackSpec(
                    f"pgd{tag}{suffix}",
                    PGD,
                    {**sign_pgd, "loss": loss, "gradient": gradient},
                    family,
                    f"sign PGD, {what}, {loss} loss, {o.pgd_steps} steps x {o.pgd_restarts} "
                    f"restarts, alpha {alpha}, any step",
                    needs,
                )
            )
    return specs


def suite_specs(name: str, o: SuiteOptions, transfer_source: nn.Module | None = None):
    """Every spec of suite ``name``, before the conditions are checked."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    paper_pgd = {"steps": o.paper_pgd_steps, "restarts": o.paper_pgd_restarts, "lr": o.adadelta_lr}
    pgd_summary = (
        f"AdaDelta lr {o.adadelta_lr:g}, {o.paper_pgd_steps} steps x "
        f"{o.paper_pgd_restarts} restarts, any step"
    )
    specs = [
        AttackSpec("fgsm", FGSM, {}, "paper", "eq. 12, true gradients, training loss"),
        AttackSpec(
            "ifgsm",
            IFGSM,
            {"steps": o.ifgsm_steps, "early_stop": False},
            "paper",
            f"eq. 13, {o.ifgsm_steps} steps of eps/{o.ifgsm_steps}, last iterate",
        ),
        AttackSpec("noise", UniformNoise, {}, "paper", "(1-eps) x + eps U[0,1]^n"),
        AttackSpec("pgd-paper", PaperPGD, paper_pgd, "paper", pgd_summary),
        AttackSpec(
            "pgd-paper-legacy",
            PaperPGD,
            {**paper_pgd, "projection": "legacy_one_sided"},
            "paper",
            pgd_summary + ", the author's one-sided projection",
        ),
    ]
    if name == "paper":
        return specs
    specs += _gradient_variants(o)
    specs.append(
        AttackSpec(
            "square",
            Square,
            {"queries": o.square_queries},
            "black-box",
            f"pyautoattack Square, {o.square_queries} queries, margin loss",
            ("pyautoattack",),
        )
    )
    for gradient, tag, family, needs in (
        ("true", "", "white-box", ()),
        ("pseudo", "-bpda", "bpda", ("rbfi",)),
    ):
        what = "pseudogradients (BPDA)" if gradient == "pseudo" else "true gradients"
        specs.append(
            AttackSpec(
                f"autoattack{tag}",
                AutoAttack,
                {"version": o.autoattack, "gradient": gradient},
                family,
                f"pyautoattack AutoAttack ({o.autoattack}), {what}",
                ("pyautoattack", "autoattack-on", *needs),
            )
        )
    specs.append(
        AttackSpec(
            "transfer",
            Transfer,
            {"source": transfer_source, "steps": o.transfer_steps},
            "black-box",
            f"sign PGD-CE on the source model, {o.transfer_steps} steps, last iterate",
            ("transfer-source",),
        )
    )
    return specs


def build_suite(
    name: str,
    model: nn.Module,
    options: SuiteOptions | None = None,
    *,
    transfer_source: nn.Module | None = None,
) -> tuple[list[AttackSpec], list[dict]]:
    """The attacks of suite ``name`` that apply to ``model``: (specs, skipped), skipped being
    [{"name", "reason"}] for the specs whose conditions fail."""
    context = SuiteContext(model, options or SuiteOptions(), transfer_source)
    kept, skipped = [], []
    for spec in suite_specs(name, context.options, transfer_source):
        failed = [r for r in spec.requires if not REQUIREMENTS[r][0](context)]
        if failed:
            skipped.append({"name": spec.name, "reason": REQUIREMENTS[failed[0]][1]})
        else:
            kept.append(spec)
    return kept, skipped


# the attack of the "more steps never help the model" check, in order of preference
STEP_CHECK_PREFERENCE = ("pgd-bpda-margin", "pgd-margin", "pgd-paper")


def step_check_spec(specs: list[AttackSpec]) -> AttackSpec | None:
    """The strongest-looking iterative white-box attack of the suite (BPDA margin PGD > margin
    PGD > the paper's PGD), for the step-doubling masking check."""
    by_name = {s.name: s for s in specs}
    return next((by_name[n] for n in STEP_CHECK_PREFERENCE if n in by_name), None)
