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

Each variant trains its own copy of one initial net. Timings (``timing.py``): ``--warmup``
untimed steps of each, then ``--rounds`` rounds, each one step of every variant on the round's
batch, the order rotated, so that load from other processes hits them alike; per variant the
median step with its min-max, and each variant's ratio to the normal step per round, reported
as its median with min-max. Per variant the median time of the three phases (the objective's
forward, the backward, the optimiser step) is recorded too, to show where the time goes. The
Markdown table is printed and written with the raw numbers and the machine (JSON) to
``benchmarks/results/`` (``machine.py``).

    python benchmarks/bench_certified_step.py --threads 2        # 7 rounds
    python benchmarks/bench_certified_step.py --checkpoint zoo:rbfi512 --name certified-step-zoo
"""

from __future__ import annotations

import argparse
import statistics
import time

import machine
import timing
import torch

import rbfi
from rbfi.data import load_mnist
from rbfi.models import ModelConfig, build_model
from rbfi.training import TrainConfig
from rbfi.training.loop import make_optimizer
from rbfi.training.objectives import make_objective

LAYERS = (512, 512, 512, 10)
GEOMETRY = "^v^v"
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
    batch: list[torch.Tensor] = []

    def take(index: int) -> None:  # the batch of step ``index`` (warm-up steps first)
        batch[:] = [t[index * args.batch : (index + 1) * args.batch] for t in (x_train, y_train)]

    for step in range(args.warmup):
        take(step)
        for variant in variants.values():
            variant.step(*batch, record=False)
    times = timing.interleaved(
        {name: (lambda v=v: v.step(*batch)) for name, v in variants.items()},
        args.rounds,
        warmup=0,
        before_round=lambda r: take(args.warmup + r),
    )
    phases = {
        name: {p: 1e3 * statistics.median(ts) for p, ts in v.times.items()}
        for name, v in variants.items()
    }
    return {
        "benchmark": "certified_step",
        "machine": machine.describe(),
        "network": model_config.to_json(),
        "start": args.checkpoint or "random initialisation (seed 0)",
        "batch": args.batch,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "objectives": {name: v.objective.describe() for name, v in variants.items()},
        "ms": {name: timing.spread_ms(ts) for name, ts in times.items()},
        "phases_median_ms": phases,
        "times_ms": {name: [1e3 * t for t in ts] for name, ts in times.items()},
        "ratios": {name: timing.ratio(times, name, "normal") for name in times},
        "target_ratio": TARGET_RATIO,
    }


def to_markdown(results: dict) -> str:
    net = results["network"]
    lines = [
        machine.header(results["machine"]),
        f"Net: {net['arch']} {'-'.join(map(str, [net['in_features'], *net['layers']]))} "
        f"({net['geometry']}), start: {results['start']}; batch {results['batch']} MNIST "
        f"training images; {results['warmup']} warm-up steps, then {results['rounds']} rounds, "
        "each one step of every variant (order rotated)",
        f"1-min load average before {results['machine']['loadavg_before'][0]:.2f}",
        "",
        "| variant | objective | step ms: median [min-max] | forward ms | backward ms "
        "| optimiser ms | ratio per round: median (min-max) |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, ms in results["ms"].items():
        p = results["phases_median_ms"][name]
        ratio = timing.text(results["ratios"][name], 2, "x") if name != "normal" else ""
        if name == "certified":
            ratio = f"**{ratio}**"
        lines.append(
            f"| {LABELS[name]} | {results['objectives'][name]} | "
            f"{ms['median']:.1f} [{ms['min']:.1f}-{ms['max']:.1f}] | "
            f"{p['objective']:.1f} | {p['backward']:.1f} | {p['optimizer']:.1f} | {ratio} |"
        )
    certified = results["ratios"]["certified"]
    verdict = "met" if certified["median"] <= results["target_ratio"] else "NOT met"
    lines += [
        "",
        f"Target: certified step <= {results['target_ratio']:g}x the normal step (median); "
        f"{timing.text(certified, 2, 'x')} ({verdict}).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=timing.DEFAULT_ROUNDS, help="timed rounds")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    ap.add_argument("--eps", type=float, default=0.3, help="certified_eps")
    ap.add_argument("--certified-loss", default="cross_entropy")
    ap.add_argument("--certified-gradient", default="true", choices=("true", "pseudo"))
    ap.add_argument("--certified-weight", type=float, default=None)
    ap.add_argument("--no-pseudo", action="store_true", help="skip the pseudogradient variant")
    ap.add_argument("--checkpoint", default=None, help="start from this run's weights")
    machine.add_arguments(ap, "certified-step-cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads or 2)
    results = run(args)
    text = to_markdown(results)
    machine.publish(args.name, results, text, write=not args.no_save)


if __name__ == "__main__":
    main()
