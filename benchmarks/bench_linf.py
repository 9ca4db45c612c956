"""Benchmark the l_inf-distance layer (issue 26) against the RBFI layer of the same shape.

Layers 784 -> 512 (the first layer of the 3x512 nets), float32, ``backend="auto"``:

- ``rbfi``: ``rbfi.nn.RBFI(784, 512)`` (And units, pseudogradients: how RBFI nets train);
- ``linf_inf``: ``rbfi.nn.LinfDist(784, 512)`` at p = inf (the RBFI max kernel with u = 1,
  true gradients; the net itself, and its last training phase);
- ``linf_p8``: the same at p = 8 (the fused l_p kernel, integer power: the start of the
  papers' p schedule);
- ``linf_p8.5``: p = 8.5 (the general power 2^(p log2 r): every p of the annealing).

Each is timed forward only (no grad) and forward + backward (all parameters, not x, as a first
layer in training), with the variants interleaved call by call so that load from other
processes hits them alike; medians with min-max of ``--reps`` calls (under load from other
processes the minima are the steadier comparison: a loaded core stretches every call). The
Markdown table is printed and, with the raw numbers and the machine (``benchmarks/machine.py``),
written to
``benchmarks/results/linf-cpu.{md,json}`` (``--name``; ``--no-save`` writes nothing).

    python benchmarks/bench_linf.py --threads 2             # batch 100, 15 reps
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import machine
import timing
import torch

from rbfi.nn import RBFI, LinfDist

IN, OUT = 784, 512
VARIANTS = {
    "rbfi": "RBFI(784, 512), And units, pseudogradients",
    "linf_inf": "LinfDist(784, 512), p = inf (max kernel, u = 1)",
    "linf_p8": "LinfDist(784, 512), p = 8 (l_p kernel, integer power)",
    "linf_p8.5": "LinfDist(784, 512), p = 8.5 (l_p kernel, general power)",
}


def make_layers() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    layers = {"rbfi": RBFI(IN, OUT)}
    for name, p in (("linf_inf", float("inf")), ("linf_p8", 8.0), ("linf_p8.5", 8.5)):
        layers[name] = LinfDist(IN, OUT, bias=False, mean_shift=True, p=p)
    return layers


def calls(batch: int) -> dict[str, Callable[[], None]]:
    """'{variant} fwd' and '{variant} fwd+bwd' -> a callable running it once."""
    x = torch.rand(batch, IN, generator=torch.Generator().manual_seed(1))
    g = torch.randn(batch, OUT, generator=torch.Generator().manual_seed(2))
    fns: dict[str, Callable[[], None]] = {}
    for name, layer in make_layers().items():

        def forward(layer=layer) -> None:
            with torch.no_grad():
                layer(x)

        def train_step(layer=layer) -> None:
            layer.zero_grad(set_to_none=True)
            layer(x).backward(g)

        fns[f"{name} fwd"] = forward
        fns[f"{name} fwd+bwd"] = train_step
    return fns


def table(res: dict) -> str:
    ms = res["median_ms"]
    lines = [
        "| layer | forward, ms (min-max) | fwd + bwd, ms (min-max) | fwd + bwd vs RBFI: "
        "medians | minima |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, label in VARIANTS.items():
        cells = []
        for kind in ("fwd", "fwd+bwd"):
            key = f"{name} {kind}"
            lo, hi = min(res["times_ms"][key]), max(res["times_ms"][key])
            cells.append(f"{ms[key]:.2f} ({lo:.2f}-{hi:.2f})")
        ratio = ms[f"{name} fwd+bwd"] / ms["rbfi fwd+bwd"]
        fastest = min(res["times_ms"][f"{name} fwd+bwd"]) / min(res["times_ms"]["rbfi fwd+bwd"])
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {ratio:.2f}x | {fastest:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reps", type=int, default=15, help="timed calls per variant")
    machine.add_arguments(ap, "linf-cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    times = timing.interleaved(calls(args.batch), args.reps, warmup=2)
    res = {
        "machine": machine.describe(),
        "shape": {"batch": args.batch, "in": IN, "out": OUT},
        "reps": args.reps,
        "median_ms": {k: statistics.median(v) * 1e3 for k, v in times.items()},
        "times_ms": {k: [t * 1e3 for t in v] for k, v in times.items()},
    }
    report = (
        f"{machine.header(res['machine'])}\n\n"
        f"Layer 784 -> 512, batch {args.batch}, float32, backend auto; median (min-max) of "
        f"{args.reps} calls, variants interleaved; 1-min load average before the run "
        f"{res['machine']['loadavg_before'][0]:.2f} (other work shares the cores)\n\n"
        f"{table(res)}\n"
    )
    machine.publish(args.name, res, report, write=not args.no_save)


if __name__ == "__main__":
    main()
