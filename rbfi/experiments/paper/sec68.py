"""Sec. 6.8: deep 128-128-128-128-128-10 nets (ReLU, sigmoid, RBFI), 20 epochs."""

from __future__ import annotations

from rbfi.experiments.paper.common import NAMES, accuracy, cheap_eval, net
from rbfi.experiments.render import claims_markdown, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results

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
        data = {}
        for arch, job in runs.items():
            cheap = cheap_eval(profile, job)
            data[arch] = {
                "clean": results.final(job)["test_accuracy"],
                "fgsm": accuracy(results, cheap, "fgsm", eps),
                "certified": accuracy(results, cheap, "certified", eps),
            }
        rows = [
            [
                runs[a].label[6:].rsplit(" seed", 1)[0],
                pct(v["clean"]),
                pct(v["fgsm"]),
                pct(v["certified"]),
            ]
            for a, v in data.items()
        ]
        claims = [
            Claim(
                "ReLU and RBFI deep nets train well",
                min(data["relu"]["clean"], data["rbfi"]["clean"]) > 0.9,
                f"ReLU {pct(data['relu']['clean'])}, RBFI {pct(data['rbfi']['clean'])}",
            ),
            Claim(
                "the deep sigmoid net barely beats chance",
                data["sigmoid"]["clean"] < 0.3,
                f"sigmoid {pct(data['sigmoid']['clean'])}",
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"{profile.deep_layers} hidden layers of {profile.deep_width} units, "
                f"{profile.deep_epochs} epochs, square-error loss and AdaDelta for sigmoid and "
                f"RBFI (alternating ^v), cross-entropy for ReLU; accuracy in %, FGSM and "
                f"certified at eps {eps:g} on {profile.test_limit or 10000} images.",
                table(["network", "clean", "FGSM", "certified"], rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, {NAMES[a]: v for a, v in data.items()}, {}, claims)


ITEM = Section68()
