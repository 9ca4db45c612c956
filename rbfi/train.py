"""Training on permutation-invariant MNIST (paper, Sec. 6): AdaDelta, batch 100, square-error
loss for RBFI and sigmoid nets, cross-entropy for ReLU nets; parameters of RBFI layers are
projected onto their bounds after every optimiser step (Sec. 4.2).

Every epoch ends with an evaluation on the test set, a checkpoint (weights + optimiser and RNG
state) and one JSON line appended to ``metrics.jsonl``. A resumed run continues from the last
completed epoch and, on CPU, ends with exactly the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from rbfi import checkpoint
from rbfi.data import load_mnist
from rbfi.losses import LOSSES, get_loss
from rbfi.models import ARCHITECTURES, LOSS_OF_ARCH, Classifier, build_model, describe, parse_layers
from rbfi.nn import attach_projection

DEFAULT_LR = {"rbfi": 5.0, "rbf": 5.0, "relu": 1.0, "sigmoid": 1.0}  # the author's code
METRICS_NAME = "metrics.jsonl"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class RunExists(ValueError):
    """The output directory already holds a checkpoint and --resume was not asked for."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in the checkpoint)."""

    arch: str = "rbfi"
    layers: tuple[int, ...] = (512, 512, 512, 10)
    geometry: str | None = None
    epochs: int = 10
    batch_size: int = 100
    lr: float | None = None  # None: DEFAULT_LR of the architecture
    rho: float = 0.9  # AdaDelta's decay (PyTorch default)
    loss: str | None = None  # None: the architecture's loss (LOSS_OF_ARCH)
    seed: int = 0
    u_bounds: tuple[float, float] = (0.01, 3.0)
    w_bounds: tuple[float, float] = (0.0, 1.0)
    pseudogradient: bool = True
    train_limit: int | None = None  # use only the first N training images
    test_limit: int | None = None
    data_dir: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(
                f"unknown model {self.arch!r}; choose one of {', '.join(ARCHITECTURES)}"
            )
        self.layers = parse_layers(self.layers)
        self.u_bounds = tuple(float(b) for b in self.u_bounds)
        self.w_bounds = tuple(float(b) for b in self.w_bounds)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.arch]
        if self.loss is None:
            self.loss = LOSS_OF_ARCH[self.arch]
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("train_limit", "test_limit"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        if not (0.0 <= self.rho < 1.0):
            raise ValueError(f"rho must be in [0, 1), got {self.rho}")
        if self.layers[-1] != 10:
            raise ValueError(
                f"the last layer must have 10 units (MNIST classes), got {self.layers[-1]}"
            )

    def to_json(self) -> dict:
        out = asdict(self)
        out["layers"] = list(self.layers)
        out["u_bounds"] = list(self.u_bounds)
        out["w_bounds"] = list(self.w_bounds)
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_model(config: TrainConfig) -> Classifier:
    kwargs = {}
    if config.arch in ("rbfi", "rbf"):
        kwargs = dict(
            geometry=config.geometry,
            u_bounds=config.u_bounds,
            w_bounds=config.w_bounds,
            pseudogradient=config.pseudogradient,
        )
    return build_model(config.arch, config.layers, **kwargs)


@torch.no_grad()
def evaluate(
    model: nn.Module, x: Tensor, y: Tensor, loss_name: str = "square", batch_size: int = 1000
) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on (x, y)."""
    was_training = model.training
    model.eval()
    loss_fn = get_loss(loss_name)
    total_loss, correct = 0.0, 0
    for start in range(0, len(x), batch_size):
        scores = model(x[start : start + batch_size])
        labels = y[start : start + batch_size]
        total_loss += loss_fn(scores, labels, reduction="sum").item()
        correct += (scores.argmax(dim=1) == labels).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return {"loss": total_loss / n, "accuracy": correct / n}


# --- resumable state: optimiser + RNGs as tensors (safetensors) and plain JSON -------------


def _capture_state(optimizer: torch.optim.Optimizer, shuffle: torch.Generator):
    tensors: dict[str, Tensor] = {
        "rng.torch": torch.get_rng_state(),
        "rng.shuffle": shuffle.get_state(),
    }
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for idx, param_state in opt["state"].items():
        for name, value in param_state.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    np_state = np.random.get_state()
    tensors["rng.numpy.key"] = torch.from_numpy(np_state[1].astype(np.int64))
    py_version, py_internal, py_gauss = random.getstate()
    tensors["rng.python.internal"] = torch.tensor(py_internal, dtype=torch.int64)
    info = {
        "param_groups": opt["param_groups"],
        "optim_scalars": scalars,
        "rng_numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "rng_python": [py_version, py_gauss],
    }
    return tensors, info


def _restore_state(
    optimizer: torch.optim.Optimizer, shuffle: torch.Generator, tensors: dict, info: dict
) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in info.get("optim_scalars", {}).items():
        state.setdefault(int(idx), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": info["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    shuffle.set_state(tensors["rng.shuffle"])
    name, pos, has_gauss, cached = info["rng_numpy"]
    key = tensors["rng.numpy.key"].numpy().astype(np.uint32)
    np.random.set_state((name, key, pos, has_gauss, cached))
    version, gauss = info["rng_python"]
    internal = tuple(int(v) for v in tensors["rng.python.internal"].tolist())
    random.setstate((version, internal, gauss))


# --- the loop -------------------------------------------------------------------------------


def train(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train as ``config`` says, checkpointing into ``out_dir`` after every epoch.

    ``resume=True`` continues from the checkpoint in ``out_dir`` (its saved settings win, except
    ``epochs``, which may be raised), or starts a new run there if it holds none. Returns the
    last epoch's metrics.
    """
    out_dir = Path(out_dir)
    has_checkpoint = (out_dir / checkpoint.INDEX_NAME).exists()
    index = None
    if resume and not has_checkpoint:
        log(f"no checkpoint in {out_dir} to resume: starting a new run")
    elif resume:
        index = checkpoint.read_index(out_dir)
        saved = TrainConfig.from_json(index["training"])
        saved.epochs = max(config.epochs, saved.epochs)
        config = saved
    elif has_checkpoint:
        raise RunExists(
            f"{out_dir} already holds a checkpoint; use --resume to continue it "
            f"or choose another --out"
        )

    device = torch.device(config.device)
    seed_everything(config.seed)
    x_train, y_train = load_mnist("train", config.data_dir)
    x_test, y_test = load_mnist("test", config.data_dir)
    if config.train_limit:
        x_train, y_train = x_train[: config.train_limit], y_train[: config.train_limit]
    if config.test_limit:
        x_test, y_test = x_test[: config.test_limit], y_test[: config.test_limit]
    x_train, y_train = x_train.to(device), y_train.to(device)
    x_test, y_test = x_test.to(device), y_test.to(device)

    model = make_model(config).to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=config.lr, rho=config.rho)
    attach_projection(optimizer, model)
    shuffle = torch.Generator().manual_seed(config.seed)
    loss_fn = get_loss(config.loss)
    metrics: list[dict] = []
    start_epoch = 0

    if index is not None:
        model.load_state_dict(checkpoint.load_tensors(index, "weights"))
        _restore_state(
            optimizer, shuffle, checkpoint.load_tensors(index, "state"), index["state"]["info"]
        )
        metrics = list(index.get("metrics", []))
        start_epoch = int(index["epoch"])
        log(f"resuming {describe(model)} from epoch {start_epoch} in {out_dir}")
    else:
        log(
            f"training {describe(model)} on {len(x_train)} images, "
            f"{config.epochs} epochs -> {out_dir}"
        )

    def save(epoch: int) -> None:
        tensors, info = _capture_state(optimizer, shuffle)
        checkpoint.save(
            out_dir,
            model,
            epoch=epoch,
            training=config.to_json(),
            metrics=metrics,
            state=tensors,
            state_info=info,
        )

    if index is None:
        save(0)
    _rewrite_metrics(out_dir, metrics)

    n = len(x_train)
    for epoch in range(start_epoch + 1, config.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        total_loss, correct, seen = 0.0, 0, 0
        batches = range(0, n, config.batch_size)
        bar = tqdm(
            batches,
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not progress,
            leave=False,
            mininterval=0.2 if sys.stderr.isatty() else 15.0,  # don't flood log files
        )
        for start in bar:
            idx = order[start : start + config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            scores = model(xb)
            loss = loss_fn(scores, yb)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch}, "
                    f"batch {start // config.batch_size};"
                    f" the last good checkpoint (epoch {epoch - 1}) is kept in {out_dir}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()  # the projection hook clamps u and w afterwards
            total_loss += loss.item() * len(idx)
            correct += (scores.argmax(dim=1) == yb).sum().item()
            seen += len(idx)
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        bar.close()
        train_seconds = time.perf_counter() - t0
        test = evaluate(model, x_test, y_test, config.loss)
        if not math.isfinite(test["loss"]):
            raise TrainingDiverged(
                f"test loss became {test['loss']} after epoch {epoch}; the last good checkpoint "
                f"(epoch {epoch - 1}) is kept in {out_dir}"
            )
        record = {
            "epoch": epoch,
            "train_loss": total_loss / seen,
            "train_accuracy": correct / seen,
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "train_seconds": round(train_seconds, 3),
            "eval_seconds": round(time.perf_counter() - t0 - train_seconds, 3),
        }
        metrics.append(record)
        save(epoch)
        with open(out_dir / METRICS_NAME, "a") as f:
            f.write(json.dumps(record) + "\n")
        log(
            f"epoch {epoch}: train loss {record['train_loss']:.4f} "
            f"acc {record['train_accuracy']:.4f}"
            f" | test acc {record['test_accuracy']:.4f} | {train_seconds:.1f} s"
        )
    return metrics[-1] if metrics else {}


def _rewrite_metrics(out_dir: Path, metrics: list[dict]) -> None:
    """Make ``metrics.jsonl`` hold exactly the checkpoint's epochs (drops lines of lost epochs)."""
    text = "".join(json.dumps(m) + "\n" for m in metrics)
    checkpoint.atomic_write_bytes(out_dir / METRICS_NAME, text.encode())
