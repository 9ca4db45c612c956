"""Benchmark the fused RBFI kernels against the naive reference and a ReLU MLP (issue 3).

Network: the paper's 784-512-512-512-10, geometry ^v^v, pseudogradients, square-error loss;
one training step = forward + backward of every parameter (x does not require grad). The ReLU
MLP of the same size uses its paper loss (softmax cross-entropy).

Timings (``timing.py``): ``--rounds`` rounds after a warm-up, each round one step of every
variant, the order rotated round by round, so that load from other processes hits them alike;
per variant the median step with its min-max, and the ratios naive / fused and fused / ReLU per
round, reported as their median with min-max. Peak memory: each variant in its own subprocess:
peak RSS (VmHWM, i.e. ru_maxrss without what Linux carries over from the parent at fork) after
the steps minus the same after imports, model and batch.

The report is printed and written, with the machine (CPU model, cores, torch threads, the C
kernel's SIMD width and flags, versions, date, command) and the raw numbers, to
``benchmarks/results/kernels-cpu.{md,json}`` (``--name``; ``--no-save`` writes nothing). The
README's kernel numbers are generated from that JSON.

    python benchmarks/bench_kernels.py             # batch 100, 7 rounds
    python benchmarks/bench_kernels.py --quick --threads 2  # smaller scaling batch
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import machine
import timing
import torch

from rbfi.models import build_model
from rbfi.nn import rbfi_layers
from rbfi.nn.losses import get_loss

LAYERS = (512, 512, 512, 10)
IN_FEATURES = 784
EPOCH = 60_000
VARIANTS = {
    "naive": "naive reference (materialised B×M×N)",
    "fused": "fused kernels (backend='auto')",
    "relu": "ReLU MLP, same size",
}


def elements_per_sample() -> int:
    sizes = (IN_FEATURES, *LAYERS)
    return sum(a * b for a, b in zip(sizes, sizes[1:]))


def make_model(variant: str) -> tuple[torch.nn.Module, str]:
    torch.manual_seed(0)
    if variant == "relu":
        model = build_model("relu", LAYERS)
    else:
        model = build_model("rbfi", LAYERS, "^v^v", pseudogradient=True)
        for layer in rbfi_layers(model):
            layer.backend = "reference" if variant == "naive" else "auto"
    return model, model.loss


def make_batch(batch: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(batch, IN_FEATURES, generator=g)
    labels = torch.randint(0, 10, (batch,), generator=g)
    return x.to(device), labels.to(device)


def train_step(model: torch.nn.Module, loss_fn, x: torch.Tensor, labels: torch.Tensor) -> None:
    for p in model.parameters():
        p.grad = None
    loss_fn(model(x), labels).backward()


def time_variants(variants: list[str], batch: int, rounds: int, device: str = "cpu"):
    """Seconds per step of each variant: :func:`timing.interleaved` over ``rounds`` rounds (the
    first step of each, untimed, builds the kernel on first use)."""
    x, labels = make_batch(batch, device)
    steps = {}
    for v in variants:
        model, loss_name = make_model(v)
        model, loss_fn = model.to(device), get_loss(loss_name)
        steps[v] = lambda model=model, loss_fn=loss_fn: train_step(model, loss_fn, x, labels)
    sync = torch.cuda.synchronize if device == "cuda" else None
    return timing.interleaved(steps, rounds, sync=sync)


def peak_rss_kb() -> int:
    """Peak resident set of this process in kB: VmHWM (per address space, so it starts afresh at
    exec) where /proc exists, else ru_maxrss (which on Linux also carries the parent's RSS at
    fork, hence not the first choice)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def worker(variant: str, batch: int, steps: int) -> None:
    """Subprocess body: print peak RSS growth (MB) over imports + model + batch."""
    model, loss_name = make_model(variant)
    loss_fn = get_loss(loss_name)
    x, labels = make_batch(batch)
    if variant == "fused":
        from rbfi.ops import cpu_kernel_available

        cpu_kernel_available()  # load (or build) the library before the baseline
    base = peak_rss_kb()
    for _ in range(steps):
        train_step(model, loss_fn, x, labels)
    peak = peak_rss_kb()
    print(json.dumps({"peak_mb": (peak - base) / 1024.0}))


