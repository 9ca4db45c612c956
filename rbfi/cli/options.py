"""Command-line options generated from the config dataclasses (:mod:`rbfi.options`), so each
knob is written once: its field declares the default, the help, the parsing and the checks.

    add_config_options(parser, TrainConfig)        # --model, --layers, ..., --epochs, ...
    config = config_from_args(TrainConfig, args)   # the same fields back, checked

Nested config fields (e.g. ``TrainConfig.model``) contribute their own options. Options that
belong to a command, not to a config (--out, --threads, ...), are declared in :data:`COMMON`,
once for every command. Every command has ``--threads`` and ``--json``; the ones that evaluate
a test set have ``--limit`` (``rbfi train``: its ``test_limit`` field, also ``--test-limit``);
the long-running ones have ``--no-progress`` (``tests/test_cli.py`` checks it).
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Iterable

from rbfi.options import Device, Kind, PositiveInt, option_fields


def _argparse_type(kind: Kind):
    def parse(text: str):
        try:
            return kind.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = type(kind).__name__  # argparse names the type in some messages
    return parse


def checkpoint_ref(text: str) -> str:
    """argparse type of a checkpoint argument: a run directory as given, or "zoo:NAME" turned
    into the run directory of that net of the model zoo (an unknown name is a usage error)."""
    from rbfi.models import zoo

    try:
        return str(zoo.checkpoint_path(text))
    except zoo.ZooError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _nested(cls: type) -> list[tuple[str, type]]:
    hints = typing.get_type_hints(cls)
    return [
        (f.name, hints[f.name])
        for f in dataclasses.fields(cls)
        if "kind" not in f.metadata and dataclasses.is_dataclass(hints.get(f.name))
    ]


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


def _show(value) -> str:
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def add_config_options(
    parser: argparse.ArgumentParser, cls: type, *, skip: Iterable[str] = ()
) -> None:
    """Add one option per command-line field of ``cls`` (and of its nested configs)."""
    skip = set(skip)
    nested = dict(_nested(cls))
    for f in dataclasses.fields(cls):
        if f.name in nested:
            add_config_options(parser, nested[f.name], skip=skip)
            continue
        meta = f.metadata
        if "kind" not in meta or not meta["cli"] or f.name in skip:
            continue
        target = parser
        if meta["group"]:  # one section per title, whichever config's fields fill it
            titled = {g.title: g for g in parser._action_groups}
            target = titled.get(meta["group"]) or parser.add_argument_group(meta["group"])
        flags = [meta["flag"] or "--" + f.name.replace("_", "-"), *meta.get("aliases", ())]
        default = _default(f)
        if isinstance(default, bool):
            action = "store_false" if meta["invert"] else "store_true"
            target.add_argument(
                *flags, dest=f.name, action=action, default=default, help=meta["help"]
            )
            continue
        shown = "" if default is None else f" (default: {_show(default)})"
        kind = meta["kind"]
        target.add_argument(
            *flags,
            dest=f.name,
            type=_argparse_type(kind),
            default=default,
            metavar=kind.metavar,
            help=meta["help"] + shown,
        )


def config_from_args(cls: type, args: argparse.Namespace, **fixed):
    """Build ``cls`` (and its nested configs) from parsed ``args``; ``fixed`` overrides."""
    kwargs = {}
    for f in option_fields(cls):
        if f.name in fixed:
            kwargs[f.name] = fixed[f.name]
        elif f.metadata["cli"] and hasattr(args, f.name):
            kwargs[f.name] = getattr(args, f.name)
    for name, nested in _nested(cls):
        kwargs[name] = fixed.get(name) or config_from_args(nested, args)
    return cls(**kwargs)


# options of commands (not of configs): name -> (flag, add_argument keywords)
COMMON = {
    "out": ("--out", {"help": "output directory"}),
    "device": (
        "--device",
        {
            "type": _argparse_type(Device()),
            "default": "cpu",
            "metavar": "DEVICE",
            "help": "torch device (default: cpu)",
        },
    ),
    "threads": (
        "--threads",
        {
            "type": _argparse_type(PositiveInt()),
            "default": None,
            "help": "torch / OpenMP threads of this command (default: torch's choice)",
        },
    ),
    "no_progress": (
        "--no-progress",
        {"action": "store_true", "help": "no progress bar or progress lines (stderr)"},
    ),
    "limit": (
        "--limit",
        {
            "type": _argparse_type(PositiveInt()),
            "default": None,
            "help": "first N test images (default: all)",
        },
    ),
    "json": (
        "--json",
        {"action": "store_true", "help": "print the result as JSON on stdout (messages: stderr)"},
    ),
    "overwrite": (
        "--overwrite",
        {"action": "store_true", "help": "replace results already in --out"},
    ),
    "estimate_only": (
        "--estimate-only",
        {"action": "store_true", "help": "print the cost estimate and exit"},
    ),
}


def checkpoint_test_data(args: argparse.Namespace, pixel_scale: int | None):
    """The test set of ``args.checkpoint`` as the command's options ask for it: the
    checkpoint's dataset (or ``--dataset``) from ``--data-dir``, at ``pixel_scale`` (None: the
    checkpoint's), first ``--limit`` images (:func:`rbfi.data.checkpoint_test_set`)."""
    from rbfi.data import DataOptions, checkpoint_test_set

    data = config_from_args(DataOptions, args)
    return checkpoint_test_set(
        args.checkpoint,
        args.limit,
        dataset=data.dataset,
        data_dir=data.data_dir,
        pixel_scale=pixel_scale,
    )


def add_common(parser: argparse.ArgumentParser, *names: str, **overrides: dict) -> None:
    """Add the command options ``names`` of :data:`COMMON` (keywords overridable)."""
    for name in names:
        flag, kwargs = COMMON[name]
        parser.add_argument(flag, dest=name, **{**kwargs, **overrides.get(name, {})})
