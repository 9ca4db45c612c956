"""A small declarative schema for JSON documents (checkpoint indexes, result files).

A schema is built from the node types below and checks a parsed document::

    SCHEMA = Obj({"epoch": Int(min=0), "file": Str(pattern=r"[\\w.-]+")}, optional={"x": Num()})
    SCHEMA.check(document, "checkpoint.json")     # raises SchemaError naming the first problem

Errors name the path of the offending value (``checkpoint.json: weights.sha256: ...``), so a
one-line message says exactly what is wrong. Booleans are not accepted as numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any


class SchemaError(ValueError):
    """A document does not match its schema."""


class Node:
    def check(self, value: Any, path: str = "") -> None:
        raise NotImplementedError

    def fail(self, path: str, message: str) -> None:
        raise SchemaError(f"{path}: {message}" if path else message)


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class AnyValue(Node):
    def check(self, value, path=""):
        return None


class Const(Node):
    def __init__(self, value: Any) -> None:
        self.value = value

    def check(self, value, path=""):
        if type(value) is not type(self.value) or value != self.value:
            self.fail(path, f"expected {self.value!r}, got {_describe(value)}")


class Str(Node):
    def __init__(self, pattern: str | None = None, choices: tuple[str, ...] | None = None):
        self.pattern = re.compile(pattern) if pattern else None
        self.choices = choices

    def check(self, value, path=""):
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {_describe(value)}")
        if self.choices is not None and value not in self.choices:
            self.fail(path, f"expected one of {', '.join(self.choices)}, got {_describe(value)}")
        if self.pattern is not None and not self.pattern.fullmatch(value):
            self.fail(path, f"malformed value {_describe(value)}")


class Bool(Node):
    def check(self, value, path=""):
        if not isinstance(value, bool):
            self.fail(path, f"expected true or false, got {_describe(value)}")


class Int(Node):
    def __init__(self, min: int | None = None, max: int | None = None) -> None:
        self.min, self.max = min, max

    def check(self, value, path=""):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(path, f"expected an integer, got {_describe(value)}")
        if self.min is not None and value < self.min:
            self.fail(path, f"must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            self.fail(path, f"must be <= {self.max}, got {value}")


class Num(Node):
    """A finite number (int or float) in [min, max]; ``nullable`` also accepts null."""

    def __init__(self, min: float | None = None, max: float | None = None, nullable=False):
        self.min, self.max, self.nullable = min, max, nullable

    def check(self, value, path=""):
        if value is None and self.nullable:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(path, f"expected a number, got {_describe(value)}")
        if not math.isfinite(value):
            self.fail(path, f"expected a finite number, got {value}")
        if self.min is not None and value < self.min:
            self.fail(path, f"must be >= {self.min}, got {value}")
        if self.max is not None and value > self.max:
            self.fail(path, f"must be <= {self.max}, got {value}")


class Nullable(Node):
    def __init__(self, inner: Node) -> None:
        self.inner = inner

    def check(self, value, path=""):
        if value is not None:
            self.inner.check(value, path)


class OneOf(Node):
    """A value matching any one of ``options``; ``what`` describes them in the error."""

    def __init__(self, options: tuple[Node, ...], what: str) -> None:
        self.options, self.what = options, what

    def check(self, value, path=""):
        for node in self.options:
            try:
                node.check(value, path)
                return
            except SchemaError:
                continue
        self.fail(path, f"expected {self.what}, got {_describe(value)}")


class List(Node):
    def __init__(self, item: Node, min_len: int = 0, max_len: int | None = None) -> None:
        self.item, self.min_len, self.max_len = item, min_len, max_len

    def check(self, value, path=""):
        if not isinstance(value, list):
            self.fail(path, f"expected a list, got {_describe(value)}")
        if len(value) < self.min_len or (self.max_len is not None and len(value) > self.max_len):
            size = f"{self.min_len}" if self.max_len == self.min_len else f">= {self.min_len}"
            if self.max_len is not None and self.max_len != self.min_len:
                size = f"{self.min_len} to {self.max_len}"
            self.fail(path, f"expected {size} items, got {len(value)}")
        for i, item in enumerate(value):
            self.item.check(item, f"{path}[{i}]")


class Map(Node):
    """An object with arbitrary keys (matching ``key``) and values of one schema."""

    def __init__(self, value: Node, key: str | None = None) -> None:
        self.value = value
        self.key = re.compile(key) if key else None

    def check(self, value, path=""):
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_describe(value)}")
        for k, v in value.items():
            if self.key is not None and not self.key.fullmatch(k):
                self.fail(path, f"unexpected key {k!r}")
            self.value.check(v, f"{path}.{k}" if path else k)


class Obj(Node):
    """An object with ``required`` and ``optional`` keys; others are refused unless ``extra``."""

    def __init__(
        self,
        required: dict[str, Node],
        optional: dict[str, Node] | None = None,
        *,
        extra: bool = False,
        rule: Callable[[dict], str | None] | None = None,
    ) -> None:
        self.required, self.optional = required, optional or {}
        self.extra, self.rule = extra, rule

    def check(self, value, path=""):
        if not isinstance(value, dict):
            self.fail(path, f"expected an object, got {_describe(value)}")
        for key, node in self.required.items():
            if key not in value:
                self.fail(path, f"missing {key!r}")
            node.check(value[key], f"{path}.{key}" if path else key)
        for key, node in self.optional.items():
            if key in value:
                node.check(value[key], f"{path}.{key}" if path else key)
        if not self.extra:
            unknown = sorted(set(value) - set(self.required) - set(self.optional))
            if unknown:
                self.fail(path, f"unexpected key(s) {', '.join(map(repr, unknown))}")
        if self.rule is not None:
            problem = self.rule(value)
            if problem:
                self.fail(path, problem)
