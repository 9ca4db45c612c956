"""Typed configuration fields, declared once: default, help, parsing and validation.

A config is a dataclass whose fields come from :func:`option`::

    @dataclass
    class TrainConfig:
        epochs: int = option(10, "training epochs", kind=PositiveInt())

        def __post_init__(self) -> None:
            check_fields(self)          # every field through its kind's check

The same declaration gives the command-line option (:mod:`rbfi.cli.options` generates
``--epochs`` with its type, default and help from it), the validation of values given from
Python, and the JSON round trip (:func:`to_json`, :func:`from_json`). A utility part: it imports
no other part of the package.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any


class Kind:
    """How a value is parsed from command-line text and checked (normalised) from Python."""

    metavar: str | None = None

    def parse(self, text: str) -> Any:
        return self.check(text)

    def check(self, value: Any) -> Any:
        return value

    def describe(self) -> str:
        return ""

    def shown_as(self, metavar: str) -> Kind:
        """This kind, with the placeholder the help shows for its value."""
        self.metavar = metavar
        return self


def _number(text: Any, cast, what: str):
    if isinstance(text, bool):
        raise ValueError(f"expected {what}, got {text!r}")
    try:
        value = cast(text)
    except (TypeError, ValueError):
        raise ValueError(f"expected {what}, got {text!r}") from None
    if cast is int and isinstance(text, float) and text != value:
        raise ValueError(f"expected {what}, got {text!r}")
    return value


class Int(Kind):
    """An integer in [min, max]."""

    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max

    def what(self) -> str:
        if self.min == 1 and self.max is None:
            return "a positive integer"
        if self.min == 0 and self.max is None:
            return "a non-negative integer"
        return "an integer" + (
            f" in [{self.min}, {self.max}]" if self.min is not None and self.max is not None else ""
        )

    def check(self, value):
        value = _number(value, int, self.what())
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise ValueError(f"expected {self.what()}, got {value!r}")
        return value


def PositiveInt() -> Int:  # noqa: N802 - reads like a type
    return Int(min=1)


def NonNegativeInt() -> Int:  # noqa: N802
    return Int(min=0)


class Float(Kind):
    """A finite number in [min, max] (``open_min`` / ``open_max``: the end excluded)."""

    def __init__(
        self,
        min: float | None = None,
        max: float | None = None,
        open_min: bool = False,
        open_max: bool = False,
    ) -> None:
        self.min, self.max, self.open_min, self.open_max = min, max, open_min, open_max

    def what(self) -> str:
        if self.min == 0 and self.open_min and self.max is None:
            return "a positive number"
        if self.min is not None and self.max is not None:
            left, right = "(" if self.open_min else "[", ")" if self.open_max else "]"
            return f"a number in {left}{self.min:g}, {self.max:g}{right}"
        if self.min is not None:
            return f"a number {'>' if self.open_min else '>='} {self.min:g}"
        return "a finite number"

    def check(self, value):
        value = float(_number(value, float, self.what()))
        low_bad = self.min is not None and (
            value <= self.min if self.open_min else value < self.min
        )
        high_bad = self.max is not None and (
            value >= self.max if self.open_max else value > self.max
        )
        if not math.isfinite(value) or low_bad or high_bad:
            raise ValueError(f"expected {self.what()}, got {value!r}")
        return value


def PositiveFloat() -> Float:  # noqa: N802
    return Float(min=0.0, open_min=True)


class Choice(Kind):
    """One of ``choices``; ``hidden`` values are accepted too but not offered (values that
    saved settings may hold, set another way now)."""

    def __init__(self, choices: Sequence[str], hidden: Sequence[str] = ()) -> None:
        self.choices, self.hidden = tuple(choices), tuple(hidden)
        self.metavar = "{" + ",".join(self.choices) + "}"

    def check(self, value):
        if value not in self.choices + self.hidden:
            raise ValueError(f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value


class Text(Kind):
    """Free text (non-empty unless ``empty``)."""

    def __init__(self, empty: bool = False) -> None:
        self.empty = empty

    def check(self, value):
        if not isinstance(value, str) or (not value and not self.empty):
            raise ValueError(f"expected a non-empty text, got {value!r}")
        return value


class Pair(Kind):
    """LOW,HIGH: two finite numbers with LOW <= HIGH (and LOW >= ``min``)."""

    metavar = "LOW,HIGH"

    def __init__(self, min: float | None = None) -> None:
        self.min = min

    def parse(self, text):
        try:
            lo, hi = (float(v) for v in str(text).split(","))
        except ValueError:
            raise ValueError(f"expected LOW,HIGH (two numbers), got {text!r}") from None
        return self.check((lo, hi))

    def check(self, value):
        try:
            lo, hi = (float(_number(v, float, "a number")) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"expected (LOW, HIGH), got {value!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"expected LOW,HIGH with LOW <= HIGH, got {value!r}")
        if self.min is not None and lo < self.min:
            raise ValueError(f"expected LOW >= {self.min:g}, got {value!r}")
        return (lo, hi)


class FloatList(Kind):
    """Comma-separated numbers in [min, max], sorted, duplicates removed: 0.3,0.1 -> (0.1, 0.3)."""

    metavar = "X,X,..."

    def __init__(self, min: float = 0.0, max: float = 1.0) -> None:
        self.item = Float(min, max)

    def parse(self, text):
        return self.check(str(text).split(","))

    def check(self, value):
        items = value.split(",") if isinstance(value, str) else value
        try:
            values = tuple(sorted({self.item.check(v) for v in items}))
        except (TypeError, ValueError):
            raise ValueError(
                f"expected comma-separated numbers in [{self.item.min:g}, {self.item.max:g}], "
                f"got {value!r}"
            ) from None
        if not values:
            raise ValueError("expected at least one number")
        return values


class Names(Kind):
    """Comma-separated names, e.g. fgsm,pgd-margin -> ("fgsm", "pgd-margin")."""

    metavar = "NAME,..."

    def parse(self, text):
        return self.check(str(text).split(","))

    def check(self, value):
        items = value.split(",") if isinstance(value, str) else value
        names = tuple(str(v).strip() for v in items if str(v).strip())
        if not names:
            raise ValueError("expected at least one name")
        return names


class Flag(Kind):
    def check(self, value):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value


def option(
    default: Any,
    help: str,
    *,
    kind: Kind | None = None,
    optional: bool | None = None,
    flag: str | None = None,
    aliases: tuple[str, ...] = (),
    invert: bool = False,
    cli: bool = True,
    group: str | None = None,
) -> Any:
    """A dataclass field with its help text and its :class:`Kind`.

    ``optional`` (default: True when the default is None) lets the value be None. ``flag``
    names the command-line option (default ``--field-name``), ``aliases`` other names it
    accepts (older spellings); ``invert`` makes a boolean
    field's flag store False (e.g. ``--true-gradients`` for ``pseudogradient``). ``cli=False``
    keeps the field off the command line. ``group`` titles the help section it appears in.
    """
    if kind is None:
        kind = Flag() if isinstance(default, bool) else Kind()
    metadata = {
        "help": help,
        "kind": kind,
        "optional": default is None if optional is None else optional,
        "flag": flag,
        "aliases": tuple(aliases),
        "invert": invert,
        "cli": cli,
        "group": group,
    }
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def check_fields(config: Any) -> None:
    """Run every :func:`option` field of ``config`` through its kind's check (normalising the
    value in place). Raises ValueError naming the field."""
    for f in dataclasses.fields(config):
        kind = f.metadata.get("kind")
        if kind is None:
            continue
        value = getattr(config, f.name)
        if value is None and f.metadata["optional"]:
            continue
        try:
            checked = kind.check(value)
        except ValueError as exc:
            raise ValueError(f"{f.name}: {exc}") from None
        object.__setattr__(config, f.name, checked)


def to_json(config: Any) -> dict:
    """The config as JSON-ready data (tuples become lists, nested configs dicts)."""

    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def from_json(cls: type, data: dict, *, strict: bool = False) -> Any:
    """Rebuild ``cls`` from :func:`to_json` output. Unknown keys are ignored (settings of older
    or newer versions) unless ``strict``; missing keys take their defaults."""
    if not isinstance(data, dict):
        raise ValueError(f"expected an object of {cls.__name__} settings, got {data!r}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if strict and unknown:
        raise ValueError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
    kwargs = {}
    for key, value in data.items():
        if key not in names:
            continue
        field_type = names[key].type
        nested = _nested_dataclass(cls, key, field_type)
        kwargs[key] = from_json(nested, value, strict=strict) if nested else value
    return cls(**kwargs)


def _nested_dataclass(cls: type, name: str, field_type: Any) -> type | None:
    import typing

    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no nesting
        return None
    hint = hints.get(name)
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def option_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of ``cls`` declared with :func:`option`, in declaration order."""
    return [f for f in dataclasses.fields(cls) if "kind" in f.metadata]


class Device(Kind):
    """A torch device that exists here: "cpu", "cuda", "cuda:1", ... (checked at parse time,
    so a missing GPU is a one-line error, not a traceback)."""

    metavar = "DEVICE"

    def check(self, value):
        import torch

        try:
            device = torch.device(value)
        except (RuntimeError, TypeError, ValueError):
            raise ValueError(
                f"expected a torch device such as cpu or cuda, got {value!r}"
            ) from None
        if device.type == "cuda":
            if not torch.cuda.is_available():
                raise ValueError(f"device {value!r}: CUDA is not available here")
            if device.index is not None and device.index >= torch.cuda.device_count():
                raise ValueError(
                    f"device {value!r}: only {torch.cuda.device_count()} CUDA device(s) here"
                )
        elif device.type != "cpu":
            raise ValueError(f"device {value!r}: only cpu and cuda devices are supported")
        return str(value)
