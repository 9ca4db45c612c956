"""What an experiment is: its jobs (train a model, evaluate a trained model) and how its table
or figure is rendered from their results.

A :class:`Job` is identified by its content: the same training settings give the same id in
every item and every run, so items share the nets they have in common, and a job whose result
exists is never run again (an interrupted reproduction resumes). Jobs run through
:mod:`rbfi.sweeps` (in-process or on Ray) and write only inside their own directory
``OUT/jobs/<id>/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from rbfi.attacks.suites import SuiteOptions
from rbfi.data import LEGACY_PIXEL_SCALE
from rbfi.evaluation import EvalConfig
from rbfi.models.config import LEGACY_U_INIT, ModelConfig
from rbfi.training import TrainConfig
from rbfi.training.health import Health, run_health

JOBS_DIR = "jobs"
RESULT_NAME = "result.json"


def _digest(data: dict) -> str:
    return hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]


# The settings job ids were first computed from. A setting added since enters an id only when
# it differs from the value runs had before it existed (its default, or LEGACY_VALUES), so the
# ids of committed results stay valid as settings are added.
ORIGINAL_SETTINGS = {
    TrainConfig: frozenset(
        "adv_eps adv_gradient adv_steps adversarial batch_size certified_eps certified_gradient "
        "certified_loss certified_ramp certified_scale certified_warmup certified_weight "
        "data_dir device epochs init_from loss lr model optimizer pseudogradient reg_lambda rho "
        "seed test_limit train_limit".split()
    ),
    ModelConfig: frozenset("arch geometry in_features layers u_bounds w_bounds".split()),
    EvalConfig: frozenset("attacks batch_size certify check_subset eps options seed suite".split()),
    SuiteOptions: frozenset(
        "adadelta_lr autoattack ifgsm_steps paper_pgd_restarts paper_pgd_steps pgd_alpha "
        "pgd_restarts pgd_steps square_queries transfer_steps".split()
    ),
}
NESTED = {(TrainConfig, "model"): ModelConfig, (EvalConfig, "options"): SuiteOptions}
LEGACY_VALUES = {
    (TrainConfig, "pixel_scale"): LEGACY_PIXEL_SCALE,
    # default None since issue 26 (cosine for linf-dist nets); runs before it had "constant"
    (TrainConfig, "lr_schedule"): "constant",
    # since issue 26 RBF (l2) nets start with u of order 1 / sqrt(n): their jobs get new ids,
    # RBFI nets (and RBF jobs that ask for RBFI's init) keep theirs
    (ModelConfig, "u_init"): LEGACY_U_INIT,
}


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def identity(cls: type, settings: dict) -> dict:
    """``settings`` (``cls.to_json()``) less the settings added after ids were first computed
    that hold the value runs had before they existed; nested configs likewise."""
    defaults = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            defaults[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # nested configs: never dropped
            defaults[f.name] = dataclasses.MISSING
    out = {}
    for key, value in settings.items():
        nested = NESTED.get((cls, key))
        if nested is not None and isinstance(value, dict):
            value = identity(nested, value)
        old = LEGACY_VALUES.get((cls, key), defaults.get(key, dataclasses.MISSING))
        if key not in ORIGINAL_SETTINGS[cls] and _plain(value) == old:
            continue
        out[key] = value
    return out


def _payload_identity(kind: str, payload: dict) -> dict:
    if kind == "train":
        return {**payload, "train": identity(TrainConfig, payload["train"])}
    if isinstance(payload.get("config"), dict):
        return {**payload, "config": identity(EvalConfig, payload["config"])}
    return payload


@dataclass(frozen=True)
class Job:
    """``kind`` "train" (payload: a TrainConfig) or "evaluate" (payload: the run it evaluates
    and what to compute); ``label`` names it for people; ``net``: the net it trains or
    evaluates, as labels name it (e.g. 'RBFI(512^, 512v, 512^, 10v) seed 0'); ``cost``:
    estimated seconds. Neither name enters the id."""

    kind: str
    payload: dict
    label: str
    deps: tuple[str, ...] = ()
    cost: float = 1.0
    net: str = ""

    @property
    def id(self) -> str:
        """From the content only (the label is for people): equal jobs share one directory."""
        if self.kind == "train":
            model = self.payload["train"]["model"]
            name = f"{model['arch']}-" + "-".join(map(str, model["layers"][:-1]))
        else:
            name = self.payload["what"]
        slug = re.sub(r"[^a-z0-9]+", "-", f"{self.kind}-{name}".lower()).strip("-")[:40]
        payload = _payload_identity(self.kind, self.payload)
        return f"{slug}-{_digest({'kind': self.kind, 'payload': payload})}"

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

    def damage(self, root: Path) -> str | None:
        """Why the files of this job cannot be used (a result or checkpoint index truncated or
        corrupt, weights that do not match their checksum), or None: they can, or the job has
        not written them yet."""
        from rbfi.io.atomic import sha256_file
        from rbfi.io.checkpoint import CheckpointError, read_index

        directory = self.directory(root)
        if self.kind == "train":
            if not (directory / "checkpoint.json").exists():
                return None
            try:
                index = read_index(directory)
            except CheckpointError as error:
                return str(error).replace(str(directory) + "/", "")
            weights = directory / index["weights"]["file"]  # absent where not kept: not damage
            if weights.is_file() and sha256_file(weights) != index["weights"]["sha256"]:
                return f"{weights.name} corrupt (checksum mismatch)"
            return None
        path = directory / RESULT_NAME
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as error:
            return f"{RESULT_NAME} unreadable ({error})"
        return None if isinstance(data, dict) else f"{RESULT_NAME} holds no JSON object"


def train_job(config: TrainConfig, net: str, cost: float = 1.0) -> Job:
    """Train ``config``; ``net`` names it (the label is 'train NET')."""
    return Job("train", {"train": config.to_json()}, f"train {net}", cost=cost, net=net)


def evaluate_job(
    run: Job, what: str, task: str, cost: float = 1.0, limit: int | None = None, **settings
) -> Job:
    """Evaluate the net of ``run``: ``what`` is "attacks" (settings: ``config``, an
    EvalConfig; the certified floor comes with it unless ``config.certify`` is off) or
    "sensitivity" (the bound of eq. 7-8); on the first ``limit`` test images. Other kinds are
    refused by :func:`rbfi.experiments.jobs.run_job`. ``task`` names what it computes (the
    label is 'eval NET TASK')."""
    if "config" in settings and isinstance(settings["config"], EvalConfig):
        settings["config"] = settings["config"].to_json()
    payload = {"run": run.id, "what": what, "limit": limit, **settings}
    label = f"eval {run.net} {task}"
    return Job("evaluate", payload, label, deps=(run.id,), cost=cost, net=run.net)


@dataclass(frozen=True)
class Claim:
    """A claim of the paper and whether our numbers bear it out (None: undecided): the
    numbers behind it (``evidence``), the reason and its details (:class:`rbfi.stats.Verdict`:
    the reason fits a table cell, the details go to the item's own page)."""

    text: str
    holds: bool | None
    evidence: str
    reason: str = ""
    details: list[str] = field(default_factory=list)


@dataclass
class Rendered:
    """An item's outputs: Markdown (its table, the claims beside our numbers), the numbers as
    JSON, and figures (name -> PNG bytes)."""

    markdown: str
    data: dict
    figures: dict[str, bytes] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)


