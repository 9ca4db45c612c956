"""The ``rbfi`` command line: train, eval, info, attack.

Errors in what the user gave (options, files, checkpoints, data) print one line
``rbfi: error: ...`` and exit 2, before anything on disk is touched.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from rbfi.argtypes import float_pair, positive_float, positive_int
from rbfi.models import ARCHITECTURES

EXIT_USAGE = 2
EXIT_FAILED = 1


class UsageError(ValueError):
    pass


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump)."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(message)


# --- commands -----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from rbfi.train import TrainConfig, train

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        arch=args.model,
        layers=args.layers,
        geometry=args.geometry,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        rho=args.rho,
        loss=args.loss,
        seed=args.seed,
        u_bounds=args.u_bounds,
        w_bounds=args.w_bounds,
        pseudogradient=not args.true_gradients,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        data_dir=args.data_dir,
        device=args.device,
    )
    if config.arch not in ("rbfi", "rbf") and args.geometry is not None:
        raise UsageError(f"--geometry applies to rbfi and rbf models only, not {config.arch!r}")
    train(config, args.out, resume=args.resume, progress=not args.no_progress)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import rbfi
    from rbfi.data import load_mnist
    from rbfi.train import evaluate

    model = rbfi.load(args.checkpoint, map_location=args.device)
    x, y = load_mnist("test", args.data_dir)
    if args.limit:
        x, y = x[: args.limit], y[: args.limit]
    result = evaluate(model, x.to(args.device), y.to(args.device), model.loss, args.batch_size)
    result = {"checkpoint": str(args.checkpoint), "images": len(x), **result}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"clean test accuracy {result['accuracy']:.4f} on {len(x)} images")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from rbfi import checkpoint
    from rbfi.models import describe
    from rbfi.nn import rbfi_layers

    index = checkpoint.read_index(args.checkpoint)
    model = checkpoint.load_model(args.checkpoint)
    if args.json:
        print(json.dumps({k: v for k, v in index.items() if not k.startswith("_")}))
        return 0
    params = sum(p.numel() for p in model.parameters())
    print(f"model      {describe(model)}  ({params:,} parameters, loss {model.loss})")
    print(f"epoch      {index['epoch']}  (resumable: {'yes' if index.get('state') else 'no'})")
    for i, layer in enumerate(rbfi_layers(model)):
        n_or = int(layer.is_or.sum())
        u = layer.u.detach()
        print(
            f"layer {i}    {layer.kind:5s} {layer.out_features} units ({n_or} Or), "
            f"u in [{u.min():.3f}, {u.max():.3f}] of bounds {tuple(layer.u_bounds.tolist())}"
        )
    training = index.get("training", {})
    if training:
        keys = ("epochs", "batch_size", "lr", "loss", "seed", "pseudogradient")
        print("training   " + ", ".join(f"{k}={training.get(k)}" for k in keys))
    if index.get("metrics"):
        last = index["metrics"][-1]
        print(f"last epoch test accuracy {last['test_accuracy']:.4f}, loss {last['test_loss']:.4f}")
    print("versions   " + ", ".join(f"{k} {v}" for k, v in index.get("versions", {}).items()))
    return 0


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="rbfi", description=__doc__.splitlines()[0])
    from rbfi import __version__

    parser.add_argument("--version", action="version", version=f"rbfi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)

    p = sub.add_parser("train", help="train a model on MNIST")
    p.add_argument("--model", choices=ARCHITECTURES, default="rbfi")
    p.add_argument("--layers", default="512,512,512,10", help="units per layer, e.g. 512,512,10")
    p.add_argument("--geometry", default=None, help="rbfi/rbf only: ^ And, v Or, * mixed per layer")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=100)
    p.add_argument("--lr", type=positive_float, default=None, help="default 5 (rbfi), 1 (others)")
    p.add_argument("--rho", type=float, default=0.9, help="AdaDelta decay")
    p.add_argument("--loss", choices=("square", "cross_entropy"), default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--u-bounds", type=float_pair, default=(0.01, 3.0), metavar="LOW,HIGH")
    p.add_argument("--w-bounds", type=float_pair, default=(0.0, 1.0), metavar="LOW,HIGH")
    p.add_argument("--true-gradients", action="store_true", help="train without pseudogradients")
    p.add_argument("--train-limit", type=positive_int, default=None)
    p.add_argument("--test-limit", type=positive_int, default=None)
    p.add_argument("--data-dir", default=None, help="directory of MNIST IDX files")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=positive_int, default=None)
    p.add_argument("--out", required=True, help="run directory (checkpoint, metrics.jsonl)")
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out (start it if absent)"
    )
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("eval", help="clean test accuracy of a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--limit", type=positive_int, default=None)
    p.add_argument("--batch-size", type=positive_int, default=1000)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_eval)

    p = sub.add_parser("info", help="describe a checkpoint")
    p.add_argument("checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_info)

    _add_attack_parser(sub)
    return parser


def _add_attack_parser(sub) -> None:
    try:
        from rbfi.experiments.robustness import add_attack_arguments, run_attack_command
    except ImportError:  # the attack suite is optional at import time
        return
    p = sub.add_parser("attack", help="robustness evaluation under a suite of attacks")
    add_attack_arguments(p)
    p.set_defaults(handler=run_attack_command)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except KeyboardInterrupt:
        print("rbfi: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, FileNotFoundError, PermissionError, IsADirectoryError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"rbfi: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - anything else failed at run time, not usage
        from rbfi.train import TrainingDiverged

        if isinstance(exc, TrainingDiverged):
            print(f"rbfi: training stopped: {exc}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
