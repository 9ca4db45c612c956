"""Training on the model's dataset (MNIST by default; paper, Sec. 6): AdaDelta, batch 100,
square-error loss for RBFI and sigmoid nets, cross-entropy for ReLU nets; parameters of RBFI
layers are projected onto their bounds after every optimiser step (Sec. 4.2).

Every epoch ends with an evaluation on the test set, a checkpoint (weights + optimiser and RNG
state) and one JSON line appended to ``metrics.jsonl``. A resumed run continues from the last
completed epoch and, on CPU, ends with exactly the weights of an uninterrupted run, even after
the process was killed at any point (checkpoints are written atomically).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor

from rbfi.data import load_dataset
from rbfi.io import Progress, atomic_write_bytes
from rbfi.io.atomic import append_text
from rbfi.io.checkpoint import INDEX_NAME, CheckpointError, check_run_directory, load_tensors
from rbfi.io.checkpoint import read_index as read_checkpoint_index
from rbfi.io.lock import run_lock
from rbfi.io.paths import portable_path
from rbfi.models import (
    build_model,
    evaluate,
    load_checked_weights,
    model_config_of,
    save_model,
)
from rbfi.models.config import LINF
from rbfi.nn import DistanceLogits, attach_projection
from rbfi.training.config import TrainConfig
from rbfi.training.health import write_health
from rbfi.training.linf import LinfDistObjective
from rbfi.training.objectives import Objective, make_objective
from rbfi.training.schedule import learning_rate
from rbfi.training.state import capture_state, restore_state, seeded_rng_scope

METRICS_NAME = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunExists(ValueError):
    """The output directory already holds a checkpoint and --resume was not asked for."""


def _resume_point(
    out_dir: Path, config: TrainConfig, resume: bool, log
) -> tuple[TrainConfig, dict | None]:
    """(the config to run, the checkpoint index to resume from or None); checks everything
    about an existing checkpoint before anything is written."""
    has_checkpoint = (out_dir / INDEX_NAME).exists()
    if not has_checkpoint:
        if resume:
            log(f"no checkpoint in {portable_path(out_dir)} to resume: starting a new run")
        return config, None
    if not resume:
        raise RunExists(
            f"{out_dir} already holds a checkpoint; use --resume to continue it "
            f"or choose another --out"
        )
    index = read_checkpoint_index(out_dir)
    try:
        saved = TrainConfig.from_json(index.get("training") or {})
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {out_dir}: bad training settings: {exc}") from None
    if saved.model != model_config_of(index):
        raise CheckpointError(
            f"checkpoint {out_dir}: its training settings and its model config disagree"
        )
    if "state" not in index:
        raise CheckpointError(f"checkpoint {out_dir} holds no training state (cannot resume)")
    saved.epochs = max(config.epochs, saved.epochs)
    return saved, index


@dataclass
class TrainingRun:
    """Everything one training run works with, set up by :func:`_set_up`."""

    config: TrainConfig
    out_dir: Path
    data: tuple[Tensor, Tensor, Tensor, Tensor]  # x_train, y_train, x_test, y_test
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    shuffle: torch.Generator
    objective: Objective
    steps_per_epoch: int
    metrics: list[dict] = field(default_factory=list)
    start_epoch: int = 0

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train as ``config`` says, checkpointing into ``out_dir`` after every epoch.

    The run holds ``out_dir``'s lock (:func:`rbfi.io.lock.run_lock`) throughout: a second
    process on it gets :class:`rbfi.io.lock.RunLocked`. ``resume=True`` continues from the
    checkpoint in ``out_dir`` (its saved settings win, except
    ``epochs``, which may be raised), or starts a new run there if it holds none. Returns the
    last epoch's metrics; ``health.json`` says whether the run converged
    (:mod:`rbfi.training.health`). The global random generators are seeded for the run and
    given back to the caller unchanged (:func:`seeded_rng_scope`).
    """
    out_dir = check_run_directory(out_dir)
    if config.init_from:  # recorded as zoo:NAME or a relative path, never an absolute one
        from rbfi.models.zoo import recorded_ref

        config = replace(config, init_from=recorded_ref(config.init_from))
    with run_lock(out_dir, "training"):  # one process per run directory (RunLocked: exit 2)
        config, index = _resume_point(out_dir, config, resume, log)
        with seeded_rng_scope(config.seed, config.device):
            run = _set_up(config, out_dir, index, log)
            if index is None:
                _save_checkpoint(run, epoch=0)
            _rewrite_metrics(out_dir, run.metrics)
            for epoch in range(run.start_epoch + 1, config.epochs + 1):
                record = _train_epoch(run, epoch, progress)
                record.update(_evaluate_epoch(run, epoch))
                run.metrics.append(record)
                _save_checkpoint(run, epoch)
                _append_metrics(out_dir, record)
                log(_describe_epoch(record))
        health = write_health(out_dir, run.metrics, config.to_json())
    if not health.trained:
        log(f"health: {health.problem('this run')}")
    return run.metrics[-1] if run.metrics else {}


