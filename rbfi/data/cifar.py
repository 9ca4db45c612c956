"""CIFAR-10 (Krizhevsky 2009) from its python version: the folder ``cifar-10-batches-py``
(extracted from ``cifar-10-python.tar.gz``) with ``data_batch_1`` .. ``data_batch_5`` (training,
10,000 images each), ``test_batch`` (10,000) and ``batches.meta``.

Each batch is a pickled dict: ``data``, a uint8 array (n, 3072) whose row is one 32x32 colour
image, channel-major (1,024 red, then green, then blue values, each row-major), and ``labels``,
n ints in 0..9. ``batches.meta`` holds ``label_names``.

The batches are pickles, but they are never unpickled with the general unpickler: a restricted
:class:`pickle.Unpickler` resolves only the globals that rebuild a numpy array (``ndarray``,
``dtype``, their reconstructors, and a latin-1-only ``_codecs.encode`` that Python 3's protocol 2
writes for bytes); any other global (a function to call, a class to build) refuses the file with
a :class:`DataError` before anything of it runs.
"""

from __future__ import annotations

import os
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

from rbfi.data.idx import DataError, check_labels, file_key

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
N_VALUES = 3 * 32 * 32
LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
HINT = (
    "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extract "
    "it (tar xzf cifar-10-python.tar.gz) and pass the folder cifar-10-batches-py, or its parent, "
    "as --data-dir (or RBFI_CIFAR10_DIR)"
)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """What ``_codecs.encode(text, "latin1")`` does in a protocol-2 pickle of bytes, and
    nothing else."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({encoding!r}) is not allowed")
    return text.encode("latin1")


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(0))[0]
_FROMBUFFER = np.zeros(1).__reduce_ex__(5)[0]
ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy < 2 (and the real files)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,  # protocol 5
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds only plain Python values and numpy arrays."""

    def find_class(self, module: str, name: str):
        found = ALLOWED_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which is not allowed")
        return found

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("it holds persistent references, which are not allowed")


def find_folder(root: str | os.PathLike | None) -> Path:
    """The ``cifar-10-batches-py`` folder: ``root`` itself or its child of that name."""
    if root is None:
        raise DataError(f"CIFAR-10 not found: {HINT}")
    root = Path(root).expanduser().resolve()
    for folder in (root / FOLDER, root):
        if (folder / TRAIN_FILES[0]).is_file() or (folder / TEST_FILES[0]).is_file():
            return folder
    if not root.is_dir():
        raise DataError(f"CIFAR-10: data directory {root} not found: {HINT}")
    if (root / "cifar-10-python.tar.gz").is_file():
        raise DataError(
            f"CIFAR-10 in {root} is still packed: run `tar xzf cifar-10-python.tar.gz` there, "
            f"then pass {root / FOLDER} or {root} as --data-dir"
        )
    raise DataError(f"CIFAR-10 files (test_batch, data_batch_1..5) not found in {root}: {HINT}")


def cifar_levels(split: str, root: str | os.PathLike | None) -> tuple[np.ndarray, np.ndarray]:
    """(colour levels uint8 (n, 3072), channel-major, labels int64) of CIFAR-10's ``split``
    ("train": the five data batches in order, "test": the test batch)."""
    folder = find_folder(root)
    if (folder / META_FILE).is_file():
        check_meta(str(folder / META_FILE))
    parts = []
    for name in TRAIN_FILES if split == "train" else TEST_FILES:
        path = folder / name
        if not path.is_file():
            raise DataError(f"CIFAR-10 file {name} not found in {folder}: {HINT}")
        parts.append(read_batch(str(path)))
    levels = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return levels, labels


def read_pickle(path: str) -> dict:
    """The dict pickled in ``path`` (keys as text), through :class:`ArrayUnpickler`."""
    try:
        with open(path, "rb") as f:
            value = ArrayUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError) as exc:
        raise DataError(
            f"{path} is not a CIFAR-10 python batch ({exc or 'truncated'}): {HINT}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any other failure of a corrupt pickle
        raise DataError(f"{path} is corrupt ({type(exc).__name__}: {exc}): {HINT}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} holds a {type(value).__name__}, not a CIFAR-10 batch dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in value.items()}


def read_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(levels uint8 (n, 3072), labels int64 (n,)) of one batch file, checked (cached while the
    file is unchanged)."""
    return _read_batch(*file_key(path))


@lru_cache(maxsize=6)
def _read_batch(path: str, _mtime: int, _size: int) -> tuple[np.ndarray, np.ndarray]:
    batch = read_pickle(path)
    missing = [key for key in ("data", "labels") if key not in batch]
    if missing:
        raise DataError(f"{path}: no {' or '.join(missing)} entry: not a CIFAR-10 batch")
    data, labels = batch["data"], batch["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        what = f"{data.dtype} array" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataError(f"{path}: data is a {what}, expected a uint8 array (n, {N_VALUES})")
    if data.ndim != 2 or data.shape[1] != N_VALUES:
        raise DataError(f"{path}: data has shape {data.shape}, expected (n, {N_VALUES})")
    try:
        y = np.asarray(labels)
    except (TypeError, ValueError):
        y = np.zeros(0, object)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: labels are not a list of integers")
    if len(y) != len(data):
        raise DataError(f"{path}: {len(data)} images but {len(y)} labels")
    y = y.astype(np.int64)
    check_labels(y, len(LABEL_NAMES), path)
    levels = np.array(data, dtype=np.uint8, order="C")  # a copy of our own
    levels.flags.writeable = False
    y.flags.writeable = False
    return levels, y


def check_meta(path: str) -> None:
    """DataError unless ``batches.meta`` names CIFAR-10's ten classes."""
    meta = read_pickle(path)
    names = meta.get("label_names")
    try:
        names = tuple(n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names)
    except TypeError:
        names = None
    if names != LABEL_NAMES:
        raise DataError(
            f"{path}: label_names {names!r} are not CIFAR-10's ({', '.join(LABEL_NAMES)}); "
            f"is this another dataset?"
        )
