"""Small datasets written in the real file formats, for testing the real loaders: Fashion-MNIST's
IDX files (:func:`tests.conftest.write_idx`) and CIFAR-10's python batches.

The CIFAR-10 batches were pickled by Python 2's cPickle (protocol 2): keys and raw bytes are
Python 2 ``str`` (opcodes SHORT_BINSTRING / BINSTRING), the array is rebuilt by
``numpy.core.multiarray._reconstruct`` and ``ndarray.__setstate__((1, shape, dtype, False,
raw))``, the dtype by ``numpy.dtype('u1', 0, 1)`` and ``__setstate__((3, '|', None, None, None,
-1, -1, 0))``. :func:`py2_pickle` writes those opcodes byte by byte, so the loader is tested on
what a real file holds, not on what this Python's pickler would write (that is tested too).
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_NAMES = (
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


def _py2_str(text: bytes) -> bytes:
    """A Python 2 str: SHORT_BINSTRING (U) below 256 bytes, else BINSTRING (T)."""
    if len(text) < 256:
        return b"U" + bytes([len(text)]) + text
    return b"T" + struct.pack("<i", len(text)) + text


def _py2_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])  # BININT1
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)  # BININT2
    return b"J" + struct.pack("<i", value)  # BININT


def _py2_uint8_array(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    shape = b"(" + b"".join(_py2_int(n) for n in array.shape) + b"t"  # MARK ... TUPLE
    dtype = (
        b"cnumpy\ndtype\n" + _py2_str(b"u1") + _py2_int(0) + _py2_int(1) + b"\x87R"
        b"("
        + _py2_int(3)
        + _py2_str(b"|")
        + b"NNN"
        + b"J\xff\xff\xff\xffJ\xff\xff\xff\xff"
        + _py2_int(0)
        + b"tb"
    )
    return (
        b"cnumpy.core.multiarray\n_reconstruct\n"
        + b"cnumpy\nndarray\n"
        + _py2_int(0)
        + b"\x85"  # TUPLE1
        + _py2_str(b"b")
        + b"\x87R"  # TUPLE3 REDUCE
        + b"("
        + _py2_int(1)
        + shape
        + dtype
        + b"\x89"  # NEWFALSE: not Fortran order
        + _py2_str(array.tobytes())
        + b"tb"  # TUPLE BUILD
    )


def _py2_value(value) -> bytes:
    if isinstance(value, np.ndarray):
        return _py2_uint8_array(value)
    if isinstance(value, bytes):
        return _py2_str(value)
    if isinstance(value, int):
        return _py2_int(value)
    if isinstance(value, list):
        return b"](" + b"".join(_py2_value(v) for v in value) + b"e"  # EMPTY_LIST MARK APPENDS
    raise TypeError(type(value))


def py2_pickle(mapping: dict) -> bytes:
    """``mapping`` (bytes keys; uint8 arrays, bytes, ints, lists) as cPickle protocol 2."""
    items = b"".join(_py2_str(k) + _py2_value(v) for k, v in mapping.items())
    return b"\x80\x02}(" + items + b"u."


def cifar_batch(levels: np.ndarray, labels, name: bytes = b"batch") -> dict:
    return {b"batch_label": name, b"labels": [int(v) for v in labels], b"data": levels}


def write_cifar_folder(
    root: Path, n_train: int = 4, n_test: int = 6, seed: int = 0, style: str = "py2"
) -> tuple[Path, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """A ``cifar-10-batches-py`` folder under ``root``: five training batches of ``n_train``
    images, a test batch of ``n_test`` and batches.meta. Returns the folder and, per split,
    (images uint8 (n, 3, 32, 32), labels) as written. ``style``: "py2" (the real files' own
    opcodes) or "py3" (this Python's pickle, protocol 2)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    dump = py2_pickle if style == "py2" else lambda d: pickle.dumps(d, protocol=2)
    written: dict[str, list] = {"train": [], "test": []}
    files = [(f"data_batch_{i}", "train", n_train) for i in range(1, 6)]
    for name, split, n in [*files, ("test_batch", "test", n_test)]:
        images = rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n)
        batch = cifar_batch(images.reshape(n, 3072), labels, name.encode())
        (folder / name).write_bytes(dump(batch))
        written[split].append((images, labels))
    meta = {
        b"label_names": [n.encode() for n in CIFAR_NAMES],
        b"num_cases_per_batch": 10000,
        b"num_vis": 3072,
    }
    (folder / "batches.meta").write_bytes(dump(meta))
    return folder, {
        split: (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
        for split, parts in written.items()
    }
