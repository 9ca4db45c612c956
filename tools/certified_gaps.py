"""What limits a certified-trained net: certified vs attacked accuracy on the same images (the
looseness of the interval bounds) and certified accuracy on training vs test images (fit vs
generalisation).

    python -m tools.certified_gaps runs/longrun512 --limit 1000 --eps 0.1,0.3 --out gaps.json

For each eps: the certified accuracy (interval bounds, :func:`rbfi.bounds.certify`) and the
accuracy under sign PGD (margin loss, ``--steps`` steps, ``--restarts`` random starts) on the
first ``--limit`` test images; an image certified and broken at once would be a soundness bug
and is counted (must be 0). The gap PGD - certified bounds how much tighter bounds could gain;
the certified accuracy on the first ``--limit`` training images against the test images shows
whether the net fits the certified objective at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rbfi.models.zoo import recorded_ref


def pct(fraction: float) -> float:
    return round(100 * fraction, 2)


def gaps(run: str, limit: int, eps_list: list[float], steps: int, restarts: int) -> dict:
    from rbfi import load
    from rbfi.attacks import PGD
    from rbfi.bounds import certify
    from rbfi.data import checkpoint_data

    model = load(run).eval()
    x_test, y_test = checkpoint_data(run, "test", limit)[:2]
    x_train, y_train = checkpoint_data(run, "train", limit)[:2]
    with torch.no_grad():
        clean_test = (model(x_test).argmax(1) == y_test).float().mean().item()
        clean_train = (model(x_train).argmax(1) == y_train).float().mean().item()
    out = {
        "run": recorded_ref(run),
        "images": limit,
        "pgd": {"steps": steps, "restarts": restarts, "loss": "margin"},
        "clean_test": pct(clean_test),
        "clean_train": pct(clean_train),
        "eps": {},
    }
    for eps in eps_list:
        cert_test = certify(model, x_test, y_test, eps).certified
        cert_train = certify(model, x_train, y_train, eps).certified
        attack = PGD(model, eps, steps=steps, restarts=restarts, loss="margin", seed=0)
        x_adv = attack(x_test, y_test)
        with torch.no_grad():
            robust = model(x_adv).argmax(1) == y_test
        out["eps"][f"{eps:g}"] = {
            "certified_test": pct(cert_test.float().mean().item()),
            "certified_train": pct(cert_train.float().mean().item()),
            "pgd_test": pct(robust.float().mean().item()),
            "gap_pgd_minus_certified": pct(
                (robust.float().mean() - cert_test.float().mean()).item()
            ),
            "certified_but_broken": int((cert_test & ~robust).sum().item()),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="training run directory")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--eps", default="0.1,0.3")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    result = gaps(
        args.run, args.limit, [float(e) for e in args.eps.split(",")], args.steps, args.restarts
    )
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
