"""Figure 4 (Sec. 6.7): ReLU nets trained with lambda x their sensitivity bound (eq. 7)."""

from __future__ import annotations

from rbfi.experiments.paper.common import cheap_eval, layers, net, pgd_eval, sensitivity_eval
from rbfi.experiments.paper.measure import COLUMN_TITLES, Sheet, labelled, measure, panels, problems
from rbfi.experiments.render import claim, curves_png, page, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results
from rbfi.stats import FAILS, UNDECIDED, Verdict, all_of, at_least, at_most, premise

ATTACKS = ("fgsm", "ifgsm", "noise", "pgd-paper")


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
        nets = {f"{lam:g}": job for lam, job in self.runs(profile).items()}
        eps = profile.table_eps
        sheet = measure(results, profile, nets, ATTACKS, eps)
        bounds = {k: results.evaluation(sensitivity_eval(job))["bound"] for k, job in nets.items()}
        rows = [
            [labelled(results, k, job), sheet[k, "clean"].text(), f"{bounds[k]:.4g}"]
            + sheet.cells(k, ATTACKS)
            for k, job in nets.items()
        ]
        data = {
            k: sheet.values(k, ["clean"])
            | {"sensitivity_bound": bounds[k]}
            | sheet.values(k, ATTACKS)
            for k in nets
        }
        data["intervals"] = sheet.intervals(("clean", *ATTACKS))
        caption = (
            f"ReLU {'-'.join(map(str, layers(profile)))} ({profile.epochs} epochs) trained with "
            f"loss + lambda x its sensitivity bound (eq. 7); accuracy in % at eps = {eps:g} [95% "
            f"interval]: clean, FGSM, I-FGSM and noise on n = {profile.test_limit or 10000} test "
            f"images, PGD on the first n = {profile.pgd_limit}."
        )
        headers = ["lambda", "clean", "sensitivity bound"] + [COLUMN_TITLES[a] for a in ATTACKS]
        figure = panels(results, profile, nets, ATTACKS, {k: f"lambda {k}" for k in nets})
        png = curves_png(figure, suptitle=f"Figure 4 ({profile.name} profile)")
        return page(
            self,
            caption,
            table(headers, rows),
            self.claims(results, sheet, nets),
            data,
            {"figure4.png": ("Figure 4", png)},
        )

    @staticmethod
    def claims(results: Results, sheet: Sheet, nets: dict[str, Job]) -> list[Claim]:
        """FGSM keeps every net that learnt (clean above 50%) fragile; the largest lambda stops
        the net from learning (undecided with one lambda only)."""
        learned = [k for k in nets if at_least(sheet[k, "clean"], 0.5).holds]
        fragile = all_of([at_most(sheet[k, "fgsm"], 0.5) for k in learned])
        largest = max(nets, key=float)
        doubts = problems(results, {f"ReLU lambda {k}": nets[k] for k in learned})
        stops = premise(
            at_most(sheet[largest, "clean"], 0.5),
            problems(results, {f"ReLU lambda {largest}": nets[largest]}, ignore=("failed",)),
            unless=FAILS,  # a net that learnt does not unlearn with training
        )
        return [
            claim(
                "regularisation does not make ReLU nets robust (FGSM at eps 0.3)",
                premise(fragile, doubts),
                "FGSM [95% CI] (clean) per lambda: "
                + "; ".join(
                    f"{k}: {sheet[k, 'fgsm'].text()} ({sheet[k, 'clean'].value_text()})"
                    for k in nets
                ),
            ),
            claim(
                "large lambda stops the ReLU net from learning",
                stops if len(nets) > 1 else Verdict(UNDECIDED, "one lambda only"),
                f"largest lambda {largest}: clean {sheet[largest, 'clean'].text()}",
            ),
        ]


ITEM = Figure4()
