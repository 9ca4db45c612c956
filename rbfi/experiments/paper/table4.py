"""Table 4 (Sec. 6.7): the sensitivity bounds of eq. (7) and (8) of the trained nets."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    cheap_eval,
    clean,
    flags,
    labelled,
    measured,
    net,
    problems,
    sensitivity_eval,
)
from rbfi.experiments.paper.fig5 import variants
from rbfi.experiments.render import claim, claims_markdown, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import FAILS, HOLDS, UNDECIDED, Verdict, all_of, at_most, greater, premise


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


def comparable_and_fragile(data: dict, fgsm: dict, doubts: list[str]) -> tuple:
    """(verdict, doubts): a ReLU net with a bound at most 10 x the largest RBFI bound whose FGSM
    accuracy is below 50%."""
    largest_rbfi = max(v["bound"] for k, v in data.items() if k.startswith("RBFI"))
    comparable = [
        k for k, v in data.items() if k.startswith("ReLU") and v["bound"] <= 10 * largest_rbfi
    ]
    if not comparable:
        return Verdict(FAILS, f"no ReLU bound within 10 x RBFI's {largest_rbfi:.4g}"), doubts
    verdicts = [at_most(fgsm[k], 0.5) for k in comparable]
    best = next((v for v in verdicts if v.status == HOLDS), None)
    if best is not None:
        verdict = Verdict(HOLDS, f"bound within 10 x RBFI's {largest_rbfi:.4g}; {best.reason}")
    else:
        verdict = all_of(verdicts)
    return verdict, [d for d in doubts if d.split(" ")[0] in ("ReLU,", "ReLU") or "RBFI" in d]


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
        runs = self.runs(profile)
        data, rows, fgsm, flagged = {}, [], {}, {}
        eps = profile.table_eps
        for label, job in runs.items():
            bound = results.evaluation(sensitivity_eval(job))["bound"]
            cheap = cheap_eval(profile, job)
            fgsm[label] = measured(results, cheap, "fgsm", eps)
            flagged[label] = flags(results, cheap, "fgsm", eps)
            accuracy_clean = clean(results, job)
            data[label] = {
                "bound": bound,
                "clean": accuracy_clean.value,
                "fgsm": fgsm[label].value,
                "intervals": {"clean": accuracy_clean.to_json(), "fgsm": fgsm[label].to_json()},
            }
            rows.append(
                [
                    labelled(results, label, job),
                    f"{bound:.4g}",
                    accuracy_clean.text(),
                    fgsm[label].text(),
                ]
            )
        ordering = sorted(data, key=lambda k: data[k]["bound"])
        doubts = problems(results, runs)
        claims = [
            claim(
                "the bounds do not rank architectures by their robustness",
                premise(misranked(ordering, fgsm, flagged), doubts),
                "by bound: "
                + ", ".join(ordering)
                + "; FGSM: "
                + ", ".join(f"{k} {fgsm[k].text()}" for k in ordering),
            ),
            claim(
                "a regularised ReLU net can have a bound comparable to RBFI's and still be fragile",
                premise(*comparable_and_fragile(data, fgsm, doubts)),
                ", ".join(
                    f"{k}: {v['bound']:.4g} (FGSM {fgsm[k].text()})"
                    for k, v in data.items()
                    if k.startswith("ReLU")
                ),
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Upper bounds on the l_inf sensitivity of the outputs (eq. 7 for ReLU and sigmoid "
                f"nets, eq. 8 for RBFI), beside clean and FGSM accuracy (%) at eps "
                f"{profile.table_eps:g} [95% interval] on n = {profile.test_limit or 10000} test "
                f"images.",
                table(["network", "sensitivity bound", "clean", "FGSM"], rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Table4()
