"""Checkpoints: safetensors tensors plus one JSON file, written atomically, never unpickled.

A checkpoint is a directory::

    checkpoint.json                  format, model config, training settings, versions, metrics,
                                     names and SHA-256 of the tensor files below
    weights-e0003.safetensors        the model's state_dict (parameters, masks, bounds)
    state-e0003.safetensors          optional: optimiser state and RNG states, for --resume

Tensor files get a new name at every save and are written (temp file + rename) *before*
``checkpoint.json`` is atomically replaced; files no longer referenced are removed last. A
crash at any point therefore leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from rbfi.models import Classifier, model_from_config

FORMAT = "rbfi-checkpoint"
FORMAT_VERSION = 1
INDEX_NAME = "checkpoint.json"


class CheckpointError(ValueError):
    """A missing, corrupt or incompatible checkpoint."""


def versions() -> dict[str, str]:
    import rbfi

    return {
        "rbfi": rbfi.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def _readable_by_all(path: str) -> None:
    """mkstemp creates files 0600; give them the permissions a plain open() would."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory + rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _readable_by_all(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def _atomic_save_tensors(path: Path, tensors: dict[str, Tensor]) -> str:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp)
        digest = _sha256(Path(tmp))
        _readable_by_all(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return digest


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(
    directory: str | os.PathLike,
    model: Classifier,
    *,
    epoch: int,
    training: dict | None = None,
    metrics: list[dict] | None = None,
    state: dict[str, Tensor] | None = None,
    state_info: dict | None = None,
) -> Path:
    """Save ``model`` (and optionally resumable training ``state``) into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"e{epoch:04d}"
    index: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.config,
        "epoch": epoch,
        "training": training or {},
        "metrics": metrics or [],
        "versions": versions(),
    }
    weights_name = f"weights-{tag}.safetensors"
    index["weights"] = {
        "file": weights_name,
        "sha256": _atomic_save_tensors(directory / weights_name, model.state_dict()),
    }
    if state is not None:
        state_name = f"state-{tag}.safetensors"
        index["state"] = {
            "file": state_name,
            "sha256": _atomic_save_tensors(directory / state_name, state),
            "info": state_info or {},
        }
    atomic_write_json(directory / INDEX_NAME, index)
    keep = {weights_name, index.get("state", {}).get("file")}
    for stale in list(directory.glob("weights-*.safetensors")) + list(
        directory.glob("state-*.safetensors")
    ):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    return directory


def index_path(path: str | os.PathLike) -> Path:
    """Accept the checkpoint directory or its ``checkpoint.json``."""
    path = Path(path)
    if path.is_dir():
        path = path / INDEX_NAME
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path} (expected a run directory holding {INDEX_NAME})"
        )
    return path


def read_index(path: str | os.PathLike) -> dict:
    """The parsed and validated ``checkpoint.json`` of a checkpoint."""
    path = index_path(path)
    try:
        index = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"corrupt checkpoint index {path}: {exc}") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an rbfi checkpoint")
    if index.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {index.get('format_version')} is not supported "
            f"(this rbfi reads {FORMAT_VERSION})"
        )
    for key in ("model", "weights", "epoch"):
        if key not in index:
            raise CheckpointError(f"corrupt checkpoint index {path}: missing {key!r}")
    index["_dir"] = str(path.parent)
    return index


def load_tensors(index: dict, which: str = "weights") -> dict[str, Tensor]:
    """Load and verify (SHA-256) the tensor file ``which`` ("weights" or "state")."""
    entry = index.get(which)
    if not entry:
        raise CheckpointError(f"checkpoint {index['_dir']} holds no {which} (cannot resume)")
    path = Path(index["_dir"]) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"checkpoint file missing: {path}")
    if _sha256(path) != entry.get("sha256"):
        raise CheckpointError(f"checkpoint file corrupt (checksum mismatch): {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file unreadable: {path}: {exc}") from None


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of the checkpoint at ``path``, load its weights, put it in eval mode."""
    index = read_index(path)
    try:
        model = model_from_config(index["model"])
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {index['_dir']}: bad model config: {exc}") from None
    try:
        model.load_state_dict(load_tensors(index, "weights"), strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"checkpoint {index['_dir']}: weights do not fit: {first}") from None
    return model.to(map_location).eval()
