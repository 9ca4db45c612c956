"""Figure 5 (Sec. 6.7): RBFI nets with a u-bound of 3 and of 10, the latter with and without
lambda x the sensitivity bound (eq. 8), under the paper's PGD and the strong suite."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    net,
    net_name,
    pgd_eval,
    strong_eval,
    transfer_source,
)
from rbfi.experiments.paper.measure import COLUMN_TITLES, Sheet, attack_table, panels, problems
from rbfi.experiments.render import claim, curves_png, page
from rbfi.experiments.spec import Claim, Item, Rendered, Results
from rbfi.stats import FAILS, HOLDS, UNDECIDED, Doubt, Estimate, Verdict, greater, premise

ATTACKS = ("pgd-paper-legacy", "pgd-paper", "worst", "certified")


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
        nets, eps = variants(profile), profile.table_eps
        sheet, _, numbers, data = attack_table(results, profile, nets, ATTACKS, eps)
        caption = (
            f"{net_name(nets['u-bound 3'])}, {profile.epochs} epochs; accuracy in % at eps = "
            f"{eps:g} [95% interval] (clean on n = {profile.test_limit or 10000} images, PGD "
            f"on the first n = {profile.pgd_limit}, strong suite on the first n = "
            f"{profile.strong_limit})."
        )
        doubts = problems(results, {f"RBFI {label}": job for label, job in nets.items()})
        png = curves_png(
            panels(results, profile, nets, ATTACKS),
            suptitle=f"Figure 5 ({profile.name} profile)",
        )
        return page(
            self,
            caption,
            numbers,
            self.claims(sheet, list(nets), doubts),
            data,
            {"figure5.png": ("Figure 5", png)},
        )

    @staticmethod
    def claims(sheet: Sheet, labels: list[str], doubts: list[Doubt]) -> list[Claim]:
        """Under the paper's PGD and the strong suite, the u-bound 10 net with lambda recovers
        at least half of what the u-bound 10 net lost against u-bound 3."""
        out = []
        for attack in ATTACKS[:3]:
            base, loose, reg = (sheet[k, attack] for k in labels)
            lost = greater(
                base,
                loose,
                ("u3", "u10"),
                flags=(sheet.flags[labels[0], attack], sheet.flags[labels[1], attack]),
            )
            out.append(
                claim(
                    f"under {COLUMN_TITLES[attack]}, a small regularisation recovers most of the "
                    "robustness the u-bound 10 net lost",
                    premise(recovers_half(base, loose, reg, lost), doubts),
                    f"u3 {base.text()}, u10 {loose.text()}, u10+reg {reg.text()}",
                )
            )
        return out


ITEM = Figure5()
