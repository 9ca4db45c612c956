"""Table 4 (Sec. 6.7): the sensitivity bounds of eq. (7) and (8) of the trained nets."""

from __future__ import annotations

from rbfi.experiments.paper.common import cheap_eval, net, sensitivity_eval
from rbfi.experiments.paper.fig5 import variants
from rbfi.experiments.paper.measure import Sheet, labelled, measure, problems
from rbfi.experiments.render import claim, page, table
from rbfi.experiments.spec import Claim, Item, Job, Rendered, Results
from rbfi.stats import FAILS, HOLDS, UNDECIDED, Estimate, Verdict, all_of, at_most, greater, premise


def arch(run: Job) -> str:
    return run.payload["train"]["model"]["arch"]


def misranked(ordering: list[str], fgsm: dict, flagged: dict) -> Verdict:
    """Holds when some net with a smaller bound is less robust (FGSM accuracy) than one with a
    larger bound, beyond chance (McNemar on the same images); does not hold when every pair is
    decided in the bound's order; else undecided."""
    verdicts = {}
    for i, a in enumerate(ordering):
        for b in ordering[i + 1 :]:  # bound(a) <= bound(b): a should be the more robust
            verdicts[a, b] = greater(fgsm[a], fgsm[b], (a, b), flags=(flagged[a], flagged[b]))
    against = [(a, b) for (a, b), v in verdicts.items() if v.status == FAILS]
    if against:
        a, b = against[0]
        return Verdict(
            HOLDS,
            f"{len(against)} pair(s) ranked against their FGSM accuracy, e.g. "
            + verdicts[a, b].reason,
        )
    if all(v.status == HOLDS for v in verdicts.values()):
        return Verdict(FAILS, "every pair ranked by the bound as by FGSM accuracy")
    open_ = sum(v.status == UNDECIDED for v in verdicts.values())
    return Verdict(UNDECIDED, f"no pair ranked against FGSM accuracy; {open_} pair(s) undecided")


def comparable_and_fragile(bounds: dict, archs: dict, fgsm: dict[str, Estimate]) -> Verdict:
    """A ReLU net with a bound at most 10 x the largest RBFI bound whose FGSM accuracy is
    below 50% (``bounds``, ``archs``, ``fgsm``: per net)."""
    largest_rbfi = max(b for k, b in bounds.items() if archs[k] == "rbfi")
    comparable = [k for k, b in bounds.items() if archs[k] == "relu" and b <= 10 * largest_rbfi]
    if not comparable:
        return Verdict(FAILS, f"no ReLU bound within 10 x RBFI's {largest_rbfi:.4g}")
    verdicts = [at_most(fgsm[k], 0.5) for k in comparable]
    best = next((v for v in verdicts if v.status == HOLDS), None)
    if best is not None:
        return Verdict(HOLDS, f"bound within 10 x RBFI's {largest_rbfi:.4g}; {best.reason}")
    return all_of(verdicts)


class Table4(Item):
    name = "table4"
    title = "Table 4: sensitivity bounds (eq. 7, 8) of trained nets"
    section = "6.7"

    def runs(self, profile) -> dict:
        runs = {f"RBFI, {label}": job for label, job in variants(profile).items()}
        runs["ReLU"] = net(profile, "relu", 0)
        runs["Sigmoid"] = net(profile, "sigmoid", 0)
        lam = max(profile.relu_lambdas)
        runs[f"ReLU, lambda {lam:g}"] = net(
            profile, "relu", 0, reg_lambda=lam, label=f"ReLU lambda {lam:g}"
        )
        return runs

    def jobs(self, profile):
        runs = self.runs(profile)
        return (
            list(runs.values())
            + [sensitivity_eval(j) for j in runs.values()]
            + [cheap_eval(profile, j) for j in runs.values()]
        )

    def render(self, results: Results, profile) -> Rendered:
        runs, eps = self.runs(profile), profile.table_eps
        sheet = measure(results, profile, runs, ["fgsm"], eps, certified_from="cheap")
        bounds = {k: results.evaluation(sensitivity_eval(job))["bound"] for k, job in runs.items()}
        rows = [
            [labelled(results, k, job), f"{bounds[k]:.4g}"] + sheet.cells(k, ("clean", "fgsm"))
            for k, job in runs.items()
        ]
        data = {
            k: {"bound": bounds[k]}
            | {c: sheet[k, c].value for c in ("clean", "fgsm")}
            | {"intervals": sheet.intervals(("clean", "fgsm"))[k]}
            for k in runs
        }
        caption = (
            f"Upper bounds on the l_inf sensitivity of the outputs (eq. 7 for ReLU and sigmoid "
            f"nets, eq. 8 for RBFI), beside clean and FGSM accuracy (%) at eps {eps:g} [95% "
            f"interval] on n = {profile.test_limit or 10000} test images."
        )
        headers = ["network", "sensitivity bound", "clean", "FGSM"]
        return page(
            self, caption, table(headers, rows), self.claims(results, runs, sheet, bounds), data
        )

    @staticmethod
    def claims(results: Results, runs: dict[str, Job], sheet: Sheet, bounds: dict) -> list[Claim]:
        """The bounds misrank the nets by FGSM accuracy; a ReLU net's bound comparable to
        RBFI's with FGSM accuracy below 50%."""
        ordering = sorted(runs, key=lambda k: bounds[k])
        fgsm = {k: sheet[k, "fgsm"] for k in runs}
        flagged = {k: sheet.flags[k, "fgsm"] for k in runs}
        archs = {k: arch(job) for k, job in runs.items()}
        relu_or_rbfi = {k: job for k, job in runs.items() if archs[k] in ("relu", "rbfi")}
        return [
            claim(
                "the bounds do not rank architectures by their robustness",
                premise(misranked(ordering, fgsm, flagged), problems(results, runs)),
                "FGSM by bound, smallest first: "
                + "; ".join(f"{k} {fgsm[k].text()}" for k in ordering),
            ),
            claim(
                "a regularised ReLU net can have a bound comparable to RBFI's and still be fragile",
                premise(
                    comparable_and_fragile(bounds, archs, fgsm), problems(results, relu_or_rbfi)
                ),
                "; ".join(
                    f"{k}: bound {bounds[k]:.4g}, FGSM {fgsm[k].text()}"
                    for k in runs
                    if archs[k] == "relu"
                ),
            ),
        ]


ITEM = Table4()
