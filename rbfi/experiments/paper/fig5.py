"""Figure 5 (Sec. 6.7): RBFI nets with a u-bound of 3 and of 10, the latter with and without
lambda x the sensitivity bound (eq. 8), under the paper's PGD and the strong suite."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    accuracy,
    clean,
    curve,
    flags,
    labelled,
    measured,
    net,
    net_name,
    pgd_eval,
    problems,
    strong_eval,
    transfer_source,
)
from rbfi.experiments.render import claim, claims_markdown, curves_png, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import FAILS, HOLDS, UNDECIDED, Estimate, Verdict, greater, premise

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


def recovers_half(base: Estimate, loose: Estimate, reg: Estimate, lost: Verdict) -> Verdict:
    """ "reg recovers at least half of what loose lost against base", i.e. reg >= (base +
    loose) / 2, given that loose lost something (``lost``: base better than loose). Decided
    only when reg's interval lies wholly above (below) the midpoint of the two others'
    intervals' ends: reg.low > (base.high + loose.high) / 2 (reg.high < (base.low + loose.low)
    / 2)."""
    if lost.status != HOLDS:
        return Verdict(UNDECIDED, f"not applicable: no loss established ({lost.reason})")
    if reg.low > (base.high + loose.high) / 2:
        return Verdict(HOLDS, f"u10+reg above the midpoint of u3 and u10 ({lost.reason})")
    if reg.high < (base.low + loose.low) / 2:
        return Verdict(FAILS, f"u10+reg below the midpoint of u3 and u10 ({lost.reason})")
    return Verdict(UNDECIDED, "the intervals allow recovering more or less than half")


class Figure5(Item):
    name = "fig5"
    title = "Figure 5: RBFI nets with u-bound 3 vs 10, with and without regularisation"
    section = "6.7"

    def jobs(self, profile):
        runs = variants(profile)
        source = [transfer_source(profile)]  # the strong suite's transfer attack crafts on it
        return (
            list(runs.values())
            + source
            + [e for j in runs.values() for e in (pgd_eval(profile, j), strong_eval(profile, j))]
        )

    def render(self, results: Results, profile) -> Rendered:
        runs = variants(profile)
        eps = profile.table_eps
        data, rows, panels, estimates, per_example = {}, [], [], {}, {}
        for label, job in runs.items():
            pgd, strong = pgd_eval(profile, job), strong_eval(profile, job)
            row = {"clean": results.final(job)["test_accuracy"]}
            for attack, _ in ATTACKS:
                row[attack] = accuracy(
                    results, pgd if attack.startswith("pgd") else strong, attack, eps
                )
            data[label] = row
            estimates[label] = {"clean": clean(results, job)}
            for attack, _ in ATTACKS:
                source = pgd if attack.startswith("pgd") else strong
                estimates[label][attack] = measured(results, source, attack, eps)
                per_example[label, attack] = flags(results, source, attack, eps)
            rows.append(
                [labelled(results, label, job), estimates[label]["clean"].text()]
                + [estimates[label][a].text() for a, _ in ATTACKS]
            )
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
        data["intervals"] = {
            k: {name: e.to_json() for name, e in row.items()} for k, row in estimates.items()
        }
        labels = list(runs)
        doubts = problems(results, {f"RBFI {label}": job for label, job in runs.items()})
        claims = []
        for attack, title in ATTACKS[:3]:
            base, loose, reg = (estimates[k][attack] for k in labels)
            lost = greater(
                base,
                loose,
                ("u3", "u10"),
                flags=(per_example[labels[0], attack], per_example[labels[1], attack]),
            )
            claims.append(
                claim(
                    f"under {title}, a small regularisation recovers most of the robustness the "
                    "u-bound 10 net lost",
                    premise(recovers_half(base, loose, reg, lost), doubts),
                    f"u3 {base.text()}, u10 {loose.text()}, u10+reg {reg.text()}",
                )
            )
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"{net_name(runs['u-bound 3'])}, {profile.epochs} "
                f"epochs; accuracy in % at eps = "
                f"{eps:g} [95% interval] (clean on n = {profile.test_limit or 10000} images, PGD "
                f"on the first n = {profile.pgd_limit}, strong suite on the first n = "
                f"{profile.strong_limit}).",
                table(["network", "clean"] + [t for _, t in ATTACKS], rows),
                claims_markdown(claims),
                "![Figure 5](figure5.png)",
            ]
        )
        figure = curves_png(panels, suptitle=f"Figure 5 ({profile.name} profile)")
        return Rendered(markdown, data, {"figure5.png": figure}, claims)


ITEM = Figure5()
