"""Checkpoint files: safetensors tensors plus one JSON index, written atomically, never
unpickled, and checked against an explicit schema when read.

A checkpoint is a directory::

    checkpoint.json                  format, model config, training settings, versions, metrics,
                                     names and SHA-256 of the tensor files below
    weights-e0003.safetensors        the model's state_dict (parameters, masks, bounds)
    state-e0003.safetensors          optional: optimiser state and RNG states, for --resume

Tensor files get a new name at every save and are written (temp file + rename) *before*
``checkpoint.json`` is atomically replaced; files no longer referenced are removed last. A
crash at any point therefore leaves the previous checkpoint loadable. A save that fails (disk
full, permission lost, ...) raises :class:`CheckpointWriteError` (an ``OSError`` with a one-line
message), removes what it had written, and leaves the previous checkpoint byte for byte.

This module knows the file format only. What the ``model`` and ``training`` entries mean, and
whether the tensors fit them, is checked by :mod:`rbfi.models.load` and :mod:`rbfi.training`.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from rbfi.io.atomic import WriteError, atomic_save_tensors, atomic_write_json, sha256_file
from rbfi.io.provenance import versions
from rbfi.io.schema import AnyValue, Const, Int, List, Map, Obj, SchemaError, Str

FORMAT = "rbfi-checkpoint"
FORMAT_VERSION = 1
INDEX_NAME = "checkpoint.json"
SHA256 = Str(pattern=r"[0-9a-f]{64}")

INDEX_SCHEMA = Obj(
    {
        "format": Const(FORMAT),
        "format_version": Const(FORMAT_VERSION),
        "model": Map(AnyValue()),  # a model config: checked by rbfi.models.load
        "epoch": Int(min=0),
        "weights": Obj({"file": Str(pattern=r"weights-e\d{4,}\.safetensors"), "sha256": SHA256}),
    },
    {
        "training": Map(AnyValue()),  # a training config: checked by rbfi.training on resume
        "metrics": List(Obj({"epoch": Int(min=1)}, extra=True)),
        "versions": Map(Str()),
        "state": Obj(
            {
                "file": Str(pattern=r"state-e\d{4,}\.safetensors"),
                "sha256": SHA256,
                "info": Map(AnyValue()),
            }
        ),
    },
)


class CheckpointError(ValueError):
    """A missing, corrupt, contradictory or incompatible checkpoint."""


class CheckpointWriteError(WriteError):
    """Saving a checkpoint failed part-way; the checkpoint saved before it is unchanged."""

    def __init__(self, directory: Path, epoch: int, cause: BaseException) -> None:
        text = str(cause).strip()
        reason = text.splitlines()[0] if text else type(cause).__name__
        OSError.__init__(
            self,
            f"saving the checkpoint of epoch {epoch} in {directory} failed ({reason}); "
            f"the checkpoint that was there is unchanged",
        )
        self.path = str(directory)
        self.cause_errno = getattr(cause, "errno", None)


def save(
    directory: str | os.PathLike,
    *,
    model_config: dict,
    weights: dict[str, Tensor],
    epoch: int,
    training: dict | None = None,
    metrics: list[dict] | None = None,
    state: dict[str, Tensor] | None = None,
    state_info: dict | None = None,
) -> Path:
    """Write a checkpoint into ``directory`` (created if needed); see the module docstring.
    :class:`CheckpointWriteError` if a file cannot be written."""
    directory = Path(directory)
    tag = f"e{epoch:04d}"
    index: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model_config,
        "epoch": epoch,
        "training": training or {},
        "metrics": metrics or [],
        "versions": versions(),
        "weights": {"file": f"weights-{tag}.safetensors"},
    }
    tensor_files = {"weights": weights}
    if state is not None:
        index["state"] = {"file": f"state-{tag}.safetensors", "info": state_info or {}}
        tensor_files["state"] = state
    previous = _referenced_files(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for key, tensors in tensor_files.items():
            index[key]["sha256"] = atomic_save_tensors(directory / index[key]["file"], tensors)
        INDEX_SCHEMA.check(json.loads(json.dumps(index)), INDEX_NAME)  # never write what we refuse
        atomic_write_json(directory / INDEX_NAME, index)
    except OSError as exc:
        _remove(directory, {index[key]["file"] for key in tensor_files} - previous)
        raise CheckpointWriteError(directory, epoch, exc) from exc
    stale = {p.name for p in directory.glob("weights-*.safetensors")}
    stale |= {p.name for p in directory.glob("state-*.safetensors")}
    _remove(directory, stale - {index[key]["file"] for key in tensor_files})
    return directory


def _referenced_files(directory: Path) -> set[str]:
    """Names of the tensor files the checkpoint now in ``directory`` refers to (maybe none)."""
    try:
        index = json.loads((directory / INDEX_NAME).read_text())
        return {index[key]["file"] for key in ("weights", "state") if key in index}
    except (OSError, ValueError, TypeError, KeyError):
        return set()


def _remove(directory: Path, names: set[str]) -> None:
    """Delete these files of ``directory`` where possible (what is left is never referenced)."""
    for name in names:
        with contextlib.suppress(OSError):
            (directory / name).unlink(missing_ok=True)


def index_path(path: str | os.PathLike) -> Path:
    """Accept the checkpoint directory or its ``checkpoint.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file() or path.name != INDEX_NAME:
        raise CheckpointError(
            f"no checkpoint at {path} (expected a run directory holding {INDEX_NAME})"
        )
    return path


def _refuse_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def read_index(path: str | os.PathLike) -> dict:
    """The parsed ``checkpoint.json``, checked against :data:`INDEX_SCHEMA`.

    The returned dict carries the directory under ``"_dir"``.
    """
    path = index_path(path)
    try:
        index = json.loads(path.read_text(), parse_constant=_refuse_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"corrupt checkpoint index {path}: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rbfi checkpoint")
    if index.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {index.get('format_version')!r} is not supported "
            f"(this rbfi reads {FORMAT_VERSION})"
        )
    try:
        INDEX_SCHEMA.check(index)
    except SchemaError as exc:
        raise CheckpointError(f"corrupt checkpoint index {path}: {exc}") from None
    index["_dir"] = str(path.parent)
    return index


def load_tensors(index: dict, which: str = "weights") -> dict[str, Tensor]:
    """Load and verify (SHA-256) the tensor file ``which`` ("weights" or "state")."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    entry = index.get(which)
    if not entry:
        raise CheckpointError(f"checkpoint {index['_dir']} holds no {which} (cannot resume)")
    path = Path(index["_dir"]) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    if sha256_file(path) != entry["sha256"]:
        raise CheckpointError(f"checkpoint file corrupt (checksum mismatch): {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file unreadable: {path}: {exc}") from None


def check_run_directory(path: str | os.PathLike) -> Path:
    """``path`` as a run directory to write into: refuses an existing non-directory, or a
    path below one, before anything is written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{path} exists and is not a directory")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise CheckpointError(f"{parent} is not a directory (cannot create {path})")
            if not os.access(parent, os.W_OK | os.X_OK) and not path.exists():
                raise CheckpointError(f"cannot create {path}: {parent} is not writable")
            break
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise CheckpointError(f"{path} is not writable")
    return path
