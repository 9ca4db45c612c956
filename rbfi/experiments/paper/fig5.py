"""Figure 5 (Sec. 6.7): RBFI nets with a u-bound of 3 and of 10, the latter with and without
lambda x the sensitivity bound (eq. 8), under the paper's PGD and the strong suite."""

from __future__ import annotations

from rbfi.experiments.paper.common import accuracy, curve, net, pgd_eval, strong_eval
from rbfi.experiments.render import claims_markdown, curves_png, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results

ATTACKS = (
    ("pgd-paper-legacy", "PGD as the author ran it"),
    ("pgd-paper", "PGD, corrected"),
    ("worst", "worst case, strong suite"),
    ("certified", "certified (IBP)"),
)


def variants(profile) -> dict:
    """u-bound 3 (the Table 1 net), u-bound 10, u-bound 10 + regularisation."""
    return {
        "u-bound 3": net(profile, "rbfi", 0),
        "u-bound 10": net(profile, "rbfi", 0, u_bounds=(0.01, 10.0), label="RBFI u-bound 10"),
        f"u-bound 10, lambda {profile.rbfi_lambda:g}": net(
            profile,
            "rbfi",
            0,
            u_bounds=(0.01, 10.0),
            reg_lambda=profile.rbfi_lambda,
            label=f"RBFI u-bound 10 lambda {profile.rbfi_lambda:g}",
        ),
    }


class Figure5(Item):
    name = "fig5"
    title = "Figure 5: RBFI nets with u-bound 3 vs 10, with and without regularisation"
    section = "6.7"

    def jobs(self, profile):
        runs = variants(profile)
        return list(runs.values()) + [
            e for j in runs.values() for e in (pgd_eval(profile, j), strong_eval(profile, j))
        ]

    def render(self, results: Results, profile) -> Rendered:
        runs = variants(profile)
        eps = profile.table_eps
        data, rows, panels = {}, [], []
        for label, job in runs.items():
            pgd, strong = pgd_eval(profile, job), strong_eval(profile, job)
            row = {"clean": results.final(job)["test_accuracy"]}
            for attack, _ in ATTACKS:
                row[attack] = accuracy(
                    results, pgd if attack.startswith("pgd") else strong, attack, eps
                )
            data[label] = row
            rows.append([label, pct(row["clean"])] + [pct(row[a]) for a, _ in ATTACKS])
        for attack, title in ATTACKS:
            grid = profile.eps_grid if attack.startswith("pgd") else profile.strong_eps
            panels.append(
                (
                    title,
                    {
                        label: curve(
                            results,
                            [
                                pgd_eval(profile, job)
                                if attack.startswith("pgd")
                                else strong_eval(profile, job)
                            ],
                            attack,
                            grid,
                        )
                        for label, job in runs.items()
                    },
                )
            )
        labels = list(runs)
        base, loose, reg = (data[k] for k in labels)
        claims = []
        for attack, title in ATTACKS[:3]:
            lost = base[attack] - loose[attack]
            recovered = reg[attack] - loose[attack]
            claims.append(
                Claim(
                    f"under {title}, a small regularisation recovers most of the robustness the "
                    "u-bound 10 net lost",
                    recovered >= 0.5 * lost if lost > 0.02 else None,
                    f"u3 {pct(base[attack])}, u10 {pct(loose[attack])}, u10+reg {pct(reg[attack])}",
                )
            )
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"{runs['u-bound 3'].label[6:].rsplit(' seed', 1)[0]}, {profile.epochs} "
                f"epochs; accuracy in % at eps = "
                f"{eps:g} (PGD on {profile.pgd_limit} images, strong suite on "
                f"{profile.strong_limit}).",
                table(["network", "clean"] + [t for _, t in ATTACKS], rows),
                claims_markdown(claims),
                "![Figure 5](figure5.png)",
            ]
        )
        figure = curves_png(panels, suptitle=f"Figure 5 ({profile.name} profile)")
        return Rendered(markdown, data, {"figure5.png": figure}, claims)


ITEM = Figure5()
