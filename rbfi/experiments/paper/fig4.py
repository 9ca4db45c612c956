"""Figure 4 (Sec. 6.7): ReLU nets trained with lambda x their sensitivity bound (eq. 7)."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    accuracy,
    cheap_eval,
    curve,
    layers,
    net,
    pgd_eval,
    sensitivity_eval,
)
from rbfi.experiments.render import claims_markdown, curves_png, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results

ATTACKS = (
    ("fgsm", "FGSM"),
    ("ifgsm", "I-FGSM"),
    ("noise", "noise"),
    ("pgd-paper", "PGD, corrected"),
)


class Figure4(Item):
    name = "fig4"
    title = "Figure 4: ReLU nets regularised with their sensitivity bound"
    section = "6.7"

    def runs(self, profile) -> dict:
        return {
            lam: net(profile, "relu", 0, reg_lambda=lam, label=f"ReLU lambda {lam:g}")
            for lam in profile.relu_lambdas
        }

    def jobs(self, profile):
        runs = self.runs(profile)
        out = list(runs.values())
        for job in runs.values():
            out += [cheap_eval(profile, job), pgd_eval(profile, job), sensitivity_eval(job)]
        return out

    def render(self, results: Results, profile) -> Rendered:
        runs = self.runs(profile)
        eps = profile.table_eps
        data, rows = {}, []
        for lam, job in runs.items():
            cheap, pgd = cheap_eval(profile, job), pgd_eval(profile, job)
            row = {
                "clean": results.final(job)["test_accuracy"],
                "sensitivity_bound": results.evaluation(sensitivity_eval(job))["bound"],
            }
            for attack, _ in ATTACKS:
                row[attack] = accuracy(
                    results, pgd if attack.startswith("pgd") else cheap, attack, eps
                )
            data[f"{lam:g}"] = row
            rows.append(
                [f"{lam:g}", pct(row["clean"]), f"{row['sensitivity_bound']:.4g}"]
                + [pct(row[a]) for a, _ in ATTACKS]
            )
        panels = []
        for attack, title in ATTACKS:
            panel = {}
            for lam, job in runs.items():
                source = (
                    pgd_eval(profile, job) if attack.startswith("pgd") else cheap_eval(profile, job)
                )
                panel[f"lambda {lam:g}"] = curve(results, [source], attack, profile.eps_grid)
            panels.append((title, panel))
        learned = {lam: row["clean"] > 0.5 for lam, row in data.items()}
        robust = [lam for lam, row in data.items() if row["clean"] > 0.5 and row["fgsm"] > 0.5]
        claims = [
            Claim(
                "regularisation does not make ReLU nets robust (FGSM at eps 0.3)",
                not robust,
                "; ".join(
                    f"lambda {k}: clean {pct(r['clean'])}, FGSM {pct(r['fgsm'])}"
                    for k, r in data.items()
                ),
            ),
            Claim(
                "large lambda stops the ReLU net from learning",
                not learned[f"{max(runs):g}"] if len(runs) > 1 else None,
                f"largest lambda {max(runs):g}: clean {pct(data[f'{max(runs):g}']['clean'])}",
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"ReLU {'-'.join(map(str, layers(profile)))} ({profile.epochs} epochs) "
                f"trained with loss + lambda x its "
                f"sensitivity bound (eq. 7); accuracy in % at eps = {eps:g}.",
                table(["lambda", "clean", "sensitivity bound"] + [t for _, t in ATTACKS], rows),
                claims_markdown(claims),
                "![Figure 4](figure4.png)",
            ]
        )
        figure = curves_png(panels, suptitle=f"Figure 4 ({profile.name} profile)")
        return Rendered(markdown, data, {"figure4.png": figure}, claims)


ITEM = Figure4()
