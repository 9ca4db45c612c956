"""Table 1 and Figure 2 (Sec. 6.3): 512-512-512-10 ReLU, sigmoid and RBFI(^v^v) nets trained
normally, under FGSM, I-FGSM, the paper's PGD (as the author ran it, and corrected), uniform
noise, the strong suite's worst case, and the certified lower bound."""

from __future__ import annotations

from rbfi.experiments.paper.common import (
    NAMES,
    accuracy,
    cheap_eval,
    curve,
    net,
    pgd_eval,
    strong_eval,
)
from rbfi.experiments.render import cell, claims_markdown, curves_png, pct, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results

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
        source = runs["relu"][0]
        strong = {
            a: strong_eval(profile, rs[0], None if a == "relu" else source)
            for a, rs in runs.items()
        }
        return runs, cheap, pgd, strong

    def jobs(self, profile):
        runs, cheap, pgd, strong = self.evals(profile)
        out = [j for rs in runs.values() for j in rs]
        out += [j for js in cheap.values() for j in js]
        return out + list(pgd.values()) + list(strong.values())

    def render(self, results: Results, profile) -> Rendered:
        runs, cheap, pgd, strong = self.evals(profile)
        eps = profile.table_eps
        data: dict = {"eps": eps, "nets": {}}
        rows = []
        for arch in ARCHS:
            clean = [results.final(r)["test_accuracy"] for r in runs[arch]]
            values = {
                "clean": clean,
                "fgsm": [accuracy(results, j, "fgsm", eps) for j in cheap[arch]],
                "ifgsm": [accuracy(results, j, "ifgsm", eps) for j in cheap[arch]],
                "noise": [accuracy(results, j, "noise", eps) for j in cheap[arch]],
                "pgd-paper-legacy": [accuracy(results, pgd[arch], "pgd-paper-legacy", eps)],
                "pgd-paper": [accuracy(results, pgd[arch], "pgd-paper", eps)],
                "worst": [accuracy(results, strong[arch], "worst", eps)],
                "certified": [accuracy(results, strong[arch], "certified", eps)],
            }
            data["nets"][arch] = values
            rows.append(
                [f"{NAMES[arch]} ({len(runs[arch])} runs)", cell(clean)]
                + [cell(values[key]) for key, _ in COLUMNS]
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
        claims = self.claims(data)
        n_pgd, n_strong = profile.pgd_limit, profile.strong_limit
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Accuracy in % at eps = {eps:g} (mean ± sd over runs where there are several). "
                f"Clean, FGSM, I-FGSM and noise on {profile.test_limit or 10000} test images for "
                f"every run; PGD on the first {n_pgd} images and the strong suite and certificates "
                f"on the first {n_strong}, for the first run of each kind (as the paper ran PGD).",
                table(headers, rows),
                claims_markdown(claims),
                "![Figure 2](figure2.png)",
            ]
        )
        return Rendered(markdown, data, {"figure2.png": figure}, claims)

    @staticmethod
    def claims(data: dict) -> list[Claim]:
        def mean(arch, key):
            values = data["nets"][arch][key]
            return sum(values) / len(values)

        clean = {a: mean(a, "clean") for a in ARCHS}
        out = [
            Claim(
                "RBFI matches sigmoid in clean accuracy and is slightly below ReLU",
                abs(clean["rbfi"] - clean["sigmoid"]) <= 0.01 and clean["relu"] > clean["rbfi"],
                ", ".join(f"{NAMES[a]} {pct(clean[a])}" for a in ARCHS),
            )
        ]
        for key, title in COLUMNS[:6]:
            weak = max(mean("relu", key), mean("sigmoid", key))
            rbfi = mean("rbfi", key)
            holds = rbfi > 0.9 if weak < 0.02 else None
            out.append(
                Claim(
                    f"under {title}, where ReLU and sigmoid fall below 2%, RBFI keeps above 90%",
                    holds,
                    f"RBFI {pct(rbfi)}, ReLU {pct(mean('relu', key))}, "
                    f"sigmoid {pct(mean('sigmoid', key))}"
                    + ("" if holds is not None else " (ReLU/sigmoid not below 2%: not applicable)"),
                )
            )
        out.append(
            Claim(
                "FGSM and I-FGSM barely affect RBFI; even noise is a stronger attack on it",
                min(mean("rbfi", "fgsm"), mean("rbfi", "ifgsm")) > mean("rbfi", "noise"),
                f"RBFI: FGSM {pct(mean('rbfi', 'fgsm'))}, I-FGSM {pct(mean('rbfi', 'ifgsm'))}, "
                f"noise {pct(mean('rbfi', 'noise'))}",
            )
        )
        return out


ITEM = Table1()
