"""What every benchmark records beside its numbers, and where it writes them.

``describe()`` gives the machine and build a measurement belongs to: the CPU model (from
/proc/cpuinfo), the cores, torch's version and thread count, the SIMD width and flags the C kernel
was compiled with (``rbfi.ops.kernel_info()``), the date (UTC) and the command line (its paths
relative to the working directory: ``rbfi.io.paths``). ``save()`` writes
``benchmarks/results/NAME.json`` (the numbers plus that description) and ``NAME.md`` (the
printed report). The README's speed sentences are generated from the newest JSON of each
benchmark (``python -m tools.readme``), never copied by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path

import torch

import rbfi
from rbfi.io import atomic_write_bytes
from rbfi.io.paths import portable_command
from rbfi.io.provenance import cpu_name

RESULTS = Path(__file__).resolve().parent / "results"


def add_arguments(ap: argparse.ArgumentParser, name: str) -> None:
    """--threads, --name (results file stem, default ``name``) and --no-save."""
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--name", default=name, help="results file stem under benchmarks/results/")
    ap.add_argument("--no-save", action="store_true", help="print only, write no results")


def describe() -> dict:
    """The machine, the build and the command of this measurement (see the module docstring)."""
    cpu = rbfi.ops.kernel_info()["cpu"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu_name(),
        "cores": cores,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rbfi": rbfi.__version__,
        "python": platform.python_version(),
        "cpu_kernel": cpu["available"],
        "simd_width": cpu["simd_width"],
        "cpu_kernel_flags": cpu["flags"],
        "compiler": cpu.get("compiler_version"),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python " + portable_command([sys.argv[0], *sys.argv[1:]]),
        "loadavg_before": list(os.getloadavg()),
    }


def header(machine: dict) -> str:
    """One line naming the machine, for the top of a Markdown report."""
    return (
        f"{machine['cpu']} ({machine['cores']} cores), {machine['threads']} torch threads, "
        f"torch {machine['torch']}; C kernel SIMD width {machine['simd_width']} "
        f"(flags '{machine['cpu_kernel_flags']}'); {machine['date']}; `{machine['command']}`"
    )


def save(name: str, results: dict, markdown: str) -> list[Path]:
    """Write ``results`` (with the load average after the run added) as ``NAME.json`` and
    ``markdown`` as ``NAME.md`` under :data:`RESULTS`; returns the two paths."""
    results = {**results, "loadavg_after": list(os.getloadavg())}
    RESULTS.mkdir(parents=True, exist_ok=True)
    paths = [RESULTS / f"{name}.json", RESULTS / f"{name}.md"]
    atomic_write_bytes(paths[0], (json.dumps(results, indent=2) + "\n").encode())
    atomic_write_bytes(paths[1], markdown.encode())
    return paths


def publish(name: str, results: dict, markdown: str, write: bool = True) -> None:
    """Print ``markdown``; with ``write``, :func:`save` both and say where."""
    print(markdown)
    if write:
        paths = save(name, results, markdown)
        print(f"wrote {paths[0]} and {paths[1].name}")
