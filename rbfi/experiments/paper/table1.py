"""Table 1 and Figure 2 (Sec. 6.3): 512-512-512-10 ReLU, sigmoid and RBFI(^v^v) nets trained
normally, under FGSM, I-FGSM, the paper's PGD (as the author ran it, and corrected), uniform
noise, the strong suite's worst case, and the certified lower bound."""

from __future__ import annotations

from rbfi.experiments.paper.common import NAMES, cheap_eval, net, pgd_eval, sources, strong_eval
from rbfi.experiments.paper.measure import (
    COLUMN_TITLES,
    curve,
    labelled,
    measure,
    panels,
    problems,
)
from rbfi.experiments.render import INTERVALS_NOTE, claim, curves_png, page, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results
from rbfi.stats import (
    FAILS,
    UNDECIDED,
    Doubt,
    Verdict,
    all_of,
    at_least,
    at_most,
    greater,
    premise,
    within,
)

ARCHS = ("relu", "sigmoid", "rbfi")
COLUMNS = ("fgsm", "ifgsm", "pgd-paper-legacy", "pgd-paper", "noise", "worst", "certified")
CHEAP = ("fgsm", "ifgsm", "noise")  # measured on every run; the others on the first
RECORDED = (
    "clean",
    "fgsm",
    "ifgsm",
    "noise",
    "pgd-paper-legacy",
    "pgd-paper",
    "worst",
    "certified",
)


class Table1(Item):
    name = "table1"
    title = "Table 1 / Figure 2: normally trained nets under attack"
    section = "6.3"

    def runs(self, profile) -> dict[str, list]:
        seeds = {
            "relu": profile.seeds_baseline,
            "sigmoid": profile.seeds_baseline,
            "rbfi": profile.seeds_rbfi,
        }
        return {arch: [net(profile, arch, s) for s in range(seeds[arch])] for arch in ARCHS}

    def evals(self, profile):
        runs = self.runs(profile)
        cheap = {a: [cheap_eval(profile, r) for r in rs] for a, rs in runs.items()}
        pgd = {a: pgd_eval(profile, rs[0]) for a, rs in runs.items()}
        strong = {a: strong_eval(profile, rs[0]) for a, rs in runs.items()}
        return runs, cheap, pgd, strong

    def jobs(self, profile):
        runs, cheap, pgd, strong = self.evals(profile)
        out = [j for rs in runs.values() for j in rs]
        out += [j for js in cheap.values() for j in js]
        return out + list(pgd.values()) + list(strong.values())

    def render(self, results: Results, profile) -> Rendered:
        runs, eps = self.runs(profile), profile.table_eps
        sheet = measure(results, profile, runs, COLUMNS, eps)
        rows = [
            [labelled(results, f"{NAMES[a]} ({len(runs[a])} runs)", runs[a])]
            + sheet.cells(a, ("clean", *COLUMNS))
            for a in ARCHS
        ]
        doubts = {
            "all runs": problems(results, {NAMES[a]: runs[a] for a in ARCHS}),
            "first runs": problems(results, {NAMES[a]: runs[a][0] for a in ARCHS}),
        }
        strong = {
            f"{NAMES[a]} {what}": curve(results, sources(profile, runs[a], key), key)
            for a in ARCHS
            for key, what in (("worst", "worst case"), ("certified", "certified"))
        }
        figure = panels(results, profile, runs, COLUMNS[:5], {a: NAMES[a] for a in ARCHS})
        figure.append(("strong suite: worst case and certified floor", strong))
        data = {
            "eps": eps,
            "nets": {a: {c: sheet.recorded[a][c] for c in RECORDED} for a in ARCHS},
            "intervals": sheet.intervals(("clean", *COLUMNS)),
        }
        caption = (
            f"Accuracy in % at eps = {eps:g} [95% interval] (mean ± sd over runs where there "
            f"are several). Clean, FGSM, I-FGSM and noise on n = {profile.test_limit or 10000} "
            f"test images for every run; PGD on the first n = {profile.pgd_limit} images and the "
            f"strong suite and certificates on the first n = {profile.strong_limit}, for the "
            f"first run of each kind (as the paper ran PGD). {INTERVALS_NOTE}"
        )
        headers = ["network", "clean"] + [COLUMN_TITLES[c] for c in COLUMNS]
        png = curves_png(figure, suptitle=f"Figure 2 ({profile.name} profile)")
        return page(
            self,
            caption,
            table(headers, rows),
            self.claims(sheet.estimates, doubts),
            data,
            {"figure2.png": ("Figure 2", png)},
        )

    @staticmethod
    def claims(estimates: dict, doubts: dict[str, list[Doubt]]) -> list[Claim]:
        """``estimates``: arch -> column -> Estimate; ``doubts``: the health problems of "all
        runs" (clean, FGSM, I-FGSM, noise) and of the "first runs" (PGD, strong suite)."""

        def e(arch, key):
            return estimates[arch][key]

        clean_verdict = all_of(
            [
                within(e("rbfi", "clean"), e("sigmoid", "clean"), 0.01, ("RBFI", "Sigmoid")),
                greater(e("relu", "clean"), e("rbfi", "clean"), ("ReLU", "RBFI")),
            ]
        )
        out = [
            claim(
                "RBFI matches sigmoid in clean accuracy and is slightly below ReLU",
                premise(clean_verdict, doubts["all runs"]),
                ", ".join(f"{NAMES[a]} {e(a, 'clean').text()}" for a in ARCHS),
            )
        ]
        for key in COLUMNS[:6]:
            title = COLUMN_TITLES[key]
            weak = all_of([at_most(e("relu", key), 0.02), at_most(e("sigmoid", key), 0.02)])
            keeps = at_least(e("rbfi", key), 0.9)
            if weak.status == FAILS:
                verdict = Verdict(
                    UNDECIDED, f"not applicable: ReLU/sigmoid not below 2% ({weak.reason})"
                )
            else:
                verdict = all_of([weak, keeps])
            cheap = key in CHEAP
            out.append(
                claim(
                    f"under {title}, where ReLU and sigmoid fall below 2%, RBFI keeps above 90%",
                    premise(verdict, doubts["all runs" if cheap else "first runs"]),
                    f"RBFI {e('rbfi', key).text()}, ReLU {e('relu', key).text()}, "
                    f"sigmoid {e('sigmoid', key).text()}",
                )
            )
        barely = all_of(
            [
                greater(e("rbfi", "fgsm"), e("rbfi", "noise"), ("FGSM", "noise")),
                greater(e("rbfi", "ifgsm"), e("rbfi", "noise"), ("I-FGSM", "noise")),
            ]
        )
        out.append(
            claim(
                "FGSM and I-FGSM barely affect RBFI; even noise is a stronger attack on it",
                premise(barely, [d for d in doubts["all runs"] if d.subject == NAMES["rbfi"]]),
                f"RBFI: FGSM {e('rbfi', 'fgsm').text()}, I-FGSM {e('rbfi', 'ifgsm').text()}, "
                f"noise {e('rbfi', 'noise').text()}",
            )
        )
        return out


ITEM = Table1()
