"""``rbfi info``: describe a checkpoint (after checking it like any load)."""

from __future__ import annotations

import argparse
import json

from rbfi.cli.options import add_common, checkpoint_ref

HELP = "describe a checkpoint"


def add_parser(sub) -> None:
    p = sub.add_parser("info", help=HELP, description=HELP)
    p.add_argument("checkpoint", type=checkpoint_ref, help="run directory or zoo:NAME")
    add_common(p, "threads", "json")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rbfi.bounds import lipschitz_constant
    from rbfi.data import trained_pixel_scale
    from rbfi.io.checkpoint import read_index
    from rbfi.models import load_model
    from rbfi.nn import RBFIConv2d, linf_layers, rbfi_layers

    index = read_index(args.checkpoint)
    model = load_model(args.checkpoint)  # every check of a load, before anything is printed
    if args.json:
        print(json.dumps({k: v for k, v in index.items() if not k.startswith("_")}))
        return 0
    params = sum(p.numel() for p in model.parameters())
    print(f"model      {model.describe()}  ({params:,} parameters, loss {model.loss})")
    config = model.config
    if config.dataset is not None:
        scale = trained_pixel_scale(index.get("training"), config.dataset)
        shape = "x".join(map(str, config.input_shape))
        print(f"data       {config.dataset} ({shape} images), pixels k / {scale}")
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
    for i, layer in enumerate(linf_layers(model)):
        parts = [f"{layer.out_features} l_inf-distance units, p = {layer.p:g}"]
        if layer.mean_shift:
            parts.append(
                f"mean shift (running mean in [{layer.running_mean.min():.3f}, "
                f"{layer.running_mean.max():.3f}])"
            )
        if layer.bias is not None:
            parts.append("bias")
        print(f"layer {i}    " + ", ".join(parts))
    lip = lipschitz_constant(model)
    if lip is not None:
        print(
            f"certify    logits are {lip:.4g}-Lipschitz in l_inf: margin > {2 * lip:.4g} eps "
            f"certifies eps (and interval bounds)"
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
