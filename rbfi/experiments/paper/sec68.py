"""Sec. 6.8: deep 128-128-128-128-128-10 nets (ReLU, sigmoid, RBFI), 20 epochs."""

from __future__ import annotations

from rbfi.experiments.paper.common import NAMES, cheap_eval, net, net_name
from rbfi.experiments.paper.measure import labelled, measure, problems
from rbfi.experiments.render import claim, page, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results
from rbfi.stats import HOLDS, Estimate, all_of, at_least, at_most, premise

ARCHS = ("relu", "sigmoid", "rbfi")


def deep_nets(profile) -> dict:
    return {arch: net(profile, arch, 0, deep=True, epochs=profile.deep_epochs) for arch in ARCHS}


class Section68(Item):
    name = "sec68"
    title = "Sec. 6.8: deep nets"
    section = "6.8"

    def jobs(self, profile):
        runs = deep_nets(profile)
        return list(runs.values()) + [cheap_eval(profile, j) for j in runs.values()]

    def render(self, results: Results, profile) -> Rendered:
        runs, eps = deep_nets(profile), profile.table_eps
        columns = ("clean", "fgsm", "certified")
        sheet = measure(results, profile, runs, columns[1:], eps, certified_from="cheap")
        rows = [
            [labelled(results, net_name(job), job)] + sheet.cells(a, columns)
            for a, job in runs.items()
        ]
        data = {
            NAMES[a]: {c: sheet[a, c].value for c in columns}
            | {"intervals": sheet.intervals(columns)[a]}
            for a in runs
        }
        caption = (
            f"{profile.deep_layers} hidden layers of {profile.deep_width} units, "
            f"{profile.deep_epochs} epochs, square-error loss and AdaDelta for sigmoid and RBFI "
            f"(alternating ^v), cross-entropy for ReLU; accuracy in %, FGSM and certified at eps "
            f"{eps:g} [95% interval] on n = {profile.test_limit or 10000} images."
        )
        headers = ["network", "clean", "FGSM", "certified"]
        claims = self.claims(results, runs, {a: sheet[a, "clean"] for a in runs})
        return page(self, caption, table(headers, rows), claims, data)

    @staticmethod
    def claims(results: Results, runs: dict[str, Job], clean: dict[str, Estimate]) -> list[Claim]:
        """Deep ReLU and RBFI nets above 90% clean; the deep sigmoid net below 30%."""
        relu, rbfi, sigmoid = (clean[a] for a in ("relu", "rbfi", "sigmoid"))
        return [
            claim(
                "ReLU and RBFI deep nets train well",
                premise(
                    all_of([at_least(relu, 0.9), at_least(rbfi, 0.9)]),
                    problems(results, {"deep ReLU": runs["relu"], "deep RBFI": runs["rbfi"]}),
                    unless=HOLDS,  # more training would not make them worse
                ),
                f"ReLU {relu.text()}, RBFI {rbfi.text()} (train well: above 90%)",
            ),
            claim(
                "the deep sigmoid net barely beats chance",
                premise(
                    at_most(sigmoid, 0.3),
                    problems(results, {"deep sigmoid": runs["sigmoid"]}, ignore=("failed",)),
                ),
                f"sigmoid {sigmoid.text()} (barely beats chance: below 30%)",
            ),
        ]


ITEM = Section68()