def _set_up(config: TrainConfig, out_dir: Path, index: dict | None, log) -> TrainingRun:
    """Data, model, optimiser and objective of the run; from the checkpoint ``index`` (weights,
    optimiser and RNG states, metrics) when resuming, else freshly initialised (or from
    ``config.init_from``). Model initialisation draws from the (seeded) global generator."""
    device = torch.device(config.device)
    data = _load_data(config, device)
    model = build_model(config.model, pseudogradient=config.pseudogradient).to(device)
    steps_per_epoch = math.ceil(len(data[0]) / config.batch_size)
    run = TrainingRun(
        config=config,
        out_dir=out_dir,
        data=data,
        model=model,
        optimizer=make_optimizer(config, model),
        shuffle=torch.Generator().manual_seed(config.seed),
        objective=_objective(config, steps_per_epoch * config.epochs),
        steps_per_epoch=steps_per_epoch,
    )
    if index is not None:
        load_checked_weights(model, index, config.model, str(out_dir))
        state_tensors = load_tensors(index, "state")
        restore_state(run.optimizer, run.shuffle, state_tensors, index["state"]["info"])
        run.metrics = list(index.get("metrics", []))
        run.start_epoch = int(index["epoch"])
        where = portable_path(out_dir)
        log(f"resuming {model.describe()} from epoch {run.start_epoch} in {where}")
        return run
    if config.init_from:
        _load_initial_weights(model, config)
    log(
        f"training {model.describe()} ({run.objective.describe()}) on {len(data[0])} "
        f"{config.model.dataset} images, {config.epochs} epochs -> {portable_path(out_dir)}"
        + (f", starting from {config.init_from}" if config.init_from else "")
    )
    return run


def _objective(config: TrainConfig, total_steps: int) -> Objective:
    """The objective of the run: the v2 recipe for l_inf-distance nets, else as ``config``
    asks (:func:`rbfi.training.objectives.make_objective`)."""
    if config.model.arch == LINF:
        return LinfDistObjective(config, total_steps)
    return make_objective(config, total_steps)


