"""Figure 4 (Sec. 6.7): ReLU nets trained with lambda x their sensitivity bound (eq. 7)."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    accuracy,
    cheap_eval,
    clean,
    curve,
    labelled,
    layers,
    measured,
    net,
    pgd_eval,
    problems,
    sensitivity_eval,
)
from rbfi.experiments.render import claim, claims_markdown, curves_png, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import UNDECIDED, Verdict, all_of, at_least, at_most, premise

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
        data, rows, estimates = {}, [], {}
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
            estimates[f"{lam:g}"] = {"clean": clean(results, job)} | {
                attack: measured(results, pgd if attack.startswith("pgd") else cheap, attack, eps)
                for attack, _ in ATTACKS
            }
            rows.append(
                [labelled(results, f"{lam:g}", job), estimates[f"{lam:g}"]["clean"].text()]
                + [f"{row['sensitivity_bound']:.4g}"]
                + [estimates[f"{lam:g}"][a].text() for a, _ in ATTACKS]
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
        data["intervals"] = {
            k: {name: e.to_json() for name, e in row.items()} for k, row in estimates.items()
        }
        names = {f"{lam:g}": f"ReLU lambda {lam:g}" for lam in runs}
        learned = [k for k, row in estimates.items() if at_least(row["clean"], 0.5).holds]
        fragile = all_of([at_most(estimates[k]["fgsm"], 0.5) for k in learned])
        largest = f"{max(runs):g}"
        stops = at_most(estimates[largest]["clean"], 0.5)
        claims = [
            claim(
                "regularisation does not make ReLU nets robust (FGSM at eps 0.3)",
                premise(fragile, problems(results, {names[k]: runs[float(k)] for k in learned})),
                "; ".join(
                    f"lambda {k}: clean {r['clean'].text()}, FGSM {r['fgsm'].text()}"
                    for k, r in estimates.items()
                ),
            ),
            claim(
                "large lambda stops the ReLU net from learning",
                premise(
                    stops,
                    problems(results, {names[largest]: runs[max(runs)]}, ignore=("failed",)),
                    unless="does not hold",  # a net that learnt does not unlearn with training
                )
                if len(runs) > 1
                else Verdict(UNDECIDED, "one lambda only"),
                f"largest lambda {largest}: clean {estimates[largest]['clean'].text()}",
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"ReLU {'-'.join(map(str, layers(profile)))} ({profile.epochs} epochs) "
                f"trained with loss + lambda x its "
                f"sensitivity bound (eq. 7); accuracy in % at eps = {eps:g} [95% interval]: clean, "
                f"FGSM, I-FGSM and noise on n = {profile.test_limit or 10000} test images, PGD "
                f"on the first n = {profile.pgd_limit}.",
                table(["lambda", "clean", "sensitivity bound"] + [t for _, t in ATTACKS], rows),
                claims_markdown(claims),
                "![Figure 4](figure4.png)",
            ]
        )
        figure = curves_png(panels, suptitle=f"Figure 4 ({profile.name} profile)")
        return Rendered(markdown, data, {"figure4.png": figure}, claims)


ITEM = Figure4()
