"""Table 1 and Figure 2 (Sec. 6.3): 512-512-512-10 ReLU, sigmoid and RBFI(^v^v) nets trained
normally, under FGSM, I-FGSM, the paper's PGD (as the author ran it, and corrected), uniform
noise, the strong suite's worst case, and the certified lower bound."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    NAMES,
    accuracy,
    cheap_eval,
    clean_runs,
    curve,
    labelled,
    measured_runs,
    net,
    pgd_eval,
    problems,
    strong_eval,
)
from rbfi.experiments.render import INTERVALS_NOTE, claim, claims_markdown, curves_png, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results
from rbfi.stats import (
    FAILS,
    UNDECIDED,
    Verdict,
    all_of,
    at_least,
    at_most,
    greater,
    premise,
    within,
)

ARCHS = ("relu", "sigmoid", "rbfi")
COLUMNS = [
    ("fgsm", "FGSM (eq. 12)"),
    ("ifgsm", "I-FGSM (eq. 13)"),
    ("pgd-paper-legacy", "PGD as the author ran it"),
    ("pgd-paper", "PGD, projection corrected"),
    ("noise", "noise"),
    ("worst", "worst case, strong suite"),
    ("certified", "certified (IBP)"),
]


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
        runs, cheap, pgd, strong = self.evals(profile)
        eps = profile.table_eps
        data: dict = {"eps": eps, "nets": {}, "intervals": {}}
        estimates: dict = {}
        rows = []
        for arch in ARCHS:
            values = {
                "clean": [results.final(r)["test_accuracy"] for r in runs[arch]],
                "fgsm": [accuracy(results, j, "fgsm", eps) for j in cheap[arch]],
                "ifgsm": [accuracy(results, j, "ifgsm", eps) for j in cheap[arch]],
                "noise": [accuracy(results, j, "noise", eps) for j in cheap[arch]],
                "pgd-paper-legacy": [accuracy(results, pgd[arch], "pgd-paper-legacy", eps)],
                "pgd-paper": [accuracy(results, pgd[arch], "pgd-paper", eps)],
                "worst": [accuracy(results, strong[arch], "worst", eps)],
                "certified": [accuracy(results, strong[arch], "certified", eps)],
            }
            estimates[arch] = {"clean": clean_runs(results, runs[arch])}
            for key, _ in COLUMNS:
                jobs = (
                    cheap[arch]
                    if key in ("fgsm", "ifgsm", "noise")
                    else [pgd[arch] if key.startswith("pgd") else strong[arch]]
                )
                estimates[arch][key] = measured_runs(results, jobs, key, eps)
            data["nets"][arch] = values
            data["intervals"][arch] = {k: e.to_json() for k, e in estimates[arch].items()}
            rows.append(
                [
                    labelled(results, f"{NAMES[arch]} ({len(runs[arch])} runs)", runs[arch]),
                    estimates[arch]["clean"].text(),
                ]
                + [estimates[arch][key].text() for key, _ in COLUMNS]
            )
        headers = ["network", "clean"] + [f"{title}" for _, title in COLUMNS]
        figure_panels = []
        for key, title, jobs_of in (
            ("fgsm", "FGSM", cheap),
            ("ifgsm", "I-FGSM", cheap),
            ("noise", "noise", cheap),
            ("pgd-paper-legacy", "PGD as the author ran it", pgd),
            ("pgd-paper", "PGD, corrected projection", pgd),
        ):
            panel = {}
            for arch in ARCHS:
                jobs = jobs_of[arch] if isinstance(jobs_of[arch], list) else [jobs_of[arch]]
                panel[NAMES[arch]] = curve(results, jobs, key, profile.eps_grid)
            figure_panels.append((title, panel))
        panel = {}
        for arch in ARCHS:
            panel[f"{NAMES[arch]} worst case"] = curve(
                results, [strong[arch]], "worst", profile.strong_eps
            )
            panel[f"{NAMES[arch]} certified"] = curve(
                results, [strong[arch]], "certified", profile.strong_eps
            )
        figure_panels.append(("strong suite: worst case and certified floor", panel))
        figure = curves_png(figure_panels, suptitle=f"Figure 2 ({profile.name} profile)")
        health = {
            "all runs": {NAMES[a]: runs[a] for a in ARCHS},
            "first runs": {NAMES[a]: runs[a][0] for a in ARCHS},
        }
        claims = self.claims(
            estimates,
            {k: problems(results, nets) for k, nets in health.items()},
        )
        n_pgd, n_strong = profile.pgd_limit, profile.strong_limit
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Accuracy in % at eps = {eps:g} [95% interval] (mean ± sd over runs where there "
                f"are several). Clean, FGSM, I-FGSM and noise on n = {profile.test_limit or 10000} "
                f"test images for every run; PGD on the first n = {n_pgd} images and the strong "
                f"suite and certificates on the first n = {n_strong}, for the first run of each "
                f"kind (as the paper ran PGD). {INTERVALS_NOTE}",
                table(headers, rows),
                claims_markdown(claims),
                "![Figure 2](figure2.png)",
            ]
        )
        return Rendered(markdown, data, {"figure2.png": figure}, claims)

    @staticmethod
    def claims(estimates: dict, doubts: dict[str, list[str]]) -> list[Claim]:
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
        for key, title in COLUMNS[:6]:
            weak = all_of([at_most(e("relu", key), 0.02), at_most(e("sigmoid", key), 0.02)])
            keeps = at_least(e("rbfi", key), 0.9)
            if weak.status == FAILS:
                verdict = Verdict(
                    UNDECIDED, f"not applicable: ReLU/sigmoid not below 2% ({weak.reason})"
                )
            else:
                verdict = all_of([weak, keeps])
            cheap = key in ("fgsm", "ifgsm", "noise")
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
                premise(barely, [p for p in doubts["all runs"] if p.startswith("RBFI")]),
                f"RBFI: FGSM {e('rbfi', 'fgsm').text()}, I-FGSM {e('rbfi', 'ifgsm').text()}, "
                f"noise {e('rbfi', 'noise').text()}",
            )
        )
        return out


ITEM = Table1()
