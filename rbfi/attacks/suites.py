"""Named suites of attacks: ``paper`` (the attacks as the author ran them, plus his one-sided
PGD) and ``strong`` (everything: adaptive BPDA versions, other losses, sign PGD with
restarts, Square, transfer, AutoAttack).

An :class:`AttackSpec` is a recipe: ``spec.build(model, eps, seed)`` makes the attack. Names:
``<attack>[-bpda][-ce|-margin]``; no suffix = true gradients and the model's training loss
(the author's defaults).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from torch import nn

from rbfi.attacks.base import Attack
from rbfi.attacks.external import AutoAttack, Square, package_available
from rbfi.attacks.fgsm import FGSM
from rbfi.attacks.noise import UniformNoise
from rbfi.attacks.pgd import IFGSM, PGD, PaperPGD
from rbfi.attacks.transfer import Transfer
from rbfi.nn import rbfi_layers

SUITES = ("paper", "strong")
AUTOATTACK_CHOICES = ("standard", "plus", "apgd", "off")


@dataclass
class SuiteOptions:
    """Budget knobs of the suites (all exposed on the command line)."""

    ifgsm_steps: int = 10
    paper_pgd_steps: int = 100
    paper_pgd_restarts: int = 20
    adadelta_lr: float = 1.0
    pgd_steps: int = 100
    pgd_restarts: int = 5
    pgd_alpha: float | None = None  # None: 2.5 eps / pgd_steps
    square_queries: int = 5000
    autoattack: str = "standard"  # standard | plus | apgd | off
    transfer_steps: int = 100

    def __post_init__(self) -> None:
        for name in (
            "ifgsm_steps",
            "paper_pgd_steps",
            "paper_pgd_restarts",
            "pgd_steps",
            "pgd_restarts",
            "square_queries",
            "transfer_steps",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.adadelta_lr > 0 or (self.pgd_alpha is not None and not self.pgd_alpha > 0):
            raise ValueError("adadelta_lr and pgd_alpha must be > 0")
        if self.autoattack not in AUTOATTACK_CHOICES:
            raise ValueError(
                f"autoattack must be one of {', '.join(AUTOATTACK_CHOICES)}, "
                f"got {self.autoattack!r}"
            )

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AttackSpec:
    """How to build one attack of a suite, and what it is."""

    name: str
    cls: type[Attack]
    kwargs: dict = field(default_factory=dict)
    kind: str = "white-box"  # "white-box" | "black-box"
    summary: str = ""

    def build(self, model: nn.Module, eps: float, seed: int) -> Attack:
        return self.cls(model, eps, seed=seed, **self.kwargs)

    @property
    def gradient(self) -> str:
        return "-" if self.kind == "black-box" else self.kwargs.get("gradient", "true")

    @property
    def loss(self) -> str:
        if self.kind == "black-box":
            return "margin" if self.cls is Square else "-"
        if self.cls is AutoAttack:
            return "package"
        return self.kwargs.get("loss", "training")


def has_rbfi(model: nn.Module) -> bool:
    return next(iter(rbfi_layers(model)), None) is not None


def build_suite(
    name: str,
    model: nn.Module,
    options: SuiteOptions | None = None,
    *,
    transfer_source: nn.Module | None = None,
) -> tuple[list[AttackSpec], list[dict]]:
    """The attacks of suite ``name`` for ``model``: (specs, skipped), skipped being
    [{"name", "reason"}] for attacks that do not apply (duplicates, missing packages)."""
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    o = options or SuiteOptions()
    training_loss = getattr(model, "loss", "cross_entropy")
    specs = [
        AttackSpec("fgsm", FGSM, {}, summary="eq. 12, true gradients, training loss"),
        AttackSpec(
            "ifgsm",
            IFGSM,
            {"steps": o.ifgsm_steps, "early_stop": False},
            summary=f"eq. 13, {o.ifgsm_steps} steps of eps/{o.ifgsm_steps}, last iterate",
        ),
        AttackSpec("noise", UniformNoise, kind="black-box", summary="(1-eps) x + eps U[0,1]^n"),
    ]
    paper_pgd = {"steps": o.paper_pgd_steps, "restarts": o.paper_pgd_restarts, "lr": o.adadelta_lr}
    pgd_summary = f"AdaDelta lr {o.adadelta_lr:g}, {o.paper_pgd_steps} steps x " + (
        f"{o.paper_pgd_restarts} restarts, any step"
    )
    specs += [
        AttackSpec("pgd-paper", PaperPGD, paper_pgd, summary=pgd_summary),
        AttackSpec(
            "pgd-paper-legacy",
            PaperPGD,
            {**paper_pgd, "projection": "legacy_one_sided"},
            summary=pgd_summary + ", the author's one-sided projection",
        ),
    ]
    skipped: list[dict] = []
    if name == "paper":
        return specs, skipped

    sign_pgd = {"steps": o.pgd_steps, "restarts": o.pgd_restarts, "alpha": o.pgd_alpha}
    alpha = "2.5 eps/steps" if o.pgd_alpha is None else f"{o.pgd_alpha:g}"
    gradients = ["true", "pseudo"]
    if not has_rbfi(model):
        gradients = ["true"]
        skipped.append({"name": "*-bpda", "reason": "no RBFI layers: pseudo = true gradients"})
    for gradient in gradients:
        tag = "-bpda" if gradient == "pseudo" else ""
        what = "pseudogradients (BPDA)" if gradient == "pseudo" else "true gradients"
        for loss in ("training", "cross_entropy", "margin"):
            suffix = {"training": "", "cross_entropy": "-ce", "margin": "-margin"}[loss]
            if gradient == "true" and loss == "training":
                continue  # fgsm, ifgsm: already in the list (the paper's versions)
            if loss == "cross_entropy" and training_loss == "cross_entropy":
                skipped.append(
                    {"name": f"fgsm{tag}-ce, ifgsm{tag}-ce", "reason": "= training loss"}
                )
                continue
            common = {"loss": loss, "gradient": gradient}
            specs += [
                AttackSpec(f"fgsm{tag}{suffix}", FGSM, common, summary=f"{what}, {loss} loss"),
                AttackSpec(
                    f"ifgsm{tag}{suffix}",
                    IFGSM,
                    {**common, "steps": o.ifgsm_steps},
                    summary=f"{what}, {loss} loss, {o.ifgsm_steps} steps, any step",
                ),
            ]
        if gradient == "pseudo":
            specs.append(
                AttackSpec(
                    "pgd-paper-bpda",
                    PaperPGD,
                    {**paper_pgd, "gradient": "pseudo"},
                    summary=pgd_summary + ", pseudogradients (BPDA)",
                )
            )
        for loss, suffix in (("cross_entropy", "-ce"), ("margin", "-margin")):
            specs.append(
                AttackSpec(
                    f"pgd{tag}{suffix}",
                    PGD,
                    {**sign_pgd, "loss": loss, "gradient": gradient},
                    summary=f"sign PGD, {what}, {loss} loss, {o.pgd_steps} steps x "
                    f"{o.pgd_restarts} restarts, alpha {alpha}, any step",
                )
            )

    if package_available():
        specs.append(
            AttackSpec(
                "square",
                Square,
                {"queries": o.square_queries},
                kind="black-box",
                summary=f"pyautoattack Square, {o.square_queries} queries, margin loss",
            )
        )
        if o.autoattack != "off":
            for gradient in gradients:
                tag = "-bpda" if gradient == "pseudo" else ""
                specs.append(
                    AttackSpec(
                        f"autoattack{tag}",
                        AutoAttack,
                        {"version": o.autoattack, "gradient": gradient},
                        summary=f"pyautoattack AutoAttack ({o.autoattack}), "
                        + ("pseudogradients (BPDA)" if gradient == "pseudo" else "true gradients"),
                    )
                )
        else:
            skipped.append({"name": "autoattack", "reason": "switched off (--autoattack off)"})
    else:
        skipped.append({"name": "square, autoattack", "reason": "pyautoattack not installed"})

    if transfer_source is not None:
        specs.append(
            AttackSpec(
                "transfer",
                Transfer,
                {"source": transfer_source, "steps": o.transfer_steps},
                kind="black-box",
                summary=f"sign PGD-CE on the source model, {o.transfer_steps} steps, last iterate",
            )
        )
    else:
        skipped.append({"name": "transfer", "reason": "no source model (--transfer-source)"})
    return specs, skipped


def step_check_spec(specs: list[AttackSpec]) -> AttackSpec | None:
    """The attack used for the 'more steps never help the model' check: the strongest-looking
    iterative white-box attack of the suite (BPDA margin PGD > margin PGD > the paper's PGD)."""
    by_name = {s.name: s for s in specs}
    for name in ("pgd-bpda-margin", "pgd-margin", "pgd-paper"):
        if name in by_name:
            return by_name[name]
    return None
