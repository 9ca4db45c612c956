"""``rbfi info``: describe a checkpoint (after checking it like any load)."""

from __future__ import annotations

import argparse
import json

from rbfi.cli.options import add_common, checkpoint_ref

HELP = "describe a checkpoint"


def add_parser(sub) -> None:
    p = sub.add_parser("info", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_common(p, "json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.io.checkpoint import read_index
    from rbfi.models import load_model
    from rbfi.nn import RBFIConv2d, rbfi_layers

    index = read_index(args.checkpoint)
    model = load_model(args.checkpoint)  # every check of a load, before anything is printed
    if args.json:
        print(json.dumps({k: v for k, v in index.items() if not k.startswith("_")}))
        return 0
    params = sum(p.numel() for p in model.parameters())
    print(f"model      {model.describe()}  ({params:,} parameters, loss {model.loss})")
    print(f"epoch      {index['epoch']}  (resumable: {'yes' if index.get('state') else 'no'})")
    for i, layer in enumerate(rbfi_layers(model)):
        n_or = int(layer.is_or.sum())
        u = layer.u.detach()
        units = f"{layer.out_features} units"
        if isinstance(layer, RBFIConv2d):
            (kh, kw), (sh, sw) = layer.kernel_size, layer.stride
            units = f"{layer.out_channels} channels ({kh}x{kw} kernel, stride {sh}x{sw})"
        print(
            f"layer {i}    {layer.kind:5s} {units} ({n_or} Or), "
            f"u in [{u.min():.3f}, {u.max():.3f}] of bounds {tuple(layer.u_bounds.tolist())}"
        )
    training = index.get("training", {})
    if training:
        keys = ("epochs", "batch_size", "lr", "loss", "seed", "pseudogradient")
        print("training   " + ", ".join(f"{k}={training.get(k)}" for k in keys))
    if index.get("metrics"):
        last = index["metrics"][-1]
        if "test_accuracy" in last and "test_loss" in last:
            print(
                f"last epoch test accuracy {last['test_accuracy']:.4f}, "
                f"loss {last['test_loss']:.4f}"
            )
    print("versions   " + ", ".join(f"{k} {v}" for k, v in index.get("versions", {}).items()))
    return 0
