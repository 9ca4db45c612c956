"""Resumable training state: optimiser and RNG states as tensors (for safetensors) plus plain
JSON, captured after every epoch and restored on ``--resume``.

Captured: the optimiser's per-parameter tensors and scalars, its param groups; the RNG states of
torch (global), of the shuffling generator, of NumPy and of Python. Restoring them all makes a
resumed run, on CPU, end with exactly the weights of an uninterrupted one.

Training runs inside :func:`seeded_rng_scope`: the global generators are seeded for the run and
the caller's states are put back afterwards, so ``train()`` leaves no trace on them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import torch
from torch import Tensor

from rbfi.io.checkpoint import CheckpointError

STATE_RNG_KEYS = ("rng.torch", "rng.shuffle", "rng.numpy.key", "rng.python.internal")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def seeded_rng_scope(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Inside the block, Python's, NumPy's and torch's CPU generators (and the generator of a
    CUDA ``device``) are seeded with ``seed``; after it (also on an exception) they hold again
    the states they had before it. Other CUDA devices' generators are not touched."""
    device = torch.device(device)
    python_state, numpy_state = random.getstate(), np.random.get_state()
    with ExitStack() as stack:
        cuda = []
        if device.type == "cuda":
            cuda = [torch.cuda.current_device() if device.index is None else device.index]
        stack.enter_context(torch.random.fork_rng(devices=cuda))
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def capture_state(
    optimizer: torch.optim.Optimizer, shuffle: torch.Generator
) -> tuple[dict[str, Tensor], dict]:
    """(tensors, info): everything needed to continue training exactly where it stopped."""
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


def restore_state(
    optimizer: torch.optim.Optimizer, shuffle: torch.Generator, tensors: dict, info: dict
) -> None:
    """Put back what :func:`capture_state` captured; CheckpointError if it does not fit."""
    try:
        _restore(optimizer, shuffle, tensors, info)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"the saved training state does not fit this run: {first}") from None


def _restore(optimizer, shuffle, tensors: dict, info: dict) -> None:
    missing = [key for key in STATE_RNG_KEYS if key not in tensors]
    if missing:
        raise KeyError(f"missing {', '.join(missing)}")
    state: dict[int, dict] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            index = int(idx)
            if index >= len(params):
                raise ValueError(f"optimiser state for parameter {index}, model has {len(params)}")
            if value.dim() and value.shape != params[index].shape:  # not the scalar "step"
                raise ValueError(
                    f"optimiser state {key} has shape {tuple(value.shape)}, parameter "
                    f"{tuple(params[index].shape)}"
                )
            if value.is_floating_point() and not torch.isfinite(value).all():
                raise ValueError(f"optimiser state {key} holds NaN or infinite values")
            state.setdefault(index, {})[name] = value
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
