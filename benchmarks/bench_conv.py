"""Benchmark conv RBFI nets: their layers' G elem/s against the dense kernel's on the paper's MLP,
training steps against ReLU CNNs of the same shape, and peak memory against batch (issue 25).

- **layers**: every layer of the conv nets ``c16k5s2,c32k4s2,512,10`` and
  ``c32k5s2,c64k4s2,512,10`` (their conv layers through :class:`rbfi.nn.RBFIConv2d`: patches,
  the window padded to the kernel's SIMD width, the fused kernel, and back) and of the paper's
  784-512-512-512-10 MLP, timed as a training step runs them: the forward, and the forward +
  backward with the gradients a step needs (first layer: w and u only; later layers also the
  input's), plus the interval version of a certified step (forward with arg-maxes and the
  true-gradient backward). Throughput is B*P*M*N elements per second (P = output positions,
  1 for a dense layer; N the unpadded window). The *conv path* sums the conv layers of the first
  net; the *dense kernel* sums the MLP's four layers. Target: conv path >= 80% of the dense
  kernel's G elem/s.
- **steps**: one training step (objective, backward, optimiser step with the projection) of the
  two conv RBFI nets (^v^v), the ReLU CNNs of the same shapes and the paper's RBFI MLP, with the
  normal objective and with the certified one at full eps 0.3 (``rbfi train``'s certified
  defaults), on batches of 100 MNIST training images.
- **memory**: peak RSS growth (VmHWM) of one normal and one certified training step of the
  RBFI and ReLU CNN ``c16k5s2,c32k4s2,512,10``, each batch size in its own subprocess.

Every timed variant runs once per repetition, all variants interleaved and their order rotated
(``benchmarks/timing.py``), so load from other processes hits them alike; reported: the median
with the min-max over the repetitions. The report and the raw numbers go to
``benchmarks/results/conv-cpu.{md,json}`` (:mod:`machine`). On a machine shared with other work
prefer ``--threads 1``: with 2 threads every parallel region waits for a thread that other
processes keep off its core, and the timings measure that (a --threads 2 run at load average 5
on 2 cores gave medians 10-40x the minima).

    python benchmarks/bench_conv.py --threads 2          # 15 repetitions (layers 45), batch <= 400
    python benchmarks/bench_conv.py --threads 1 --quick  # 5 repetitions (layers 15), batch <= 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable

import machine
import timing
import torch

from rbfi.models import ModelConfig, build_model
from rbfi.nn import RBFI, RBFIConv2d
from rbfi.training import TrainConfig
from rbfi.training.loop import make_optimizer
from rbfi.training.objectives import make_objective

NETS = {
    "rbfi-conv": ("rbfi", "c16k5s2,c32k4s2,512,10"),
    "relu-conv": ("relu", "c16k5s2,c32k4s2,512,10"),
    "rbfi-conv-wide": ("rbfi", "c32k5s2,c64k4s2,512,10"),
    "relu-conv-wide": ("relu", "c32k5s2,c64k4s2,512,10"),
    "rbfi-mlp": ("rbfi", "512,512,512,10"),
}
TARGET = 0.8
CERTIFIED_EPS = 0.3


# --- layers -------------------------------------------------------------------------------------


def layer_cases(batch: int) -> list[dict]:
    """(name, layer, input shape, elements, first layer?) of every layer measured."""
    torch.manual_seed(0)
    cases = []
    for net in ("rbfi-conv", "rbfi-conv-wide", "rbfi-mlp"):
        model = build_model(ModelConfig(*NETS[net]))
        shape = model.config.input_shape if model.config.is_conv else (784,)
        first = True
        for position, layer in enumerate(m for m in model.body if isinstance(m, RBFI)):
            if isinstance(layer, RBFIConv2d):
                out_hw = layer.output_size(*shape[1:])
                positions, in_shape = out_hw[0] * out_hw[1], (batch, *shape)
                shape = (layer.out_channels, *out_hw)
            else:
                positions, in_shape = 1, (batch, layer.in_features)
            elements = batch * positions * layer.out_features * layer.in_features
            conv = isinstance(layer, RBFIConv2d)
            cases.append(
                {
                    "name": f"{net} layer {position + 1} ({'conv' if conv else 'dense'})",
                    "net": net,
                    "layer": layer,
                    "shape": in_shape,
                    "elements": elements,
                    "first": first,
                    "conv": conv,
                    "describe": (
                        f"{layer.in_channels}->{layer.out_channels} k{layer.kernel_size[0]} "
                        f"s{layer.stride[0]}: P {positions}, M {layer.out_features}, "
                        f"N {layer.in_features}"
                        if conv
                        else f"M {layer.out_features}, N {layer.in_features}"
                    ),
                }
            )
            first = False
    return cases


def layer_fns(case: dict) -> dict[str, Callable[[], None]]:
    layer = case["layer"]
    g = torch.Generator().manual_seed(1)
    x = torch.rand(case["shape"], generator=g)
    lo, hi = (x - 0.1).clamp(0, 1), (x + 0.1).clamp(0, 1)
    if not case["first"]:
        x.requires_grad_(True)
        lo.requires_grad_(True)
        hi.requires_grad_(True)

    def forward() -> None:
        layer(x)

    def train() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x).sum().backward()

    def interval() -> None:  # a certified step's: arg-maxes in the forward, true gradients
        layer.zero_grad(set_to_none=True)
        layer.pseudogradient = False
        try:
            y_lo, y_hi = layer.interval(lo, hi)
            (y_lo.sum() - y_hi.sum()).backward()
        finally:
            layer.pseudogradient = True

    return {"forward": forward, "train": train, "interval": interval}


def measure_layers(batch: int, reps: int, warmup: int) -> dict:
    cases = layer_cases(batch)
    fns = {}
    for case in cases:
        for kind, fn in layer_fns(case).items():
            fns[(case["name"], kind)] = fn
    times = timing.interleaved(fns, reps, warmup=warmup)
    rows = []
    for case in cases:
        row = {k: case[k] for k in ("name", "net", "elements", "first", "conv", "describe")}
        for kind in ("forward", "train", "interval"):
            ts = times[(case["name"], kind)]
            row[kind] = {
                "ms": timing.spread_ms(ts),
                "gelem_s": case["elements"] / statistics.median(ts) / 1e9,
                "seconds": ts,
            }
        rows.append(row)

    def path(select) -> dict:
        """G elem/s of the chosen layers together: elements over the median (and over the
        fastest) repetition's summed time."""
        chosen = [r for r in rows if select(r)]
        out = {"layers": [r["name"] for r in chosen], "fastest": {}}
        elements = sum(r["elements"] for r in chosen)
        for kind in ("forward", "train", "interval"):
            per_rep = [sum(ts) for ts in zip(*(r[kind]["seconds"] for r in chosen))]
            out[kind] = elements / statistics.median(per_rep) / 1e9
            out["fastest"][kind] = elements / min(per_rep) / 1e9
        return out

    paths = {
        "conv": path(lambda r: r["net"] == "rbfi-conv" and r["conv"]),
        "conv-wide": path(lambda r: r["net"] == "rbfi-conv-wide" and r["conv"]),
        "dense": path(lambda r: r["net"] == "rbfi-mlp"),
    }
    kinds = ("forward", "train", "interval")
    ratios, ratios_fastest = {}, {}
    for name in ("conv", "conv-wide"):
        ratios[name] = {k: paths[name][k] / paths["dense"][k] for k in kinds}
        fast, dense_fast = paths[name]["fastest"], paths["dense"]["fastest"]
        ratios_fastest[name] = {k: fast[k] / dense_fast[k] for k in kinds}
    return {
        "batch": batch,
        "rows": rows,
        "paths": paths,
        "ratios": ratios,
        "ratios_fastest": ratios_fastest,
    }


