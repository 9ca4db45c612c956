"""Sec. 6.9: RBF (l2) units vs RBFI (l_inf) units: accuracy, trainability, sensitivity."""

from __future__ import annotations

import math

from rbfi.experiments.paper.common import cheap_eval, net, net_name, sensitivity_eval
from rbfi.experiments.paper.measure import labelled, measure, problems
from rbfi.experiments.render import claim, page, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results
from rbfi.stats import UNDECIDED, Estimate, Verdict, all_of, greater, premise

COLUMNS = ("clean", "fgsm", "noise", "certified")


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
        runs = {f"{arch} {depth}": job for (arch, depth), job in pairs(profile).items()}
        sheet = measure(results, profile, runs, COLUMNS[1:], profile.table_eps, "cheap")
        bound = {k: results.evaluation(sensitivity_eval(job))["bound"] for k, job in runs.items()}
        rows = [
            [labelled(results, net_name(job), job), sheet[k, "clean"].text(), f"{bound[k]:.4g}"]
            + sheet.cells(k, COLUMNS[1:])
            for k, job in runs.items()
        ]
        data = {
            k: {c: sheet[k, c].value for c in COLUMNS}
            | {"bound": bound[k], "intervals": sheet.intervals(COLUMNS)[k]}
            for k in runs
        }
        # a failing RBF net is the claim's subject; an RBF net still learning could catch up;
        # an RBFI net still learning would only widen the gap
        doubts = problems(
            results, {"RBF 512^3": runs["rbf shallow"], "deep RBF": runs["rbf deep"]}, ("failed",)
        )
        caption = (
            f"Accuracy in % [95% interval] on n = {profile.test_limit or 10000} test images, "
            f"FGSM / noise / certified at eps {profile.table_eps:g}; the sensitivity bound of "
            f"eq. (8) (RBF: sqrt(2/e) ||u s||_2 per unit)."
        )
        headers = ["network", "clean", "sensitivity bound", "FGSM", "noise", "certified"]
        claims = self.claims({k: sheet[k, "clean"] for k in runs}, bound, doubts)
        return page(self, caption, table(headers, rows), claims, data)

    @staticmethod
    def claims(clean: dict[str, Estimate], bound: dict[str, float], doubts) -> list[Claim]:
        """RBF nets less accurate than RBFI nets, shallow and deep (``clean``: "rbf deep" ->
        its clean accuracy, ...); eq. 6's growth with sqrt(n), a formula (undecided)."""
        harder = all_of(
            [
                greater(clean["rbfi deep"], clean["rbf deep"], ("deep RBFI", "deep RBF")),
                greater(clean["rbfi shallow"], clean["rbf shallow"], ("RBFI", "RBF")),
            ]
        )
        shallow = f"RBF {clean['rbf shallow'].text()} vs RBFI {clean['rbfi shallow'].text()}"
        deep = f"RBF {clean['rbf deep'].text()} vs RBFI {clean['rbfi deep'].text()}"
        return [
            claim(
                "RBF units are harder to train than RBFI units, most of all in deep nets",
                premise(harder, doubts),
                f"shallow: {shallow}; deep: {deep}",
            ),
            claim(
                "an RBF unit's sensitivity grows with sqrt(n) (eq. 6), RBFI's does not",
                Verdict(UNDECIDED, "a formula, not a measurement"),
                f"per unit at u = 1 on 784 inputs: RBF sqrt(2/e) sqrt(784) = "
                f"{math.sqrt(2 / math.e) * 28:.1f}, RBFI sqrt(2/e) = "
                f"{math.sqrt(2 / math.e):.3f}; trained nets' bounds: RBF "
                f"{bound['rbf shallow']:.4g}, RBFI {bound['rbfi shallow']:.4g}",
            ),
        ]


ITEM = Section69()