def _load_data(config: TrainConfig, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(x_train, y_train, x_test, y_test) on ``device``, cut to the configured limits."""
    dataset = config.model.dataset
    if dataset is None:
        raise ValueError(
            "the model reads plain vectors, not a dataset: there is nothing to train on"
        )
    x_train, y_train = load_dataset(dataset, "train", config.data_dir, config.pixel_scale)
    x_test, y_test = load_dataset(dataset, "test", config.data_dir, config.pixel_scale)
    if config.train_limit:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    if config.test_limit:
        x_test, y_test = x_test[: config.test_limit], y_test[: config.test_limit]
    return x_train.to(device), y_train.to(device), x_test.to(device), y_test.to(device)


def _train_epoch(run: TrainingRun, epoch: int, progress: bool) -> dict:
    """One pass over the shuffled training set, one optimiser step per batch; returns the
    epoch's record so far (epoch, train loss and accuracy, lr of its last step, seconds)."""
    config, model, optimizer = run.config, run.model, run.optimizer
    x_train, y_train = run.data[0], run.data[1]
    n = len(x_train)
    model.train()
    t0 = time.perf_counter()
    order = torch.randperm(n, generator=run.shuffle).to(x_train.device)
    total_loss, correct, seen, lr = 0.0, 0, 0, config.lr
    with Progress(
        n, f"epoch {epoch}/{config.epochs}", unit="img", enabled=progress, final_line=False
    ) as bar:
        for step, start in enumerate(range(0, n, config.batch_size)):
            global_step = (epoch - 1) * run.steps_per_epoch + step
            idx = order[start : start + config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            loss, scores = run.objective(model, xb, yb, global_step)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch}, batch {step};"
                    f" the last good checkpoint (epoch {epoch - 1}) is kept in {run.out_dir}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            lr = set_learning_rate(optimizer, config, global_step, run.total_steps)
            optimizer.step()  # the projection hook clamps u and w afterwards
            total_loss += loss.item() * len(idx)
            correct += (scores.argmax(dim=1) == yb).sum().item()
            seen += len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
    return {
        "epoch": epoch,
        "train_loss": total_loss / seen,
        "train_accuracy": correct / seen,
        "lr": lr,
        "train_seconds": round(time.perf_counter() - t0, 3),
    }


def _evaluate_epoch(run: TrainingRun, epoch: int) -> dict:
    """Test loss and accuracy, plus the objective's own metrics (e.g. certified accuracy);
    TrainingDiverged if the test loss is not finite."""
    t0 = time.perf_counter()
    x_test, y_test = run.data[2], run.data[3]
    test = evaluate(run.model, x_test, y_test, run.config.loss)
    extra = run.objective.epoch_metrics(run.model, x_test, y_test, epoch * run.steps_per_epoch)
    if not math.isfinite(test["loss"]):
        raise TrainingDiverged(
            f"test loss became {test['loss']} after epoch {epoch}; the last good checkpoint "
            f"(epoch {epoch - 1}) is kept in {run.out_dir}"
        )
    return {
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        **extra,
        "eval_seconds": round(time.perf_counter() - t0, 3),
    }


def _save_checkpoint(run: TrainingRun, epoch: int) -> None:
    """Weights, settings, metrics and the training state (optimiser, RNGs), atomically."""
    tensors, info = capture_state(run.optimizer, run.shuffle)
    save_model(
        run.out_dir,
        run.model,
        epoch=epoch,
        training=run.config.to_json(),
        metrics=run.metrics,
        state=tensors,
        state_info=info,
    )


def _append_metrics(out_dir: Path, record: dict) -> None:
    append_text(out_dir / METRICS_NAME, json.dumps(record) + "\n")


def _describe_epoch(record: dict) -> str:
    certified = "".join(
        f" cert@{k.rsplit('_', 1)[1]} {v:.4f}"
        for k, v in record.items()
        if k.startswith("test_certified_")
    )
    return (
        f"epoch {record['epoch']}: train loss {record['train_loss']:.4f} "
        f"acc {record['train_accuracy']:.4f}"
        f" | test acc {record['test_accuracy']:.4f}{certified} | {record['train_seconds']:.1f} s"
    )


def _load_initial_weights(model: torch.nn.Module, config: TrainConfig) -> None:
    """Copy the weights of the run ``config.init_from`` (checked like any load) into ``model``;
    its architecture must be the one being trained. "zoo:NAME" names a net of the model zoo."""
    from rbfi.models import zoo

    index = read_checkpoint_index(zoo.checkpoint_path(config.init_from))
    source = model_config_of(index)
    if replace(source, u_init=config.model.u_init) != config.model:  # how u started: moot
        held, wanted = source.describe(), config.model.describe()
        if source.dataset != config.model.dataset:
            held, wanted = f"{held} of {source.dataset}", f"{wanted} of {config.model.dataset}"
        raise CheckpointError(
            f"--init-from {config.init_from} holds {held}, not the {wanted} being trained"
        )
    load_checked_weights(model, index, config.model, str(config.init_from))


def set_learning_rate(
    optimizer: torch.optim.Optimizer, config: TrainConfig, step: int, total_steps: int
) -> float:
    """Set the learning rate of global step ``step`` (``config.lr_schedule``) into every param
    group; returns it. A pure function of the step, so a resumed run is bit-identical."""
    lr = learning_rate(
        step,
        total_steps,
        config.lr,
        config.lr_schedule,
        warmup=config.lr_warmup,
        decay_at=config.lr_decay_at,
        decay_factor=config.lr_decay_factor,
    )
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_ratio", 1.0)
    return lr


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdaDelta (the paper's) or Adam, with the projection of u and w after every step.

    l_inf-distance nets: the logit scale is a group of its own whose learning rate is
    ``linf_scale_lr`` times the others' (``lr_ratio``, kept by the schedule)."""
    if config.optimizer == "adam":
        extra = {}
        if config.adam_beta2 is not None:
            extra["betas"] = (0.9, config.adam_beta2)
        if config.adam_eps is not None:
            extra["eps"] = config.adam_eps
        optimizer = torch.optim.Adam(param_groups(config, model), lr=config.lr, **extra)
    else:
        optimizer = torch.optim.Adadelta(param_groups(config, model), lr=config.lr, rho=config.rho)
    attach_projection(optimizer, model)
    return optimizer


def param_groups(config: TrainConfig, model: torch.nn.Module) -> list[dict]:
    """One group of every parameter, except for l_inf-distance nets: the logit scale
    (``*.scale`` of :class:`~rbfi.nn.DistanceLogits`) in a second group with
    ``lr_ratio = linf_scale_lr``."""
    scales = [
        m.scale for m in model.modules() if isinstance(m, DistanceLogits) and m.scale.requires_grad
    ]
    ids = {id(t) for t in scales}
    rest = [p for p in model.parameters() if id(p) not in ids]
    if not scales:
        return [{"params": rest}]
    return [{"params": rest}, {"params": scales, "lr_ratio": config.linf_scale_lr}]


def _rewrite_metrics(out_dir: Path, metrics: list[dict]) -> None:
    """Make ``metrics.jsonl`` hold exactly the checkpoint's epochs (drops lines of lost epochs)."""
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    atomic_write_bytes(out_dir / METRICS_NAME, text.encode())
