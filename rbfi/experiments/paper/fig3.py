"""Figure 3 (Sec. 6.4): ReLU nets trained with adversarial examples (FGSM, I-FGSM, the paper's
PGD; x and x' both fed) and with Madry et al.'s PGD training (x' only), against the RBFI net
trained normally, under the paper's attacks, corrected PGD and the strong suite."""

from __future__ import annotations

from rbfi.experiments.paper.baselines import relu_adversarial
from rbfi.experiments.paper.common import (
    cheap_eval,
    net,
    pgd_eval,
    strong_eval,
    transfer_source,
)
from rbfi.experiments.paper.measure import COLUMN_TITLES, attack_table, panels, problems
from rbfi.experiments.render import claim, curves_png, page
from rbfi.experiments.spec import Claim, Item, Rendered, Results
from rbfi.stats import Doubt, all_of, greater, premise

REGIMES = (
    ("none", "ReLU"),
    ("fgsm", "ReLU(FGSM)"),
    ("ifgsm", "ReLU(I-FGSM)"),
    ("pgd", "ReLU(PGD)"),
    ("madry", "ReLU(Madry PGD)"),
)
ATTACKS = ("fgsm", "ifgsm", "noise", "pgd-paper-legacy", "pgd-paper", "worst", "certified")


def caption(profile) -> str:
    """What Figure 3's table shows, on how many images, and how its nets were trained."""
    return (
        f"Accuracy in % at eps = {profile.table_eps:g} [95% interval]: clean on n = "
        f"{profile.test_limit or 10000}, FGSM, I-FGSM and noise on the same n, the "
        f"paper's PGD on the first n = {profile.pgd_limit}, the strong suite and "
        f"certificates on the first n = {profile.strong_limit}; comparisons on the same "
        f"images by McNemar's exact test. The FGSM, I-FGSM and PGD nets trained "
        f"{profile.adv_epochs} epochs with AdaDelta (training attacks at eps 0.3, x and x' "
        f"both fed; the paper's PGD with {profile.adv_pgd_steps} steps); the ReLU and RBFI "
        f"nets are Table 1's ({profile.epochs} epochs, trained normally); the Madry net (x' "
        f"only) is the baselines item's: sign PGD with {profile.baseline_steps} steps, eps "
        "ramped from 0 over half the steps, Adam with cosine decay, "
        f"{profile.baseline_epochs} epochs (the paper's AdaDelta with the full eps from the "
        "first step leaves it at chance: docs/baselines.md). A net marked *under-trained* "
        "or *failed* did not finish learning (rbfi.training.health); the claims resting on "
        "it are undecided."
    )


class Figure3(Item):
    name = "fig3"
    title = "Figure 3: adversarially trained ReLU nets vs RBFI trained normally"
    section = "6.4"

    def nets(self, profile) -> dict:
        """The paper's regimes train ``adv_epochs`` epochs (AdaDelta, the full eps from the
        first step); the normally trained ReLU net is Table 1's (``epochs``) and the Madry net
        the baselines item's (eps ramp, Adam: the recipe that trains, docs/baselines.md), so
        that every net finished learning."""
        out = {}
        for regime, label in REGIMES:
            if regime == "none":
                out[label] = net(profile, "relu", 0)
            elif regime == "madry":
                out[label] = relu_adversarial(profile, "madry")
            else:
                steps = {"pgd": profile.adv_pgd_steps}.get(regime)
                out[label] = net(
                    profile,
                    "relu",
                    0,
                    epochs=profile.adv_epochs,
                    label=f"{label} adv-epochs",
                    adversarial=regime,
                    adv_eps=0.3,
                    adv_steps=steps,
                )
        out["RBFI"] = net(profile, "rbfi", 0)
        return out

    def evals(self, profile):
        nets = self.nets(profile)
        return nets, {
            label: (
                cheap_eval(profile, job),
                pgd_eval(profile, job),
                strong_eval(profile, job),
            )
            for label, job in nets.items()
        }

    def jobs(self, profile):
        nets, evals = self.evals(profile)
        source = [transfer_source(profile)]  # the strong suite's transfer attack crafts on it
        return list(nets.values()) + source + [j for three in evals.values() for j in three]

    def render(self, results: Results, profile) -> Rendered:
        nets, eps = self.nets(profile), profile.table_eps
        sheet, shown, numbers, data = attack_table(results, profile, nets, ATTACKS, eps)
        figure = panels(results, profile, nets, ATTACKS, shown)
        png = curves_png(figure, suptitle=f"Figure 3 ({profile.name} profile)")
        return page(
            self,
            caption(profile),
            numbers,
            self.claims(sheet, list(nets), problems(results, nets)),
            data,
            {"figure3.png": ("Figure 3", png)},
        )

    @staticmethod
    def claims(sheet, labels: list[str], doubts: list[Doubt]) -> list[Claim]:
        """Under each attack but the certificates, RBFI beats every adversarially trained ReLU
        net (McNemar's exact test on the same images)."""
        others = [label for label in labels if label != "RBFI"]
        out = []
        for attack in ATTACKS[:6]:
            verdicts = [
                greater(
                    sheet["RBFI", attack],
                    sheet[label, attack],
                    ("RBFI", label),
                    flags=(sheet.flags["RBFI", attack], sheet.flags[label, attack]),
                )
                for label in others
            ]
            out.append(
                claim(
                    f"under {COLUMN_TITLES[attack]}, RBFI trained normally beats the "
                    "adversarially trained ReLU nets",
                    premise(all_of(verdicts), doubts),
                    f"RBFI {sheet['RBFI', attack].text()}; "
                    + ", ".join(f"{b} {sheet[b, attack].text()}" for b in others),
                )
            )
        return out


ITEM = Figure3()
