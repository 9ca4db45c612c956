"""Sec. 6.8: deep 128-128-128-128-128-10 nets (ReLU, sigmoid, RBFI), 20 epochs."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    NAMES,
    cheap_eval,
    clean,
    labelled,
    measured,
    net,
    net_name,
    problems,
)
from rbfi.experiments.render import claim, claims_markdown, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import all_of, at_least, at_most, premise

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
        runs = deep_nets(profile)
        eps = profile.table_eps
        data, estimates = {}, {}
        for arch, job in runs.items():
            cheap = cheap_eval(profile, job)
            estimates[arch] = {
                "clean": clean(results, job),
                "fgsm": measured(results, cheap, "fgsm", eps),
                "certified": measured(results, cheap, "certified", eps),
            }
            data[arch] = {k: e.value for k, e in estimates[arch].items()}
            data[arch]["intervals"] = {k: e.to_json() for k, e in estimates[arch].items()}
        rows = [
            [
                labelled(results, net_name(runs[a]), runs[a]),
                *(estimates[a][k].text() for k in ("clean", "fgsm", "certified")),
            ]
            for a in runs
        ]
        relu, rbfi, sigmoid = (estimates[a]["clean"] for a in ("relu", "rbfi", "sigmoid"))
        claims = [
            claim(
                "ReLU and RBFI deep nets train well",
                premise(
                    all_of([at_least(relu, 0.9), at_least(rbfi, 0.9)]),
                    problems(results, {"deep ReLU": runs["relu"], "deep RBFI": runs["rbfi"]}),
                    unless="holds",  # more training would not make them worse
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
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"{profile.deep_layers} hidden layers of {profile.deep_width} units, "
                f"{profile.deep_epochs} epochs, square-error loss and AdaDelta for sigmoid and "
                f"RBFI (alternating ^v), cross-entropy for ReLU; accuracy in %, FGSM and "
                f"certified at eps {eps:g} [95% interval] on n = {profile.test_limit or 10000} "
                "images.",
                table(["network", "clean", "FGSM", "certified"], rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, {NAMES[a]: v for a, v in data.items()}, {}, claims)


ITEM = Section68()
