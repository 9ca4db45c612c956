"""Sec. 6.9: RBF (l2) units vs RBFI (l_inf) units: accuracy, trainability, sensitivity."""

from __future__ import annotations

import math

from rbfi.experiments.paper.common import accuracy, cheap_eval, net, sensitivity_eval
from rbfi.experiments.render import claims_markdown, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results


def pairs(profile) -> dict:
    return {
        ("rbf", "shallow"): net(profile, "rbf", 0),
        ("rbfi", "shallow"): net(profile, "rbfi", 0),
        ("rbf", "deep"): net(profile, "rbf", 0, deep=True, epochs=profile.deep_epochs),
        ("rbfi", "deep"): net(profile, "rbfi", 0, deep=True, epochs=profile.deep_epochs),
    }


class Section69(Item):
    name = "sec69"
    title = "Sec. 6.9: RBF vs RBFI units"
    section = "6.9"

    def jobs(self, profile):
        runs = pairs(profile)
        return list(runs.values()) + [
            e for j in runs.values() for e in (cheap_eval(profile, j), sensitivity_eval(j))
        ]

    def render(self, results: Results, profile) -> Rendered:
        runs = pairs(profile)
        eps = profile.table_eps
        data, rows = {}, []
        for (arch, depth), job in runs.items():
            cheap = cheap_eval(profile, job)
            row = {
                "clean": results.final(job)["test_accuracy"],
                "bound": results.evaluation(sensitivity_eval(job))["bound"],
                "fgsm": accuracy(results, cheap, "fgsm", eps),
                "noise": accuracy(results, cheap, "noise", eps),
                "certified": accuracy(results, cheap, "certified", eps),
            }
            data[f"{arch} {depth}"] = row
            rows.append(
                [
                    job.label[6:].rsplit(" seed", 1)[0],
                    pct(row["clean"]),
                    f"{row['bound']:.4g}",
                    pct(row["fgsm"]),
                    pct(row["noise"]),
                    pct(row["certified"]),
                ]
            )
        harder = data["rbf deep"]["clean"] < data["rbfi deep"]["clean"]
        claims = [
            Claim(
                "RBF units are harder to train than RBFI units, most of all in deep nets",
                harder and data["rbf shallow"]["clean"] <= data["rbfi shallow"]["clean"] + 0.005,
                f"shallow: RBF {pct(data['rbf shallow']['clean'])} vs RBFI "
                f"{pct(data['rbfi shallow']['clean'])}; deep: RBF "
                f"{pct(data['rbf deep']['clean'])} vs RBFI {pct(data['rbfi deep']['clean'])}",
            ),
            Claim(
                "an RBF unit's sensitivity grows with sqrt(n) (eq. 6), RBFI's does not",
                None,
                f"per unit at u = 1 on 784 inputs: RBF sqrt(2/e) sqrt(784) = "
                f"{math.sqrt(2 / math.e) * 28:.1f}, RBFI sqrt(2/e) = "
                f"{math.sqrt(2 / math.e):.3f} (a formula, not a measurement); trained nets' "
                f"bounds: RBF {data['rbf shallow']['bound']:.4g}, RBFI "
                f"{data['rbfi shallow']['bound']:.4g}",
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Accuracy in %, FGSM / noise / certified at eps {eps:g}; the sensitivity bound of "
                f"eq. (8) (RBF: sqrt(2/e) ||u s||_2 per unit).",
                table(
                    ["network", "clean", "sensitivity bound", "FGSM", "noise", "certified"], rows
                ),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Section69()