class Results:
    """Read access to finished jobs' results for rendering. Each file is read once: a table
    row, its claim and its health check share the parsed JSON (treat it as read-only)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._read: dict[Path, dict] = {}

    def _json(self, path: Path) -> dict:
        if path not in self._read:
            self._read[path] = json.loads(path.read_text())
        return self._read[path]

    def train(self, job: Job) -> dict:
        """The run's checkpoint index (model, settings, per-epoch metrics)."""
        return self._json(job.directory(self.root) / "checkpoint.json")

    def final(self, job: Job) -> dict:
        """The last epoch's metrics of a training job."""
        return self.train(job)["metrics"][-1]

    def evaluation(self, job: Job) -> dict:
        """An evaluate job's result (accuracies, per-example flags, bounds)."""
        return self._json(job.directory(self.root) / RESULT_NAME)

    def health(self, job: Job) -> Health:
        """Whether a training job's net finished learning (:func:`rbfi.training.health.run_health`:
        its ``health.json``, else assessed from its records)."""
        return run_health(job.directory(self.root), self.train(job))


class Item:
    """A table or figure of the paper (or a study beyond it, ``paper = False``: its claims are
    ours): its jobs under a profile, and its rendering."""

    name = "item"
    title = ""
    section = ""
    paper = True

    def jobs(self, profile) -> list[Job]:
        raise NotImplementedError

    def render(self, results: Results, profile) -> Rendered:
        raise NotImplementedError
