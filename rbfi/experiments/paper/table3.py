"""Table 3 (Sec. 6.6): RBFI nets trained with true gradients vs pseudogradients."""

from __future__ import annotations

from rbfi.experiments.paper.common import net
from rbfi.experiments.render import cell, claims_markdown, mean_sd, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results


class Table3(Item):
    name = "table3"
    title = "Table 3: true gradients vs pseudogradients"
    section = "6.6"

    def grid(self, profile) -> dict:
        return {
            (size, mode): [
                net(
                    profile,
                    "rbfi",
                    seed,
                    width=size,
                    pseudogradient=(mode == "pseudo"),
                    label=f"RBFI {size} {mode} gradients seed {seed}",
                )
                for seed in range(profile.seeds_small)
            ]
            for size in profile.table3_sizes
            for mode in ("true", "pseudo")
        }

    def jobs(self, profile):
        return [j for runs in self.grid(profile).values() for j in runs]

    def render(self, results: Results, profile) -> Rendered:
        grid = self.grid(profile)
        data = {
            f"{size} {mode}": [results.final(r)["test_accuracy"] for r in runs]
            for (size, mode), runs in grid.items()
        }
        rows = [
            [
                f"RBFI({size}^, {size}v, {size}^, 10v)",
                cell(data[f"{size} true"]),
                cell(data[f"{size} pseudo"]),
            ]
            for size in profile.table3_sizes
        ]
        true_best = max(mean_sd(data[f"{s} true"])[0] for s in profile.table3_sizes)
        gaps = [
            mean_sd(data[f"{s} pseudo"])[0] - mean_sd(data[f"{s} true"])[0]
            for s in profile.table3_sizes
        ]
        claims = [
            Claim(
                "with true gradients RBFI nets reach at most about 85%",
                true_best <= 0.87,
                f"best true-gradient net {100 * true_best:.1f}%",
            ),
            Claim(
                "pseudogradients train markedly better than true gradients",
                min(gaps) > 0.02,
                "pseudo - true: " + ", ".join(f"{100 * g:+.1f} points" for g in gaps),
            ),
        ]
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Clean test accuracy in %, {profile.epochs} epochs, {profile.seeds_small} run(s) "
                "each (mean ± sd).",
                table(["network", "true gradients", "pseudogradients"], rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Table3()
