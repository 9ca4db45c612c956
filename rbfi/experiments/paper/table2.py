"""Table 2 (Sec. 6.5): RBFI nets with And, Or, mixed and alternating layers at several sizes."""

from __future__ import annotations

from rbfi.experiments.paper.common import net
from rbfi.experiments.paper.measure import measure, problems, test_images
from rbfi.experiments.render import INTERVALS_NOTE, claim, page, table
from rbfi.experiments.spec import Item, Rendered, Results
from rbfi.stats import all_of, greater, premise, within

MARGIN = 0.01  # "within the sd": the paper's sds are about 0.1-1 point

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
        grid = {f"{size} {g}": runs for (size, g), runs in self.grid(profile).items()}
        sheet = measure(results, profile, grid, [], profile.table_eps)
        estimates = {key: sheet[key, "clean"] for key in grid}
        data = {key: sheet.recorded[key]["clean"] for key in grid}
        data["intervals"] = {key: e.to_json() for key, e in estimates.items()}
        sizes, largest = profile.table2_sizes, max(profile.table2_sizes)
        rows = [
            [f"{name} ({g})"] + [sheet[f"{size} {g}", "clean"].text() for size in sizes]
            for g, name in GEOMETRIES
        ]
        at_largest = [f"{largest} {g}" for g, _ in GEOMETRIES]
        doubts = problems(results, {f"RBFI {key}": runs for key, runs in grid.items()})
        doubts_largest = problems(results, {f"RBFI {key}": grid[key] for key in at_largest})
        n = test_images(next(iter(grid.values()))[0])
        caption = (
            f"Clean test accuracy in % of n-n-n-10 RBFI nets, {profile.table2_epochs} epochs, "
            f"{profile.seeds_small} run(s) each (mean ± sd) on n = {n} test images. "
            + INTERVALS_NOTE
        )
        headers = ["layers"] + [f"{size} units" for size in sizes]
        claims = self.claims(estimates, sizes, doubts, doubts_largest)
        return page(self, caption, table(headers, rows), claims, data)

    @staticmethod
    def claims(estimates: dict, sizes, doubts, doubts_largest) -> list:
        """The layer kinds within ``MARGIN`` of each other at the largest size (every pair, on
        their intervals, so it needs no second run), with the spread per size beside it; the
        alternating kind better than the best of the others at the largest size."""
        largest = max(sizes)
        at_largest = [f"{largest} {g}" for g, _ in GEOMETRIES]
        pairs = [
            within(estimates[a], estimates[b], MARGIN, (a, b))
            for i, a in enumerate(at_largest)
            for b in at_largest[i + 1 :]
        ]
        spread = {
            size: max(estimates[f"{size} {g}"].value for g, _ in GEOMETRIES)
            - min(estimates[f"{size} {g}"].value for g, _ in GEOMETRIES)
            for size in sizes
        }
        others = [f"{largest} {g}" for g in ("^^^^", "vvvv", "****")]
        best_other = max(others, key=lambda k: estimates[k].value)
        alternating = f"{largest} ^v^v"
        return [
            claim(
                "differences between layer kinds shrink as nets grow, to within the sd",
                premise(all_of(pairs), doubts),
                f"{largest} units: "
                + ", ".join(f"{k.split()[1]} {estimates[k].text()}" for k in at_largest)
                + f" (every pair within {100 * MARGIN:g} point?); best minus worst kind: "
                + ", ".join(f"{size} units {100 * d:.2f}" for size, d in spread.items()),
            ),
            claim(
                "alternating And/Or layers give marginally better accuracy",
                premise(
                    greater(estimates[alternating], estimates[best_other], ("^v^v", best_other)),
                    doubts_largest,
                ),
                f"{largest} units: ^v^v {estimates[alternating].text()}, best of ^^^^/vvvv/**** "
                f"{best_other.split()[1]} {estimates[best_other].text()}",
            ),
        ]


ITEM = Table2()
