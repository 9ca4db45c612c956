"""Benchmark the interval bound pass (IBP) of the paper network against its plain forward.

Network: 784-512-512-512-10, geometry ^v^v (``rbfi.build_model("rbfi", "512,512,512,10",
"^v^v")``), pseudogradients. Inputs: random images x in [0, 1]; box: the eps = 0.3 l_inf ball
clipped to [0, 1] (``rbfi.bounds.input_box``). Variants, per batch size:

- forward: ``model(x)`` under ``torch.no_grad()``;
- bounds: ``rbfi.bounds.interval_bounds(model, lo, hi)`` under ``torch.no_grad()`` (per RBFI
  layer the fused interval kernel: z_lo = max_i (u near)^2, z_hi = max_i (u far)^2);
- bounds (chunked): the same with every layer on the pure-torch ``chunked`` backend (what
  ``auto`` used before the CPU interval kernel existed; context only, timed after the others
  with ``--chunked-reps`` calls, so that its large temporaries do not disturb them);
- train step: forward + backward of the square-error loss (all parameters, not x);
- certified step: forward + backward, with pseudogradients, of the square error of the
  worst-case scores (true class at its lower bound, the others at their upper bound), as in
  ``rbfi.training.objectives`` (the eps-weighted mix with the clean loss left out).

Timings: medians of ``--reps`` calls after warm-up, the four main variants interleaved call by
call so that load from other processes hits them alike; ratios come from the same run. The Markdown
table is printed and, with the raw numbers and the machine (CPU model, cores, torch threads, the
C kernel's SIMD width and flags, versions, date, command) as JSON, written to
``benchmarks/results/interval-cpu.{md,json}`` (``--name``; ``--no-save`` writes nothing).

    python benchmarks/bench_interval.py --threads 2     # batches 100 and 1000, 9 reps
    python benchmarks/bench_interval.py --quick         # 3 reps, no chunked variant
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import machine
import torch

import rbfi
from rbfi.bounds import input_box, interval_bounds
from rbfi.nn import rbfi_layers
from rbfi.nn.losses import square_error

LAYERS = "512,512,512,10"
GEOMETRY = "^v^v"
IN_FEATURES = 784
TARGET_BOUNDS_RATIO = 2.5
LABELS = {
    "forward": "plain forward `model(x)`, no grad",
    "bounds": "interval bound pass, no grad",
    "bounds_chunked": "interval bound pass, chunked backend (before)",
    "train": "plain training step (fwd + bwd)",
    "certified": "certified training step (interval fwd + bwd, pseudogradients)",
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
    x, labels, lo, hi = make_batch(batch, eps)

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def bounds() -> None:
        with torch.no_grad():
            interval_bounds(model, lo, hi)

    def bounds_chunked() -> None:
        with torch.no_grad():
            interval_bounds(model_chunked, lo, hi)

    def train() -> None:
        model.zero_grad(set_to_none=True)
        square_error(model(x), labels).backward()

    def certified() -> None:
        model.zero_grad(set_to_none=True)
        s_lo, s_hi = interval_bounds(model, lo, hi)
        worst = s_hi.scatter(1, labels[:, None], s_lo.gather(1, labels[:, None]))
        square_error(worst, labels).backward()

    return {
        "forward": forward,
        "bounds": bounds,
        "train": train,
        "certified": certified,
        "bounds_chunked": bounds_chunked,
    }


def time_interleaved(fns: dict[str, Callable[[], None]], reps: int) -> dict[str, list[float]]:
    """Seconds per call of each variant; one call of each per round, ``reps`` rounds."""
    for fn in fns.values():  # warm-up (builds the kernel on first use)
        fn()
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


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
        "| batch | variant | ms (median) | ratio |",
        "|---:|---|---:|---|",
    ]
    for batch, res in results["batches"].items():
        ms = res["median_ms"]
        ratio = {
            "bounds": f"**{ms['bounds'] / ms['forward']:.2f}x** the plain forward",
            "bounds_chunked": f"{ms['bounds_chunked'] / ms['forward']:.2f}x the plain forward"
            if "bounds_chunked" in ms
            else "",
            "certified": f"**{ms['certified'] / ms['train']:.2f}x** the plain training step",
        }
        for name in ("forward", "bounds", "bounds_chunked", "train", "certified"):
            if name in ms:
                row = f"| {batch} | {LABELS[name]} | {ms[name]:.2f} | {ratio.get(name, '')} |"
                lines.append(row)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="100,1000", help="comma-separated batch sizes")
    ap.add_argument("--reps", type=int, default=9, help="timed calls per variant")
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--quick", action="store_true", help="3 reps, no chunked variant")
    ap.add_argument("--chunked-reps", type=int, default=3, help="calls of the chunked pass")
    ap.add_argument("--no-chunked", action="store_true", help="skip the chunked bound pass")
    machine.add_arguments(ap, "interval-cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    reps = 3 if args.quick else args.reps
    chunked = not (args.quick or args.no_chunked)

    results: dict = {
        "machine": machine.describe(),
        "network": f"784-{LAYERS.replace(',', '-')} ({GEOMETRY})",
        "eps": args.eps,
        "reps": reps,
        "chunked_reps": args.chunked_reps if chunked else 0,
        "target_bounds_over_forward": TARGET_BOUNDS_RATIO,
        "batches": {},
    }
    for batch in (int(b) for b in args.batches.split(",")):
        fns = variants(batch, args.eps)
        slow = fns.pop("bounds_chunked")
        times = time_interleaved(fns, reps)
        if chunked:
            times.update(time_interleaved({"bounds_chunked": slow}, args.chunked_reps))
        med = {name: statistics.median(ts) * 1e3 for name, ts in times.items()}
        results["batches"][str(batch)] = {
            "median_ms": med,
            "times_ms": {name: [t * 1e3 for t in ts] for name, ts in times.items()},
            "bounds_over_forward": med["bounds"] / med["forward"],
            "certified_over_train": med["certified"] / med["train"],
            "max_abs_gap_fused_vs_chunked": check_bounds(min(batch, 100), args.eps),
        }
    header = (
        f"{machine.header(results['machine'])}\n"
        f"Paper network {results['network']}, eps = {args.eps} box, median of {reps} calls "
        f"(variants interleaved; chunked: {results['chunked_reps'] or 'not run'}, separately)\n"
        f"1-min load average before the run {results['machine']['loadavg_before'][0]:.2f} "
        f"(other work)"
    )
    verdict = ", ".join(
        f"B={b}: {r['bounds_over_forward']:.2f}x"
        + (" (met)" if r["bounds_over_forward"] <= TARGET_BOUNDS_RATIO else " (NOT met)")
        for b, r in results["batches"].items()
    )
    gap = max(r["max_abs_gap_fused_vs_chunked"] for r in results["batches"].values())
    text = (
        f"{header}\n\n{table(results)}\n\n"
        f"Target: bound pass <= {TARGET_BOUNDS_RATIO}x the plain forward; {verdict}\n"
        f"Fused vs chunked bound pass (B <= 100): max |difference| {gap:.1e}\n"
    )
    print(text)
    if not args.no_save:
        paths = machine.save(args.name, results, text)
        print(f"wrote {paths[0]} and {paths[1].name}")


if __name__ == "__main__":
    main()
