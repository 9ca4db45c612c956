"""The numbers items read from finished jobs: accuracies with their 95% intervals and
per-example flags (:class:`Sheet`, one per item: nets by attacks at one eps), curves over eps,
and the health of the nets behind them (:func:`problems`: the doubts a claim rests on)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rbfi.attacks.suites import TITLES
from rbfi.evaluation.results import row_flags
from rbfi.experiments.paper.common import sources
from rbfi.experiments.profiles import Profile
from rbfi.experiments.render import mean_sd, table
from rbfi.experiments.spec import Job, Results
from rbfi.stats import Doubt, Estimate, accuracy_estimate, over_runs, proportion

# one title per column: the attacks' (the catalogue) and the strong suite's two
COLUMN_TITLES = {**TITLES, "worst": "worst case, strong suite", "certified": "certified (IBP)"}


def result_row(results: Results, job: Job, attack: str, eps: float) -> dict:
    """An evaluate job's row of ``attack`` at ``eps`` ("worst" / "certified": the worst case
    over its suite and the certificates)."""
    data, key = results.evaluation(job), f"{eps:g}"
    if attack == "worst":
        return data["worst_case"][key]
    if attack == "certified":
        return data["certified"][key]
    return data["results"][attack][key]


def accuracy(results: Results, job: Job, attack: str, eps: float) -> float:
    """The accuracy an evaluate job recorded for ``attack`` at ``eps``."""
    return result_row(results, job, attack, eps)["accuracy"]


def flags(results: Results, job: Job, attack: str, eps: float) -> list[bool]:
    """Per-example outcome (right under the attack / certified) of an evaluate job."""
    try:
        return row_flags(result_row(results, job, attack, eps))
    except ValueError:
        raise ValueError(f"{job.label}: no per-example flags for {attack} at eps {eps:g}") from None


def measured(results: Results, job: Job, attack: str, eps: float) -> Estimate:
    """An evaluate job's accuracy under ``attack`` at ``eps`` as k of n, with its interval."""
    right = flags(results, job, attack, eps)
    return proportion(sum(right), len(right))


def measured_runs(results: Results, jobs: list[Job], attack: str, eps: float) -> Estimate:
    """The mean over runs (each on the same n images) with its 95% interval."""
    if len(jobs) == 1:
        return measured(results, jobs[0], attack, eps)
    n = len(flags(results, jobs[0], attack, eps))
    return over_runs([accuracy(results, j, attack, eps) for j in jobs], n)


def test_images(job: Job) -> int:
    """How many test images a training job's clean accuracy was measured on."""
    return job.payload["train"].get("test_limit") or 10000


def clean(results: Results, job: Job) -> Estimate:
    """The final clean test accuracy of a training job, with its exact 95% interval."""
    return accuracy_estimate(results.final(job)["test_accuracy"], test_images(job))


def clean_runs(results: Results, jobs: list[Job]) -> Estimate:
    """The mean clean accuracy of several runs, with its 95% interval (one run: exact)."""
    values = [results.final(j)["test_accuracy"] for j in jobs]
    return over_runs(values, test_images(jobs[0]))


def curve(results: Results, jobs: list[Job], attack: str) -> tuple:
    """(eps, mean, sd) of an attack's accuracy over the runs of ``jobs``, at every eps they
    were evaluated at."""
    grid = jobs[0].payload["config"]["eps"]
    means, sds = [], []
    for eps in grid:
        mean, sd = mean_sd([accuracy(results, j, attack, eps) for j in jobs])
        means.append(mean)
        sds.append(sd)
    return list(grid), means, sds if len(jobs) > 1 else None


def _runs(jobs: Job | list[Job]) -> list[Job]:
    return jobs if isinstance(jobs, list) else [jobs]


@dataclass
class Sheet:
    """Nets (rows) by columns ("clean" and attacks) at one eps: each cell's estimate with its
    95% interval, the accuracies the jobs recorded (one per run) and, for a cell measured on
    one run, the per-example flags (McNemar's test pairs them)."""

    estimates: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    recorded: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    flags: dict[tuple[str, str], list[bool]] = field(default_factory=dict)

    def __getitem__(self, cell: tuple[str, str]) -> Estimate:
        net, column = cell
        return self.estimates[net][column]

    def cells(self, net: str, columns: Sequence[str]) -> list[str]:
        """'84.0 [75.3-90.6]' per column."""
        return [self.estimates[net][c].text() for c in columns]

    def values(self, net: str, columns: Sequence[str]) -> dict[str, float]:
        """The recorded accuracy per column (of the first run)."""
        return {c: self.recorded[net][c][0] for c in columns}

    def intervals(self, columns: Sequence[str]) -> dict[str, dict]:
        """net -> column -> the estimate's JSON."""
        return {n: {c: e[c].to_json() for c in columns} for n, e in self.estimates.items()}

    def rows(self, shown: dict[str, str], columns: Sequence[str]) -> list[list[str]]:
        """A table row per net: its name as ``shown`` (net -> name), then a cell per column."""
        return [[name] + self.cells(net, columns) for net, name in shown.items()]

    def data(self, columns: Sequence[str]) -> dict:
        """The usual ``data.json``: net -> column -> recorded accuracy, and "intervals"."""
        values = {net: self.values(net, columns) for net in self.estimates}
        return values | {"intervals": self.intervals(columns)}


