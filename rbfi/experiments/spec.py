"""What an experiment is: its jobs (train a model, evaluate a trained model) and how its table
or figure is rendered from their results.

A :class:`Job` is identified by its content: the same training settings give the same id in
every item and every run, so items share the nets they have in common, and a job whose result
exists is never run again (an interrupted reproduction resumes). Jobs run through
:mod:`rbfi.sweeps` (in-process or on Ray) and write only inside their own directory
``OUT/jobs/<id>/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rbfi.evaluation import EvalConfig
from rbfi.training import TrainConfig

JOBS_DIR = "jobs"
RESULT_NAME = "result.json"


def _digest(data: dict) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Job:
    """``kind`` "train" (payload: a TrainConfig) or "evaluate" (payload: the run it evaluates
    and what to compute); ``label`` names it for people; ``cost``: estimated seconds."""

    kind: str
    payload: dict
    label: str
    deps: tuple[str, ...] = ()
    cost: float = 1.0

    @property
    def id(self) -> str:
        """From the content only (the label is for people): equal jobs share one directory."""
        if self.kind == "train":
            model = self.payload["train"]["model"]
            name = f"{model['arch']}-" + "-".join(map(str, model["layers"][:-1]))
        else:
            name = self.payload["what"]
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.kind}-{name}".lower()).strip("-")[:40]
        return f"{slug}-{_digest({'kind': self.kind, 'payload': self.payload})}"

    def directory(self, root: Path) -> Path:
        return Path(root) / JOBS_DIR / self.id

    def is_done(self, root: Path) -> bool:
        directory = self.directory(root)
        if self.kind == "train":
            index = directory / "checkpoint.json"
            if not index.is_file():
                return False
            try:
                saved = json.loads(index.read_text())
            except ValueError:
                return False
            return saved.get("epoch") == self.payload["train"]["epochs"]
        return (directory / RESULT_NAME).is_file()


def train_job(config: TrainConfig, label: str, cost: float = 1.0) -> Job:
    return Job("train", {"train": config.to_json()}, label, cost=cost)


def evaluate_job(
    run: Job, what: str, label: str, cost: float = 1.0, limit: int | None = None, **settings
) -> Job:
    """Evaluate the net of ``run``: ``what`` is "attacks" (settings: ``config``, an
    EvalConfig; the certified floor comes with it unless ``config.certify`` is off) or
    "sensitivity" (the bound of eq. 7-8); on the first ``limit`` test images. Other kinds are
    refused by :func:`rbfi.experiments.jobs.run_job`."""
    if "config" in settings and isinstance(settings["config"], EvalConfig):
        settings["config"] = settings["config"].to_json()
    payload = {"run": run.id, "what": what, "limit": limit, **settings}
    return Job("evaluate", payload, label, deps=(run.id,), cost=cost)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and whether our numbers bear it out (None: not decidable)."""

    text: str
    holds: bool | None
    evidence: str


@dataclass
class Rendered:
    """An item's outputs: Markdown (its table, the claims beside our numbers), the numbers as
    JSON, and figures (name -> PNG bytes)."""

    markdown: str
    data: dict
    figures: dict[str, bytes] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)


class Results:
    """Read access to finished jobs' results for rendering."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def train(self, job: Job) -> dict:
        """The run's checkpoint index (model, settings, per-epoch metrics)."""
        return json.loads((job.directory(self.root) / "checkpoint.json").read_text())

    def final(self, job: Job) -> dict:
        """The last epoch's metrics of a training job."""
        return self.train(job)["metrics"][-1]

    def evaluation(self, job: Job) -> dict:
        return json.loads((job.directory(self.root) / RESULT_NAME).read_text())


class Item:
    """A table or figure of the paper: its jobs under a profile, and its rendering."""

    name = "item"
    title = ""
    section = ""

    def jobs(self, profile) -> list[Job]:
        raise NotImplementedError

    def render(self, results: Results, profile) -> Rendered:
        raise NotImplementedError