# --- training steps -----------------------------------------------------------------------------


class Step:
    """One net and objective on its own copy: ``__call__(x, y)`` is one training step."""

    def __init__(self, net: str, certified: bool, total_steps: int) -> None:
        arch, layers = NETS[net]
        extra = {"certified_eps": CERTIFIED_EPS} if certified else {}
        config = TrainConfig(model=ModelConfig(arch, layers), **extra)
        torch.manual_seed(0)
        self.model = build_model(config.model).train()
        self.optimizer = make_optimizer(config, self.model)
        self.objective = make_objective(config, total_steps)
        self.step_index = total_steps  # the end of any ramp: full eps and weight

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss, _ = self.objective(self.model, x, y, self.step_index)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def measure_steps(batch: int, reps: int, warmup: int) -> dict:
    from rbfi.data import load_mnist

    x_all, y_all = load_mnist("train")
    steps = {
        (net, regime): Step(net, regime == "certified", 1000)
        for net in NETS
        for regime in ("normal", "certified")
    }
    batches = [
        (x_all[k * batch : (k + 1) * batch], y_all[k * batch : (k + 1) * batch])
        for k in range(warmup + reps)
    ]
    batch_now = list(batches[0])  # the warm-up's; round r takes batch warmup + r

    def pick(r: int) -> None:
        batch_now[:] = batches[warmup + r]

    fns = {key: (lambda step=step: step(*batch_now)) for key, step in steps.items()}
    times = timing.interleaved(fns, reps, warmup=warmup, before_round=pick)
    out = {f"{net} {regime}": timing.spread_ms(ts) for (net, regime), ts in times.items()}
    medians = {key: statistics.median(ts) for key, ts in times.items()}
    ratios = {}
    for regime in ("normal", "certified"):
        for rbfi_net, relu_net in (
            ("rbfi-conv", "relu-conv"),
            ("rbfi-conv-wide", "relu-conv-wide"),
        ):
            ratios[f"{rbfi_net} / {relu_net} {regime}"] = (
                medians[(rbfi_net, regime)] / medians[(relu_net, regime)]
            )
        ratios[f"rbfi-conv / rbfi-mlp {regime}"] = (
            medians[("rbfi-conv", regime)] / medians[("rbfi-mlp", regime)]
        )
    return {"batch": batch, "ms": out, "ratios": ratios}