def measure(
    results: Results,
    profile: Profile,
    nets: dict[str, Job | list[Job]],
    columns: Sequence[str],
    eps: float,
    certified_from: str = "strong",
) -> Sheet:
    """The :class:`Sheet` of ``nets`` (name -> training job or runs): "clean" from the
    training, each attack of ``columns`` from the evaluation that measured it
    (:func:`~rbfi.experiments.paper.common.sources`)."""
    sheet = Sheet()
    for name, jobs in nets.items():
        runs = _runs(jobs)
        sheet.estimates[name] = {"clean": clean_runs(results, runs)}
        sheet.recorded[name] = {"clean": [results.final(r)["test_accuracy"] for r in runs]}
        for column in columns:
            evals = sources(profile, runs, column, certified_from)
            sheet.estimates[name][column] = measured_runs(results, evals, column, eps)
            sheet.recorded[name][column] = [accuracy(results, j, column, eps) for j in evals]
            if len(evals) == 1:
                sheet.flags[name, column] = flags(results, evals[0], column, eps)
    return sheet


def attack_table(
    results: Results, profile: Profile, nets: dict[str, Job], columns: Sequence[str], eps: float
) -> tuple[Sheet, dict[str, str], str, dict]:
    """What an item over single nets and attacks starts from: their :class:`Sheet`, each net's
    name as shown (:func:`labelled`), the Markdown table (network, clean, a column per attack)
    and the usual ``data.json`` (:meth:`Sheet.data`)."""
    sheet = measure(results, profile, nets, columns, eps)
    shown = {name: labelled(results, name, job) for name, job in nets.items()}
    headers = ["network", "clean"] + [COLUMN_TITLES[c] for c in columns]
    numbers = table(headers, sheet.rows(shown, ("clean", *columns)))
    return sheet, shown, numbers, sheet.data(("clean", *columns))


def panels(
    results: Results,
    profile: Profile,
    nets: dict[str, Job | list[Job]],
    columns: Sequence[str],
    legend: dict[str, str] | None = None,
    certified_from: str = "strong",
) -> list[tuple[str, dict]]:
    """One figure panel per column: each net's curve over the eps its evaluation ran at;
    ``legend``: the name a net has in the legend (default: its name in ``nets``)."""
    legend = legend or {name: name for name in nets}
    return [
        (
            COLUMN_TITLES[column],
            {
                legend[name]: curve(
                    results, sources(profile, _runs(jobs), column, certified_from), column
                )
                for name, jobs in nets.items()
            },
        )
        for column in columns
    ]


def labelled(results: Results, name: str, jobs: Job | list[Job]) -> str:
    """``name`` as a table row or legend shows it: with the status of its runs appended when
    one did not finish learning, e.g. 'ReLU(Madry PGD) (failed)', so that a net that did not
    train is never shown as if it had."""
    bad = sorted({h.status for h in map(results.health, _runs(jobs)) if not h.trained})
    return f"{name} ({'/'.join(bad)})" if bad else name


def problems(results: Results, nets: dict[str, Job | list[Job]], ignore=()) -> list[Doubt]:
    """What makes a claim resting on ``nets`` ({name: job or runs}) doubtful: one
    :class:`~rbfi.stats.Doubt` per net with runs not converged (statuses in ``ignore``
    excepted, e.g. "failed" for a claim that a net fails to learn), e.g. Sigmoid under-trained
    (seed 0: clean 75.9 < floor 95, +64.2 points in the last 3 epochs; seed 1: ...)."""
    out = []
    for name, jobs in nets.items():
        runs, bad = _runs(jobs), []
        for job in runs:
            h = results.health(job)
            if not h.trained and h.status not in ignore:
                seed = job.payload["train"]["seed"]
                bad.append((h.status, f"seed {seed}: {h.short()}" if len(runs) > 1 else h.short()))
        if bad:
            statuses = "/".join(sorted({status for status, _ in bad}))
            out.append(Doubt(name, statuses, "; ".join(text for _, text in bad)))
    return out