def peak_memory_mb(variant: str, batch: int, steps: int = 2, threads: int | None = None) -> float:
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        variant,
        "--batch",
        str(batch),
        "--steps",
        str(steps),
        "--no-save",
    ] + (["--threads", str(threads)] if threads else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def fresh_compile_seconds() -> float | None:
    """Compile the CPU kernel into an empty cache dir: the first-use cost on a new machine."""
    from rbfi.ops import _build

    with tempfile.TemporaryDirectory() as tmp:
        res = _build.build(_build.compiler_command(), tmp, _build.flag_sets())
        return res.compile_seconds


def first_layer_ms(batch: int, rounds: int) -> dict[str, dict[str, float]]:
    """Fused 784 -> 512 layer alone: the forward, and forward + backward of all params, in ms
    (median and min-max of ``rounds`` calls after two untimed ones)."""
    from rbfi.ops import scaled_sqdist_max

    torch.manual_seed(0)
    x = torch.rand(batch, IN_FEATURES)
    w = torch.rand(512, IN_FEATURES, requires_grad=True)
    u = (0.2 + 0.5 * torch.rand(512, IN_FEATURES)).requires_grad_()
    fwd, both = [], []
    for _ in range(rounds + 2):
        t0 = time.perf_counter()
        z = scaled_sqdist_max(x, w, u)
        t1 = time.perf_counter()
        z.backward(torch.ones_like(z))
        t2 = time.perf_counter()
        fwd.append(t1 - t0)
        both.append(t2 - t0)
    return {"forward": timing.spread_ms(fwd[2:]), "forward_backward": timing.spread_ms(both[2:])}


def cuda_report(batch: int, reps: int) -> list[str]:
    """Fused network step on the GPU, with achieved FLOP rate and traffic against the card's.

    Written without a GPU at hand (this project's sessions had none): untested numbers, guarded
    against missing device properties.
    """
    times = time_variants(["fused", "relu"], batch, reps, device="cuda")
    t = {v: statistics.median(ts) for v, ts in times.items()}
    props = torch.cuda.get_device_properties(0)
    elems = batch * elements_per_sample()
    # nominal flops: ~5 per element forward (sub, mul, mul, max), ~25 per element and backward
    # kernel (one exp), two backward kernels (dx; dw and du) except on the first layer
    sizes = (IN_FEATURES, *LAYERS)
    first = batch * sizes[0] * sizes[1]
    flops = elems * 5 + (2 * elems - first) * 25
    # minimal traffic: x, w, u read and z written in forward; x, w, u, z, g read and the
    # gradients written in backward (float32)
    words = sum(3 * batch * a + 5 * a * b + 3 * batch * b for a, b in zip(sizes, sizes[1:]))
    lines = [
        "",
        f"CUDA ({props.name}): fused step {t['fused'] * 1e3:.2f} ms, ReLU {t['relu'] * 1e3:.2f} ms,"
        f" ratio {t['fused'] / t['relu']:.1f}x; {elems / t['fused'] / 1e9:.1f} G elements/s",
        f"  ~{flops / t['fused'] / 1e12:.2f} TFLOP/s fp32 (nominal count), "
        f"~{words * 4 / t['fused'] / 1e9:.1f} GB/s of minimal traffic",
    ]
    clock_khz = getattr(props, "clock_rate", None)
    if clock_khz:
        peak = props.multi_processor_count * 128 * 2 * clock_khz * 1e3
        frac = flops / t["fused"] / peak
        lines.append(f"  fp32 FMA peak ~{peak / 1e12:.1f} TFLOP/s -> {frac:.0%} of it")
    mem_khz, bus_bits = (
        getattr(props, "memory_clock_rate", None),
        getattr(props, "memory_bus_width", None),
    )
    if mem_khz and bus_bits:
        bw = 2 * mem_khz * 1e3 * bus_bits / 8
        lines.append(
            f"  memory bandwidth peak ~{bw / 1e9:.0f} GB/s -> "
            f"{words * 4 / t['fused'] / bw:.1%} of it (compute-bound op)"
        )
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=timing.DEFAULT_ROUNDS, help="timed rounds")
    ap.add_argument("--quick", action="store_true", help="smaller scaling batch")
    ap.add_argument("--worker", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=2, help=argparse.SUPPRESS)
    machine.add_arguments(ap, "kernels-cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(args.worker, args.batch, args.steps)
        return

    compile_s = fresh_compile_seconds()
    results: dict = {
        "benchmark": "kernels",
        "machine": machine.describe(),
        "first_use_compile_seconds": compile_s,
        "network": "784-512-512-512-10 (^v^v)",
        "batch": args.batch,
        "rounds": args.rounds,
    }
    lines = [machine.header(results["machine"])]
    lines.append(
        f"First-use compile of the C kernel (fresh cache): {compile_s and round(compile_s, 2)} s"
    )
    B = args.batch
    times = time_variants(list(VARIANTS), B, args.rounds)
    mem = {v: peak_memory_mb(v, B, threads=args.threads) for v in VARIANTS}
    elems = B * elements_per_sample()
    ms = {v: timing.spread_ms(times[v]) for v in VARIANTS}
    ratios = {
        "naive_over_fused": timing.ratio(times, "naive", "fused"),
        "fused_over_relu": timing.ratio(times, "fused", "relu"),
    }
    results["ms"] = ms
    results["times_ms"] = {v: [1e3 * t for t in ts] for v, ts in times.items()}
    results["ratios"] = ratios
    results["peak_extra_rss_mb"] = {str(B): mem}
    lines += [
        "",
        f"Paper network 784-512-512-512-10 (^v^v), batch {B}, forward + backward "
        f"(all params, not x); {args.rounds} rounds, each one step of every variant (order "
        "rotated); median step [min-max]",
        "",
        "| variant | ms / batch [min-max] | G elem/s | s / 60k epoch | peak extra RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for v, label in VARIANTS.items():
        median = ms[v]["median"] / 1e3
        rate = f"{elems / median / 1e9:.2f}" if v != "relu" else "–"
        lines.append(
            f"| {label} | {ms[v]['median']:.1f} [{ms[v]['min']:.1f}-{ms[v]['max']:.1f}] | "
            f"{rate} | {median * EPOCH / B:.1f} | {mem[v]:.0f} |"
        )
    lines += [
        "",
        "Per-round ratios, median (min-max): naive / fused = "
        f"{timing.text(ratios['naive_over_fused'], 0, 'x')}; fused / ReLU = "
        f"{timing.text(ratios['fused_over_relu'], 1, 'x')}",
    ]

    big = 200 if args.quick else 400
    lines += [
        "",
        "Peak extra RSS vs batch (each in its own subprocess):",
        "",
        f"| variant | B={B} (MB) | B={big} (MB) | growth per extra sample (kB) |",
        "|---|---:|---:|---:|",
    ]
    results["peak_extra_rss_mb"][str(big)] = {}
    for v in ("naive", "fused"):
        m_big = peak_memory_mb(v, big, steps=1 if v == "naive" else 2, threads=args.threads)
        results["peak_extra_rss_mb"][str(big)][v] = m_big
        slope_kb = (m_big - mem[v]) * 1024 / (big - B)
        lines.append(f"| {VARIANTS[v]} | {mem[v]:.0f} | {m_big:.0f} | {slope_kb:.0f} |")
    sizes = (IN_FEATURES, *LAYERS)
    lines += [
        "",
        f"(per sample, B·M·N is {elements_per_sample():,} scaled distances, i.e. "
        f"{elements_per_sample() * 4 / 1024:.0f} kB per float32 copy; B·(N+M) summed over the "
        f"layers is {sum(a + b for a, b in zip(sizes, sizes[1:])):,} values, "
        f"{sum(a + b for a, b in zip(sizes, sizes[1:])) * 4 / 1024:.0f} kB per copy)",
    ]

    first = first_layer_ms(B, args.rounds)
    results["first_layer_ms"] = first
    rate = B * 784 * 512 / (first["forward_backward"]["median"] / 1e3) / 1e9
    lines += [
        "",
        f"First layer 784->512 alone, fused, batch {B}, median [min-max] of {args.rounds} calls: "
        f"forward {timing.text(first['forward'], 2, ' ms')}, forward + backward "
        f"{timing.text(first['forward_backward'], 2, ' ms')} ({rate:.1f} G elem/s)",
    ]
    if torch.cuda.is_available():
        lines += cuda_report(B, args.rounds)
    text = "\n".join(lines) + "\n"
    machine.publish(args.name, results, text, write=not args.no_save)


if __name__ == "__main__":
    main()
