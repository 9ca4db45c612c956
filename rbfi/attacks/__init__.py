"""Adversarial attacks, l_inf threat model, pixels in [0, 1] (paper, Sec. 5 and 6.2).

Every attack is built with the model and its settings and called as ``attack(x, y) -> x_adv``
(torchattacks convention); it works on any ``nn.Module`` classifier returning (B, C) scores::

    from rbfi.attacks import PGD
    x_adv = PGD(model, eps=0.3, loss="margin", gradient="pseudo", restarts=5)(x, y)

One file per attack (a subclass of :class:`Attack`), exported here; an attack runs in the
evaluation once a suite lists it: suites (lists of :class:`~rbfi.attacks.suites.AttackSpec`
recipes) are in :mod:`rbfi.attacks.suites`; the evaluation in :mod:`rbfi.evaluation`; the
protocol in docs/evaluation.md.
"""

from rbfi.attacks._package import ImageInput, package_available
from rbfi.attacks.autoattack import AutoAttack
from rbfi.attacks.base import (
    GRADIENTS,
    LOSSES,
    PROJECTIONS,
    Attack,
    attack_mode,
    project,
    random_start,
)
from rbfi.attacks.fgsm import FGSM
from rbfi.attacks.ifgsm import IFGSM
from rbfi.attacks.noise import UniformNoise
from rbfi.attacks.paper_pgd import PaperPGD
from rbfi.attacks.pgd import PGD
from rbfi.attacks.square import Square
from rbfi.attacks.transfer import Transfer

__all__ = [
    "FGSM",
    "GRADIENTS",
    "IFGSM",
    "LOSSES",
    "PGD",
    "PROJECTIONS",
    "Attack",
    "AutoAttack",
    "ImageInput",
    "PaperPGD",
    "Square",
    "Transfer",
    "UniformNoise",
    "attack_mode",
    "package_available",
    "project",
    "random_start",
]
