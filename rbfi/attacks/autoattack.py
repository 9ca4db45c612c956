"""AutoAttack (Croce & Hein 2020), from ``pyautoattack``."""

from __future__ import annotations

from torch import Tensor, nn

from rbfi.attacks._package import PACKAGE, ImageInput, as_images, isolated, package
from rbfi.attacks.base import Attack

AUTOATTACK_VERSIONS = ("standard", "plus", "apgd")


class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020) from ``pyautoattack``, l_inf, run as the package runs it
    (each component attacks only the examples the previous ones left correct).

    version "standard": APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries);
    "plus": the more expensive version with restarts; "apgd": APGD-CE + APGD-T only (version
    "custom" of the package, 1 restart each, as in "standard"): the cheap gradient part.
    ``gradient="pseudo"`` runs it through RBFI pseudogradients (BPDA). The package's own
    warnings (zero gradients, Square beating the gradient attacks) are kept in
    ``stats["package_warnings"]``; ``stats["zero_gradient"]`` counts examples whose
    cross-entropy input gradient is exactly zero at x.
    """

    name = "autoattack"
    in_gradient_ensemble = False  # it contains Square, a black-box attack

    def __init__(
        self,
        model: nn.Module,
        eps: float,
        *,
        version: str = "standard",
        gradient: str = "true",
        seed: int = 0,
    ) -> None:
        super().__init__(model, eps, loss="cross_entropy", gradient=gradient, seed=seed)
        if version not in AUTOATTACK_VERSIONS:
            raise ValueError(f"version must be one of {AUTOATTACK_VERSIONS}, got {version!r}")
        self.version = version

    def settings(self) -> dict:
        out = super().settings()
        out.update(package=f"{PACKAGE} {package().__version__}", version=self.version)
        out["loss"] = "package (CE, targeted DLR, FAB, Square margin)"
        return out

    def reported_loss(self) -> str:
        return "package"

    def passes(self) -> dict[str, int]:
        """Approximate: APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100 gradient steps (+ as many
        forwards), Square 5000 forwards; "plus" adds restarts and untargeted versions."""
        if self.version == "apgd":
            return {"forward": 2, "backward": 1000}
        if self.version == "standard":
            return {"forward": 5900, "backward": 1900}
        return {"forward": 11000, "backward": 3500}

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        self.loss_and_gradient(x, y)  # the zero-gradient diagnostic at the clean input
        aa = package()
        seed = self.derived_seed(x.device)
        wrapped = ImageInput(self.model)
        if self.version == "apgd":
            attack = aa.AutoAttack(
                wrapped,
                attacks=["apgd-ce", "apgd-t"],
                version="custom",
                norm="Linf",
                eps=self.eps,
                seed=seed,
                device=x.device,
            )
            attack.apgd.n_restarts = 1  # as in "standard"
            attack.apgd_targeted.n_target_classes = 9
        else:
            attack = aa.AutoAttack(
                wrapped, version=self.version, norm="Linf", eps=self.eps, seed=seed, device=x.device
            )
        with isolated(x.device) as messages:
            x_adv, _ = attack.run_standard_evaluation(
                as_images(x, self.model), y, batch_size=len(x)
            )
        self.stats["package_warnings"] = messages
        return x_adv.reshape(x.shape)