# --- memory -------------------------------------------------------------------------------------


def worker(net: str, regime: str, batch: int) -> None:
    """Subprocess body: print the peak RSS growth (MB) of one training step."""
    from bench_kernels import peak_rss_kb

    from rbfi.ops import cpu_kernel_available

    cpu_kernel_available()
    step = Step(net, regime == "certified", 1000)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(batch, 784, generator=g), torch.randint(0, 10, (batch,), generator=g)
    base = peak_rss_kb()
    step(x, y)
    print(json.dumps({"peak_mb": (peak_rss_kb() - base) / 1024.0}))


def measure_memory(batches: list[int], threads: int | None) -> dict:
    out: dict = {}
    for net in ("rbfi-conv", "relu-conv"):
        for regime in ("normal", "certified"):
            row = {}
            for batch in batches:
                cmd = [sys.executable, os.path.abspath(__file__), "--worker", net, regime]
                cmd += ["--batch", str(batch), "--no-save"]
                cmd += ["--threads", str(threads)] if threads else []
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                row[str(batch)] = json.loads(res.stdout.strip().splitlines()[-1])["peak_mb"]
            out[f"{net} {regime}"] = row
    return out


# --- report -------------------------------------------------------------------------------------


def to_markdown(results: dict) -> str:
    layers, steps, memory = results["layers"], results["steps"], results["memory"]
    lines = [machine.header(results["machine"]), ""]
    lines += [
        f"## Layers (batch {layers['batch']}; median ms (min-max) of {results['layer_reps']} "
        "repetitions, G elem/s = B*P*M*N / median)",
        "",
        "| layer | shape | forward ms | G/s | train fwd+bwd ms | G/s | interval fwd+bwd ms | G/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in layers["rows"]:
        cells = [r["name"], r["describe"]]
        for kind in ("forward", "train", "interval"):
            cells += [timing.text(r[kind]["ms"], 2), f"{r[kind]['gelem_s']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| path | forward G/s | train G/s | interval G/s |",
        "|---|---:|---:|---:|",
    ]
    for name, p in layers["paths"].items():
        lines.append(f"| {name} | {p['forward']:.2f} | {p['train']:.2f} | {p['interval']:.2f} |")
    lines += [
        "",
        "| ratio to the dense kernel (medians; fastest repetitions) | forward | train | interval |",
        "|---|---:|---:|---:|",
    ]
    for name, rr in layers["ratios"].items():
        ff = layers["ratios_fastest"][name]
        lines.append(
            f"| {name} | {rr['forward']:.2f}; {ff['forward']:.2f} | **{rr['train']:.2f}**; "
            f"{ff['train']:.2f} | {rr['interval']:.2f}; {ff['interval']:.2f} |"
        )
    train = layers["ratios"]["conv"]["train"]
    verdict = "met" if train >= TARGET else "NOT met"
    lines += [
        "",
        f"Target: the conv path (c16k5s2, c32k4s2) sustains >= {TARGET:.0%} of the dense "
        f"kernel's G elem/s in a training step: {train:.0%} ({verdict}; the fastest "
        f"repetitions: {layers['ratios_fastest']['conv']['train']:.0%}).",
        "",
        f"## Training steps (batch {steps['batch']} MNIST images; ms, median (min-max) of "
        f"{results['reps']})",
        "",
        "| net | normal step | certified step (eps 0.3) |",
        "|---|---:|---:|",
    ]
    for net, (arch, spec) in NETS.items():
        normal, cert = steps["ms"][f"{net} normal"], steps["ms"][f"{net} certified"]
        lines.append(f"| {net}: {arch} {spec} | {timing.text(normal)} | {timing.text(cert)} |")
    lines += ["", "| ratio (same run) | value |", "|---|---:|"]
    lines += [f"| {k} | {v:.2f}x |" for k, v in steps["ratios"].items()]
    batches = list(next(iter(memory.values())))
    lines += [
        "",
        "## Peak memory of one training step (MB of RSS growth, one subprocess each)",
        "",
        "| net, step | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for name, row in memory.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[b]:.0f}" for b in batches) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 repetitions, batches 50-200")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 15)")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    machine.add_arguments(ap, "conv-cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        worker(*args.worker, args.batch)
        return
    reps = args.reps or (5 if args.quick else 15)
    batches = [50, 100, 200] if args.quick else [50, 100, 200, 400]
    results = {"machine": machine.describe(), "reps": reps, "warmup": 2}
    results["layer_reps"] = 3 * reps  # a layer repetition is cheap: more of them
    results["layers"] = measure_layers(args.batch, 3 * reps, 2)
    results["steps"] = measure_steps(args.batch, reps, 2)
    results["memory"] = measure_memory(batches, args.threads)
    for row in results["layers"]["rows"]:  # the raw seconds stay, the module objects go
        for kind in ("forward", "train", "interval"):
            row[kind]["seconds"] = [round(s, 7) for s in row[kind]["seconds"]]
    text = to_markdown(results)
    machine.publish(args.name, results, text, write=not args.no_save)


if __name__ == "__main__":
    main()
