"""Sec. 6.9: RBF (l2) units vs RBFI (l_inf) units: accuracy, trainability, sensitivity."""

from __future__ import annotations

import math

from rbfi.experiments.paper.common import (
    cheap_eval,
    clean,
    labelled,
    measured,
    net,
    net_name,
    problems,
    sensitivity_eval,
)
from rbfi.experiments.render import claim, claims_markdown, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import UNDECIDED, Verdict, all_of, greater, premise


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
        data, rows, estimates = {}, [], {}
        for (arch, depth), job in runs.items():
            cheap = cheap_eval(profile, job)
            key = f"{arch} {depth}"
            estimates[key] = {"clean": clean(results, job)} | {
                attack: measured(results, cheap, attack, eps)
                for attack in ("fgsm", "noise", "certified")
            }
            row = {k: e.value for k, e in estimates[key].items()}
            row["bound"] = results.evaluation(sensitivity_eval(job))["bound"]
            row["intervals"] = {k: e.to_json() for k, e in estimates[key].items()}
            data[key] = row
            rows.append(
                [
                    labelled(results, net_name(job), job),
                    estimates[key]["clean"].text(),
                    f"{row['bound']:.4g}",
                    *(estimates[key][k].text() for k in ("fgsm", "noise", "certified")),
                ]
            )

        def c(key):
            return estimates[key]["clean"]

        harder = all_of(
            [
                greater(c("rbfi deep"), c("rbf deep"), ("deep RBFI", "deep RBF")),
                greater(c("rbfi shallow"), c("rbf shallow"), ("RBFI", "RBF")),
            ]
        )
        # a failing RBF net is the claim's subject; an RBF net still learning could catch up;
        # an RBFI net still learning would only widen the gap
        doubts = problems(
            results,
            {"RBF 512^3": runs["rbf", "shallow"], "deep RBF": runs["rbf", "deep"]},
            ignore=("failed",),
        )
        claims = [
            claim(
                "RBF units are harder to train than RBFI units, most of all in deep nets",
                premise(harder, doubts),
                f"shallow: RBF {c('rbf shallow').text()} vs RBFI {c('rbfi shallow').text()}; "
                f"deep: RBF {c('rbf deep').text()} vs RBFI {c('rbfi deep').text()}",
            ),
            claim(
                "an RBF unit's sensitivity grows with sqrt(n) (eq. 6), RBFI's does not",
                Verdict(UNDECIDED, "a formula, not a measurement"),
                f"per unit at u = 1 on 784 inputs: RBF sqrt(2/e) sqrt(784) = "
                f"{math.sqrt(2 / math.e) * 28:.1f}, RBFI sqrt(2/e) = "
                f"{math.sqrt(2 / math.e):.3f}; trained nets' bounds: RBF "
                f"{data['rbf shallow']['bound']:.4g}, RBFI {data['rbfi shallow']['bound']:.4g}",
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Accuracy in % [95% interval] on n = {profile.test_limit or 10000} test images, "
                f"FGSM / noise / certified at eps {eps:g}; the sensitivity bound of "
                f"eq. (8) (RBF: sqrt(2/e) ||u s||_2 per unit).",
                table(
                    ["network", "clean", "sensitivity bound", "FGSM", "noise", "certified"], rows
                ),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Section69()
