"""What the loaders share: :class:`DataError`, the IDX file format (MNIST, Fashion-MNIST) and
the checks every split passes (labels in range, one label per image).

IDX (LeCun et al.): magic ``0x00 0x00 0x08 ndim`` (0x08: unsigned bytes), then ``ndim``
big-endian uint32 sizes, then the bytes in row-major order; optionally gzip-compressed.
"""

from __future__ import annotations

import gzip
import os
import struct
from functools import lru_cache
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A missing or corrupt data source; the message says how to fix it."""


def file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """(path, mtime in ns, size): the key the readers cache a file's contents under, so a file
    replaced on disk is read again."""
    stat = os.stat(path)
    return str(path), stat.st_mtime_ns, stat.st_size


def find_file(root: str | os.PathLike, name: str, what: str, hint: str) -> str:
    """``root/name`` or ``root/name.gz``; DataError naming the file, the folder and ``hint``."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(root, candidate)
        if os.path.isfile(path):
            return path
    raise DataError(f"{what} file {name}[.gz] not found in {root}: {hint}")


def read_idx(path: str, expected_dims: int) -> np.ndarray:
    """The uint8 array of an IDX file (read-only; cached while the file is unchanged)."""
    return _read_idx(*file_key(path), expected_dims)


@lru_cache(maxsize=8)
def _read_idx(path: str, _mtime: int, _size: int, expected_dims: int) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or data[0:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path} is not an IDX ubyte file (bad magic number)")
    ndim = data[3]
    if ndim != expected_dims:
        raise DataError(f"{path} has {ndim} dimensions, expected {expected_dims}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated (header)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(shape))
    if len(data) != header + count:
        raise DataError(
            f"{path} is corrupt: header says {count} bytes of data, file has {len(data) - header}"
        )
    array = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    array.flags.writeable = False
    return array


def load_idx_split(
    root: str | os.PathLike,
    names: tuple[str, str],
    image_shape: tuple[int, int],
    n_classes: int,
    what: str,
    hint: str,
) -> tuple[np.ndarray, np.ndarray]:
    """(grey levels uint8 (n, H*W), labels int64 (n,)) from the IDX image and label files
    ``names`` in ``root``; ``what`` (e.g. "MNIST test") names the data in errors."""
    root = str(Path(root).expanduser().resolve())
    if not os.path.isdir(root):
        raise DataError(f"{what}: data directory {root} not found: {hint}")
    image_name, label_name = names
    images = read_idx(find_file(root, image_name, what, hint), expected_dims=3)
    labels = read_idx(find_file(root, label_name, what, hint), expected_dims=1)
    if images.shape[1:] != image_shape:
        shown = "x".join(map(str, images.shape[1:]))
        raise DataError(
            f"{image_name} in {root}: images are {shown}, expected "
            f"{'x'.join(map(str, image_shape))}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{what} in {root}: {images.shape[0]} images but {labels.shape[0]} labels")
    y = labels.astype(np.int64)
    check_labels(y, n_classes, f"{what} in {root}")
    return images.reshape(images.shape[0], -1), y


def check_labels(y: np.ndarray, n_classes: int, where: str) -> None:
    """DataError unless every label is in 0..n_classes-1."""
    if y.size and (y.min() < 0 or y.max() >= n_classes):
        bad = y[(y < 0) | (y >= n_classes)]
        raise DataError(
            f"{where}: labels outside 0..{n_classes - 1} ({bad.size} of them, e.g. {int(bad[0])})"
        )
