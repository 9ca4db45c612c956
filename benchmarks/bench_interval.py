"""Benchmark the interval bound pass (IBP) of the paper network against its plain forward.

Network: 784-512-512-512-10, geometry ^v^v (``rbfi.build_model("rbfi", "512,512,512,10",
"^v^v")``), pseudogradients. Inputs: random images x in [0, 1]; box: the eps = 0.3 l_inf ball
clipped to [0, 1] (``rbfi.bounds.input_box``). Variants, per batch size:

- forward: ``model(x)`` under ``torch.no_grad()``;
- bounds: ``rbfi.bounds.interval_bounds(model, lo, hi)`` under ``torch.no_grad()`` (per RBFI
  layer the fused interval kernel: z_lo = max_i (u near)^2, z_hi = max_i (u far)^2);
- bounds (chunked): the same with every layer on the pure-torch ``chunked`` backend (what
  ``auto`` used before the CPU interval kernel existed; context only, timed after the others
  with ``--chunked-reps`` calls, so that its large temporaries do not disturb them).

What a certified *training step* costs is measured by ``bench_certified_step.py`` (the training
loop's own objectives and optimiser), not here.

Timings (``timing.py``): ``--rounds`` rounds after a warm-up, each round one call of forward and
bounds, the order rotated; per variant the median with its min-max, and the ratio bounds /
forward per round, reported as its median with min-max. The Markdown table is printed and,
with the raw numbers and the machine (CPU model, cores, torch threads, the C kernel's SIMD
width and flags, versions, date, command) as JSON, written to
``benchmarks/results/interval-cpu.{md,json}`` (``--name``; ``--no-save`` writes nothing).

    python benchmarks/bench_interval.py --threads 2     # batches 100 and 1000, 7 rounds
    python benchmarks/bench_interval.py --quick         # no chunked variant
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import machine
import timing
import torch

import rbfi
from rbfi.bounds import input_box, interval_bounds
from rbfi.nn import rbfi_layers

LAYERS = "512,512,512,10"
GEOMETRY = "^v^v"
IN_FEATURES = 784
TARGET_BOUNDS_RATIO = 2.5
LABELS = {
    "forward": "plain forward `model(x)`, no grad",
    "bounds": "interval bound pass, no grad",
    "bounds_chunked": "interval bound pass, chunked backend (before)",
}


def make_model(backend: str = "auto") -> torch.nn.Module:
    torch.manual_seed(0)
    model = rbfi.build_model("rbfi", LAYERS, GEOMETRY, pseudogradient=True)
    for layer in rbfi_layers(model):
        layer.backend = backend
    return model


def make_batch(batch: int, eps: float) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, IN_FEATURES, generator=g)
    labels = torch.randint(0, 10, (batch,), generator=g)
    lo, hi = input_box(x, eps)
    return x, labels, lo, hi


def variants(batch: int, eps: float) -> dict[str, Callable[[], None]]:
    """name -> a callable running that variant once (``bounds_chunked`` last)."""
    model, model_chunked = make_model(), make_model("chunked")
    x, _, lo, hi = make_batch(batch, eps)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def bounds() -> None:
        with torch.no_grad():
            interval_bounds(model, lo, hi)

    def bounds_chunked() -> None:
        with torch.no_grad():
            interval_bounds(model_chunked, lo, hi)

    return {"forward": forward, "bounds": bounds, "bounds_chunked": bounds_chunked}


def check_bounds(batch: int, eps: float) -> float:
    """Largest gap between the fused and the chunked bound pass (they should agree to float32
    rounding), as a sanity check that the timed kernel computes the same thing."""
    x, _, lo, hi = make_batch(batch, eps)
    with torch.no_grad():
        a = interval_bounds(make_model(), lo, hi)
        b = interval_bounds(make_model("chunked"), lo, hi)
    return max((p - q).abs().max().item() for p, q in zip(a, b))


def table(results: dict) -> str:
    lines = [
        "| batch | variant | ms: median [min-max] | ratio per round: median (min-max) |",
        "|---:|---|---:|---|",
    ]
    for batch, res in results["batches"].items():
        ms, ratios = res["ms"], res["ratios"]
        ratio = {
            "bounds": f"**{timing.text(ratios['bounds_over_forward'], 2, 'x')}** the plain forward",
            "bounds_chunked": f"{ratios['chunked_over_forward']:.1f}x the plain forward (medians)"
            if "chunked_over_forward" in ratios
            else "",
        }
        for name in ("forward", "bounds", "bounds_chunked"):
            if name in ms:
                m = ms[name]
                cell = f"{m['median']:.2f} [{m['min']:.2f}-{m['max']:.2f}]"
                lines.append(f"| {batch} | {LABELS[name]} | {cell} | {ratio.get(name, '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="100,1000", help="comma-separated batch sizes")
    ap.add_argument("--rounds", type=int, default=timing.DEFAULT_ROUNDS, help="timed rounds")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--quick", action="store_true", help="no chunked variant")
    ap.add_argument("--chunked-reps", type=int, default=3, help="calls of the chunked pass")
    ap.add_argument("--no-chunked", action="store_true", help="skip the chunked bound pass")
    machine.add_arguments(ap, "interval-cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chunked = not (args.quick or args.no_chunked)

    results: dict = {
        "benchmark": "interval",
        "machine": machine.describe(),
        "network": f"784-{LAYERS.replace(',', '-')} ({GEOMETRY})",
        "eps": args.eps,
        "rounds": args.rounds,
        "chunked_reps": args.chunked_reps if chunked else 0,
        "target_bounds_over_forward": TARGET_BOUNDS_RATIO,
        "batches": {},
    }
    for batch in (int(b) for b in args.batches.split(",")):
        fns = variants(batch, args.eps)
        slow = fns.pop("bounds_chunked")
        times = timing.interleaved(fns, args.rounds, warmup=2)
        ratios = {"bounds_over_forward": timing.ratio(times, "bounds", "forward")}
        if chunked:
            times.update(timing.interleaved({"bounds_chunked": slow}, args.chunked_reps))
        ms = {name: timing.spread_ms(ts) for name, ts in times.items()}
        if chunked:
            ratios["chunked_over_forward"] = (
                ms["bounds_chunked"]["median"] / ms["forward"]["median"]
            )
        results["batches"][str(batch)] = {
            "ms": ms,
            "times_ms": {name: [t * 1e3 for t in ts] for name, ts in times.items()},
            "ratios": ratios,
            "max_abs_gap_fused_vs_chunked": check_bounds(min(batch, 100), args.eps),
        }
    header = (
        f"{machine.header(results['machine'])}\n"
        f"Paper network {results['network']}, eps = {args.eps} box; {args.rounds} rounds, each "
        f"one call of every variant (order rotated); chunked: "
        + (f"{results['chunked_reps']} calls, separately" if chunked else "not run")
        + "\n"
        f"1-min load average before the run {results['machine']['loadavg_before'][0]:.2f} "
        f"(other work)"
    )
    verdict = ", ".join(
        f"B={b}: {timing.text(r['ratios']['bounds_over_forward'], 2, 'x')}"
        + (
            " (met)"
            if r["ratios"]["bounds_over_forward"]["median"] <= TARGET_BOUNDS_RATIO
            else " (NOT met)"
        )
        for b, r in results["batches"].items()
    )
    gap = max(r["max_abs_gap_fused_vs_chunked"] for r in results["batches"].values())
    text = (
        f"{header}\n\n{table(results)}\n\n"
        f"Target: bound pass <= {TARGET_BOUNDS_RATIO}x the plain forward (median); {verdict}\n"
        f"Fused vs chunked bound pass (B <= 100): max |difference| {gap:.1e}\n"
    )
    machine.publish(args.name, results, text, write=not args.no_save)


if __name__ == "__main__":
    main()
