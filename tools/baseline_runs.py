"""The baselines' numbers from run directories trained and evaluated by hand (docs/baselines.md):
a Markdown table, its JSON and the learning curves, every accuracy with n and its 95%
Clopper-Pearson interval.

Each run directory holds the training run (``checkpoint.json``, ``metrics.jsonl``) and

- ``attack-pgd/robustness.json``: ``rbfi attack`` with sign PGD (CE and margin losses) and the
  certificates on the first n_1 test images;
- ``attack-apgd/robustness.json`` (optional): ``rbfi attack --attacks autoattack`` on the first
  n_2 <= n_1 images. The worst case over PGD and APGD is taken per example on those n_2.

    python -m tools.baseline_runs NAME=RUN_DIR ... --out results/baselines

A net's target (issue 15's: docs/baselines.md) is the one the ``baselines`` item of ``rbfi
reproduce`` judges it by: :func:`rbfi.experiments.paper.baselines.target_of`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import rbfi.stats as stats
from rbfi.evaluation.curves import learning_curves_png, load_metrics
from rbfi.evaluation.results import row_flags
from rbfi.experiments.paper.baselines import target_of
from rbfi.experiments.render import table
from rbfi.io import atomic_write_bytes, atomic_write_json
from rbfi.io.paths import portable_path
from rbfi.training.health import run_health

EPS = ("0.1", "0.2", "0.3")
RECIPE_KEYS = (
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "lr_schedule",
    "lr_decay_at",
    "adversarial",
    "adv_eps",
    "adv_eps_ramp",
    "adv_steps",
    "adv_alpha",
    "trades_beta",
    "certified_eps",
    "certified_warmup",
    "certified_ramp",
    "certified_weight",
    "certified_loss",
    "certified_scale",
    "pixel_scale",
)


def target(net: dict) -> tuple[str, stats.Verdict] | None:
    """The target of ``net``'s recipe (:func:`~rbfi.experiments.paper.baselines.target_of`) and
    its verdict on the measured numbers (an under-trained or failed net leaves it undecided),
    or None for a net without one."""
    goal = target_of(net["recipe"])
    if goal is None:
        return None
    data = net.get(goal.kind, {}).get(f"{goal.eps:g}")
    if data is None:
        return goal.text(), stats.Verdict(stats.UNDECIDED, f"no {goal.kind} result at {goal.eps:g}")
    health = net["health"]
    doubts = [] if health["status"] == "converged" else [stats.Doubt("the net", health["status"])]
    return goal.text(), goal.judge(stats.Estimate.from_json(data), doubts)


def estimate(flags: Sequence[bool]) -> dict:
    return stats.proportion(sum(flags), len(flags)).to_json()


def summarise_run(run_dir: str | Path) -> dict:
    """One run's recipe, training time and health, and its accuracies (estimates' JSON)."""
    run_dir = Path(run_dir)
    index = json.loads((run_dir / "checkpoint.json").read_text())
    training = index.get("training") or {}
    metrics = load_metrics(run_dir)
    health = run_health(run_dir, index)
    pgd = json.loads((run_dir / "attack-pgd" / "robustness.json").read_text())
    n1 = int(pgd["n_examples"])
    clean = [p == y for p, y in zip(pgd["clean_predictions"], pgd["labels"])]
    out = {
        "run": portable_path(run_dir),
        "model": index["model"] if "model" in index else training.get("model"),
        "recipe": {k: training[k] for k in RECIPE_KEYS if training.get(k) is not None},
        "epochs": len(metrics),
        "train_seconds": sum(m.get("train_seconds", 0.0) for m in metrics),
        "final_test_accuracy": metrics[-1]["test_accuracy"],
        "health": health.to_json(),
        "clean": estimate(clean),
        "pgd": {e: estimate(row_flags(pgd["worst_case"][e])) for e in EPS},
        "certified": {e: estimate(row_flags(pgd["certified"][e])) for e in EPS}
        if pgd.get("certified")
        else {},
        "pgd_attacks": sorted(pgd["results"]),
        "pgd_budget": "{pgd_steps} steps x {pgd_restarts} restart(s)".format(
            **pgd["settings"]["options"]
        ),
        "n_pgd": n1,
    }
    apgd_file = run_dir / "attack-apgd" / "robustness.json"
    if apgd_file.is_file():
        apgd = json.loads(apgd_file.read_text())
        n2 = int(apgd["n_examples"])
        if n2 > n1 or apgd["labels"] != pgd["labels"][:n2]:
            raise ValueError(f"{apgd_file}: not the first {n2} images of the PGD evaluation")
        out["n_worst"] = n2
        out["apgd"] = {e: estimate(row_flags(apgd["worst_case"][e])) for e in EPS}
        pgd_flags = {e: row_flags(pgd["worst_case"][e])[:n2] for e in EPS}
        apgd_flags = {e: row_flags(apgd["worst_case"][e]) for e in EPS}
        out["worst"] = {
            e: estimate([a and b for a, b in zip(pgd_flags[e], apgd_flags[e])]) for e in EPS
        }
        out["pgd_on_worst_images"] = {
            e: estimate(row_flags(pgd["worst_case"][e])[:n2]) for e in EPS
        }
    return out


def text(data: dict) -> str:
    return stats.Estimate.from_json(data).text()


def markdown(nets: dict[str, dict]) -> str:
    headers = ["network", "n (PGD / APGD)", "clean", "trained?"]
    headers += [f"PGD {e}" for e in EPS] + [f"PGD+APGD {e}" for e in EPS]
    headers += [f"certified {e}" for e in EPS] + ["epochs", "training (min)", "target"]
    rows = []
    for name, net in nets.items():
        health = net["health"]
        trained = "yes" if health["status"] == "converged" else f"**{health['status']}**"
        worst = net.get("worst", {})
        rows.append(
            [name, f"{net['n_pgd']} / {net.get('n_worst', '–')}", text(net["clean"]), trained]
            + [text(net["pgd"][e]) for e in EPS]
            + [text(worst[e]) if e in worst else "–" for e in EPS]
            + [text(net["certified"][e]) if e in net["certified"] else "–" for e in EPS]
            + [str(net["epochs"]), f"{net['train_seconds'] / 60:.1f}"]
            + [_target_cell(net)]
        )
    n_pgd = sorted({n["n_pgd"] for n in nets.values()})
    n_worst = sorted({n["n_worst"] for n in nets.values() if "n_worst" in n})
    budgets = "/".join(sorted({n["pgd_budget"] for n in nets.values()}))
    notes = [
        f"Accuracy in % [95% Clopper-Pearson interval]. Clean, PGD (worst of sign PGD-CE and "
        f"PGD-margin, {budgets}) and certified (interval bounds) on the first "
        f"{'/'.join(map(str, n_pgd))} test images; PGD+APGD: the worst case per example over "
        f"those and AutoAttack's APGD-CE + APGD-T on the first "
        f"{'/'.join(map(str, n_worst)) or '–'}. Health: rbfi.training.health.",
    ]
    for name, net in nets.items():
        health = net["health"]
        if health["status"] != "converged":
            notes.append(f"- {name}: {health['status']}: " + "; ".join(health["reasons"]))
    return "\n\n".join([table(headers, rows), "\n".join(notes)])


def _target_cell(net: dict) -> str:
    decided = target(net)
    if decided is None:
        return "–"
    claim, verdict = decided
    return f"{claim}: {verdict.status} ({verdict.reason})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.baseline_runs",
        description="tables and learning curves of hand-trained baseline runs",
    )
    parser.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--title", default="ReLU 512^3 baselines: learning curves")
    args = parser.parse_args(argv)
    if not all("=" in item for item in args.runs):
        parser.error("each run is NAME=RUN_DIR")
    runs = dict(item.split("=", 1) for item in args.runs)
    try:
        nets = {name: summarise_run(path) for name, path in runs.items()}
    except (OSError, ValueError, KeyError) as error:
        print(f"baseline_runs: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    for net in nets.values():
        decided = target(net)
        if decided is not None:
            claim, verdict = decided
            net["target"] = {"claim": claim, "status": verdict.status, "reason": verdict.reason}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "summary.json", nets)
    atomic_write_bytes(out / "summary.md", (markdown(nets) + "\n").encode())
    curves = {name: load_metrics(path) for name, path in runs.items()}
    atomic_write_bytes(
        out / "learning-curves.png",
        learning_curves_png(curves, title=args.title),
    )
    print(f"wrote {out}/summary.md, summary.json, learning-curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
