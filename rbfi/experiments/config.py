"""What a reproduction runs (the ``rbfi reproduce`` options are generated from these fields,
like every command's: :mod:`rbfi.cli.options`)."""

from __future__ import annotations

from dataclasses import dataclass

from rbfi.data import pixel_scale_option
from rbfi.experiments.items import ITEMS
from rbfi.experiments.profiles import PROFILES
from rbfi.options import (
    Choice,
    Names,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Text,
    check_fields,
    option,
)


@dataclass
class ReproduceConfig:
    """The paper's experiment section and the studies beyond it under a profile, in this process
    or on Ray."""

    profile: str = option("quick", "how big", kind=Choice(tuple(PROFILES)))
    only: tuple[str, ...] | None = option(
        None, f"only these items, run in the order given ({', '.join(ITEMS)})", kind=Names()
    )
    ray: bool = option(False, "run the jobs as tasks of a local Ray instance started on the fly")
    ray_address: str | None = option(
        None, "run the jobs on an existing Ray cluster", kind=Text().shown_as("ADDR")
    )
    ray_cpus: int | None = option(
        None, "CPUs of the local Ray instance (default: all)", kind=PositiveInt()
    )
    retries: int = option(1, "retries of a failed job", kind=NonNegativeInt())
    stop_after: float | None = option(
        None,
        "start only the jobs that the cost model says end within this many minutes of the "
        "start (running ones finish); the same command later continues where it stopped",
        kind=PositiveFloat().shown_as("MIN"),
    )
    pixel_scale: int | None = pixel_scale_option(
        None, "the profile's, 255; results/paper-quick was made with 256"
    )

    def __post_init__(self) -> None:
        check_fields(self)
