"""Table 2 (Sec. 6.5): RBFI nets with And, Or, mixed and alternating layers at several sizes."""

from __future__ import annotations

from rbfi.experiments.paper.common import net
from rbfi.experiments.render import cell, claims_markdown, mean_sd, table
from rbfi.experiments.spec import Claim, Item, Rendered, Results

GEOMETRIES = (
    ("^^^^", "all And"),
    ("vvvv", "all Or"),
    ("****", "mixed"),
    ("^v^v", "alternating ^v"),
    ("v^v^", "alternating v^"),
)


class Table2(Item):
    name = "table2"
    title = "Table 2: accuracy of RBFI nets with And, Or and mixed layers"
    section = "6.5"

    def grid(self, profile) -> dict:
        return {
            (size, geometry): [
                net(
                    profile,
                    "rbfi",
                    seed,
                    width=size,
                    geometry=geometry,
                    epochs=profile.table2_epochs,
                )
                for seed in range(profile.seeds_small)
            ]
            for size in profile.table2_sizes
            for geometry, _ in GEOMETRIES
        }

    def jobs(self, profile):
        return [j for runs in self.grid(profile).values() for j in runs]

    def render(self, results: Results, profile) -> Rendered:
        grid = self.grid(profile)
        data = {
            f"{size} {geometry}": [results.final(r)["test_accuracy"] for r in runs]
            for (size, geometry), runs in grid.items()
        }
        headers = ["layers"] + [f"{size} units" for size in profile.table2_sizes]
        rows = [
            [f"{name} ({geometry})"]
            + [cell(data[f"{size} {geometry}"]) for size in profile.table2_sizes]
            for geometry, name in GEOMETRIES
        ]
        claims = []
        if profile.seeds_small > 1:
            largest, smallest = max(profile.table2_sizes), min(profile.table2_sizes)

            def spread(size):
                means = [mean_sd(data[f"{size} {g}"])[0] for g, _ in GEOMETRIES]
                sds = [mean_sd(data[f"{size} {g}"])[1] for g, _ in GEOMETRIES]
                return max(means) - min(means), max(sds)

            big_spread, big_sd = spread(largest)
            small_spread, _ = spread(smallest)
            claims.append(
                Claim(
                    "differences between layer kinds shrink as nets grow, to within the sd",
                    big_spread <= max(2 * big_sd, small_spread),
                    f"spread of the means: {100 * small_spread:.2f} points at {smallest} units, "
                    f"{100 * big_spread:.2f} at {largest} (largest sd {100 * big_sd:.2f})",
                )
            )
        alternating = mean_sd(data[f"{max(profile.table2_sizes)} ^v^v"])[0]
        best_other = max(
            mean_sd(data[f"{max(profile.table2_sizes)} {g}"])[0] for g in ("^^^^", "vvvv", "****")
        )
        claims.append(
            Claim(
                "alternating And/Or layers give marginally better accuracy",
                alternating >= best_other,
                f"{max(profile.table2_sizes)} units: ^v^v {100 * alternating:.2f}, best of "
                f"^^^^/vvvv/**** {100 * best_other:.2f}",
            )
        )
        markdown = "\n\n".join(
            [
                f"## {self.title}",
                f"Clean test accuracy in % of n-n-n-10 RBFI nets, {profile.table2_epochs} epochs, "
                f"{profile.seeds_small} run(s) each (mean ± sd).",
                table(headers, rows),
                claims_markdown(claims),
            ]
        )
        return Rendered(markdown, data, {}, claims)


ITEM = Table2()
