"""What a job does when an engine runs it (``rbfi.experiments.jobs:run_job``): train a net, or
evaluate a trained one, writing only into the job's own directory.

Train jobs continue an interrupted run (``resume=True``); evaluate jobs write ``result.json``
atomically at the end, so a job either has its result or is run again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rbfi.bounds import network_sensitivity
from rbfi.data import checkpoint_test_set
from rbfi.evaluation import EvalConfig, evaluate_robustness
from rbfi.experiments.spec import JOBS_DIR, RESULT_NAME
from rbfi.io import atomic_write_json
from rbfi.models import load_model
from rbfi.training import TrainConfig, train


def run_job(payload: dict, root: Path) -> None:
    """Run the job described by ``payload`` ({"id", "kind", ...}) under ``root``."""
    directory = Path(root) / JOBS_DIR / payload["id"]
    directory.mkdir(parents=True, exist_ok=True)
    if payload["kind"] == "train":
        config = TrainConfig.from_json(payload["train"])
        with open(directory / "train.log", "a") as log:
            train(
                config,
                directory,
                resume=True,
                progress=False,
                log=lambda line: print(line, file=log, flush=True),
            )
        return
    started = time.perf_counter()
    run_dir = Path(root) / JOBS_DIR / payload["run"]
    model = load_model(run_dir)
    settings = payload.get("config") or {}
    x, y, _, pixel_scale = checkpoint_test_set(
        run_dir, payload.get("limit") or None, pixel_scale=settings.get("pixel_scale")
    )
    what = payload["what"]
    if what == "attacks":
        config = EvalConfig(**{**payload["config"], "pixel_scale": pixel_scale})
        source = None
        if payload.get("transfer_source"):
            source = load_model(Path(root) / JOBS_DIR / payload["transfer_source"])
        result = evaluate_robustness(
            model, x, y, config, transfer_source=source, progress=False, log=lambda line: None
        )
    elif what == "sensitivity":
        result = {"bound": float(network_sensitivity(model).detach())}
    else:
        raise ValueError(f"unknown evaluation {what!r}")
    result["job_seconds"] = time.perf_counter() - started
    atomic_write_json(directory / RESULT_NAME, json.loads(json.dumps(result)), indent=None)
