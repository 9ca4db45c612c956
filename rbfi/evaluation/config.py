"""What an evaluation runs (recorded with its results; the options of ``rbfi attack``
(:class:`EvalConfig`), ``rbfi certify`` (:class:`CertifyConfig`) and ``rbfi eval``
(:class:`AccuracyConfig`) are generated from these fields)."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

from rbfi.attacks.suites import SUITES, SuiteOptions
from rbfi.data import pixel_scale_option
from rbfi.options import (
    Choice,
    FloatList,
    Int,
    Names,
    NonNegativeInt,
    PositiveInt,
    check_fields,
    option,
    to_json,
)

# the default eps grid of `rbfi attack` and `rbfi certify` (eps 0: the clean accuracy, a check)
DEFAULT_EPS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass
class EvalConfig:
    """A suite of attacks over a grid of eps, on the first test images."""

    suite: str = option("strong", "attack suite", kind=Choice(SUITES))
    eps: tuple[float, ...] = option(DEFAULT_EPS, "l_inf radii, in [0, 1]", kind=FloatList())
    batch_size: int = option(250, "examples per attack call", kind=PositiveInt())
    seed: int = option(0, "seed of the attacks' generators", kind=Int(0, 2**63 - 1))
    attacks: tuple[str, ...] | None = option(
        None, "only these attacks of the suite (comma-separated)", kind=Names()
    )
    check_subset: int = option(
        100, "examples for the step-doubling masking check (0: skip it)", kind=NonNegativeInt()
    )
    certify: bool = option(
        True, "skip the certified lower bound (interval bounds)", flag="--no-certify", invert=True
    )
    pixel_scale: int | None = pixel_scale_option(None)
    options: SuiteOptions = field(default_factory=SuiteOptions)

    def __post_init__(self) -> None:
        if isinstance(self.options, dict):
            self.options = SuiteOptions(**self.options)
        check_fields(self)

    def to_json(self) -> dict:
        return to_json(self)


def attack_seed(seed: int, name: str, eps: float) -> int:
    """A stable seed per (run seed, attack, eps)."""
    return zlib.crc32(f"{seed}/{name}/{eps:g}".encode())


@dataclass
class CertifyConfig:
    """What ``rbfi certify`` computes: certified accuracy over a grid of eps."""

    eps: tuple[float, ...] = option(DEFAULT_EPS, "l_inf radii, in [0, 1]", kind=FloatList())
    batch_size: int = option(1000, "examples per bound computation", kind=PositiveInt())
    pixel_scale: int | None = pixel_scale_option(None)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass
class AccuracyConfig:
    """What ``rbfi eval`` measures: the clean test accuracy."""

    batch_size: int = option(1000, "examples per forward pass", kind=PositiveInt())
    pixel_scale: int | None = pixel_scale_option(None)

    def __post_init__(self) -> None:
        check_fields(self)
