"""Benchmark a certified training step against a normal training step of the same net.

Network: the paper's 784-512-512-512-10 RBFI net, geometry ^v^v, AdaDelta, batch 100 real MNIST
training images (``rbfi train``'s defaults). A *step* is what the training loop does per batch
(:mod:`rbfi.training.loop`): the objective's loss, ``loss.backward()``, ``optimizer.step()``
(with the projection of u and w).

- normal: :class:`rbfi.training.objectives.Standard`, the paper's training (square error);
- certified: :class:`rbfi.training.objectives.Certified` at the end of its ramp (full eps and
  full weight of the worst-case loss: the most expensive point of a run), with ``rbfi train``'s
  certified defaults unless ``--certified-*`` options say otherwise;
- certified, weight 1: the same with ``certified_weight = 1`` (no clean loss term);
- certified, pseudo: the same with pseudogradients through the bounds (context).

Each variant trains its own copy of one initial net, variants interleaved step by step, so
load from other processes hits them alike; the ratio is the median certified step over the
median normal step of the same run. Per variant the median time of the three phases (the
objective's forward, the backward, the optimiser step) is recorded too, to show where the time
goes. The Markdown table is printed and written with the raw numbers (JSON) to
``benchmarks/results/``.

    python benchmarks/bench_certified_step.py                    # 2 threads, 15 reps
    python benchmarks/bench_certified_step.py --checkpoint zoo/rbfi512 --name certified-step-zoo
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

import rbfi
from rbfi.data import load_mnist
from rbfi.io.provenance import cpu_name
from rbfi.models import ModelConfig, build_model
from rbfi.training import TrainConfig
from rbfi.training.loop import make_optimizer
from rbfi.training.objectives import make_objective

LAYERS = (512, 512, 512, 10)
GEOMETRY = "^v^v"
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RATIO = 2.0
PHASES = ("objective", "backward", "optimizer")
LABELS = {
    "normal": "normal step (Standard objective)",
    "certified": "certified step (Certified objective, full eps and weight)",
    "certified_w1": "certified step, weight 1 (no clean term)",
    "certified_pseudo": "certified step, pseudogradients through the bounds",
}


class Variant:
    """One training regime on its own copy of the net: ``step(x, y)`` times its phases."""

    def __init__(self, config: TrainConfig, start: dict, total_steps: int) -> None:
        self.model = build_model(config.model, pseudogradient=config.pseudogradient).train()
        self.model.load_state_dict(start)
        self.optimizer = make_optimizer(config, self.model)
        self.objective = make_objective(config, total_steps)
        self.step_index = total_steps  # the end of any ramp: full eps, full weight
        self.times: dict[str, list[float]] = {phase: [] for phase in PHASES}

    def step(self, x: torch.Tensor, y: torch.Tensor, record: bool = True) -> None:
        t0 = time.perf_counter()
        loss, _ = self.objective(self.model, x, y, self.step_index)
        t1 = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        self.optimizer.step()
        t3 = time.perf_counter()
        if not torch.isfinite(loss):
            raise RuntimeError(f"{self.objective.describe()}: loss became {loss.item()}")
        if record:
            for phase, seconds in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2)):
                self.times[phase].append(seconds)

    def total_ms(self) -> list[float]:
        return [1e3 * sum(parts) for parts in zip(*self.times.values())]


def make_variants(args: argparse.Namespace, model_config: ModelConfig) -> dict[str, TrainConfig]:
    certified = {
        "certified_eps": args.eps,
        "certified_loss": args.certified_loss,
        "certified_gradient": args.certified_gradient,
    }
    if args.certified_weight is not None:
        certified["certified_weight"] = args.certified_weight
    configs = {
        "normal": TrainConfig(model=model_config),
        "certified": TrainConfig(model=model_config, **certified),
    }
    if configs["certified"].certified_weight != 1.0:
        configs["certified_w1"] = TrainConfig(
            model=model_config, **{**certified, "certified_weight": 1.0}
        )
    if args.certified_gradient != "pseudo" and not args.no_pseudo:
        configs["certified_pseudo"] = TrainConfig(
            model=model_config, **{**certified, "certified_gradient": "pseudo"}
        )
    return configs


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        start = rbfi.load(args.checkpoint)
        model_config = start.config
    else:
        model_config = ModelConfig(arch="rbfi", layers=LAYERS, geometry=GEOMETRY)
        torch.manual_seed(0)
        start = build_model(model_config)
    x_train, y_train = load_mnist("train")
    total_steps = 1000
    configs = make_variants(args, model_config)
    state = start.state_dict()
    variants = {name: Variant(config, state, total_steps) for name, config in configs.items()}
    load_before = os.getloadavg()
    for rep in range(args.warmup + args.reps):
        x, y = (t[rep * args.batch : (rep + 1) * args.batch] for t in (x_train, y_train))
        for variant in variants.values():
            variant.step(x, y, record=rep >= args.warmup)
    median = {name: statistics.median(v.total_ms()) for name, v in variants.items()}
    phases = {
        name: {p: 1e3 * statistics.median(ts) for p, ts in v.times.items()}
        for name, v in variants.items()
    }
    info = rbfi.ops.kernel_info()
    return {
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rbfi": rbfi.__version__,
        "simd_width": info["cpu"]["simd_width"],
        "network": model_config.to_json(),
        "start": args.checkpoint or "random initialisation (seed 0)",
        "batch": args.batch,
        "reps": args.reps,
        "warmup": args.warmup,
        "objectives": {name: v.objective.describe() for name, v in variants.items()},
        "median_ms": median,
        "phases_median_ms": phases,
        "times_ms": {name: v.total_ms() for name, v in variants.items()},
        "ratio": median["certified"] / median["normal"],
        "ratios": {name: median[name] / median["normal"] for name in median},
        "target_ratio": TARGET_RATIO,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
    }


def to_markdown(results: dict) -> str:
    net = results["network"]
    lines = [
        f"{results['cpu']}, {results['threads']} threads, torch {results['torch']}, "
        f"rbfi {results['rbfi']}",
        f"Net: {net['arch']} {'-'.join(map(str, [net['in_features'], *net['layers']]))} "
        f"({net['geometry']}), start: {results['start']}; batch {results['batch']} MNIST "
        f"training images; median of {results['reps']} steps after {results['warmup']} warm-up "
        f"steps, variants interleaved step by step",
        f"1-min load average before {results['loadavg_before'][0]:.2f}, after "
        f"{results['loadavg_after'][0]:.2f} (includes this run)",
        "",
        "| variant | objective | step ms | forward ms | backward ms | optimiser ms | ratio |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, ms in results["median_ms"].items():
        p = results["phases_median_ms"][name]
        ratio = f"{results['ratios'][name]:.2f}x"
        if name == "certified":
            ratio = f"**{ratio}**"
        lines.append(
            f"| {LABELS[name]} | {results['objectives'][name]} | {ms:.1f} | "
            f"{p['objective']:.1f} | {p['backward']:.1f} | {p['optimizer']:.1f} | {ratio} |"
        )
    verdict = "met" if results["ratio"] <= results["target_ratio"] else "NOT met"
    lines += [
        "",
        f"Target: certified step <= {results['target_ratio']:g}x the normal step; "
        f"{results['ratio']:.2f}x ({verdict}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--reps", type=int, default=15, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    ap.add_argument("--eps", type=float, default=0.3, help="certified_eps")
    ap.add_argument("--certified-loss", default="cross_entropy")
    ap.add_argument("--certified-gradient", default="true", choices=("true", "pseudo"))
    ap.add_argument("--certified-weight", type=float, default=None)
    ap.add_argument("--no-pseudo", action="store_true", help="skip the pseudogradient variant")
    ap.add_argument("--checkpoint", default=None, help="start from this run's weights")
    ap.add_argument("--no-save", action="store_true", help="print only, write no results")
    ap.add_argument("--name", default="certified-step-cpu", help="results file stem")
    args = ap.parse_args(argv)
    results = run(args)
    text = to_markdown(results)
    print(text)
    if not args.no_save:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"{args.name}.md").write_text(text)
        (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {RESULTS / args.name}.md and .json")


if __name__ == "__main__":
    main()
