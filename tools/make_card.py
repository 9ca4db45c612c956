"""Put a trained net into the model zoo: copy its checkpoint to ``zoo/NAME/`` and measure its
model card (``card.json``, :data:`rbfi.models.zoo.CARD_SCHEMA`). Every number of the card is
measured or read from the run's own files here; nothing is typed by hand.

    python -m tools.make_card runs/rbfi512 --name rbfi512 --trained-threads 2 \\
        --description "the paper's normally trained RBFI net" \\
        --strong-suite results/zoo-strong/rbfi512/robustness.json

What it does, in order (it refuses, before writing anything, a bad run, a taken name without
``--overwrite``, a net over the size limits, or a strong-suite result of another net). Any
net rbfi builds goes: MLPs, conv nets (docs/conv.md) and l_inf-distance nets alike.

1. check the size limits (10 MB a weights file, 80 MB of weights in the whole zoo:
   :data:`rbfi.models.zoo.ZOO_BUDGET`); copy the weights file byte for byte and
   ``checkpoint.json`` without the optimiser state (the zoo holds weights, not resumable runs)
   and ``metrics.jsonl``; load the copy with every check of a load;
2. the training command, generated from the checkpoint's training settings and checked by
   parsing it back with ``rbfi train``'s parser into the very same settings; the training wall
   time (the sum of the epochs' train and eval seconds in the checkpoint's metrics);
3. on the test set at the training pixel scale: clean accuracy, and the certified accuracy at
   eps 0.1, 0.2, 0.3 (interval bounds, :func:`rbfi.bounds.certify`);
4. the flags of the first 200 test images (clean correct, certified per eps), packed as hex,
   and the smallest |margin| among them per eps (how far the closest one is from flipping);
5. the strong suite's worst case from an ``rbfi attack`` result (``--strong-suite``), after
   checking it was made on this net: its labels and clean predictions must be this net's on
   the same images; or ``--no-strong-suite REASON``; results of single attacks
   (``--attack-result``, checked alike) go to ``other_attacks``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from rbfi.bounds import certify
from rbfi.data import checkpoint_test_set, trained_pixel_scale
from rbfi.evaluation.results import row_flags
from rbfi.io import atomic_write_json, sha256_file, versions
from rbfi.io.checkpoint import INDEX_NAME, read_index
from rbfi.io.paths import portable_path
from rbfi.io.provenance import cpu_name
from rbfi.models import describe, load_model, model_config_of, predict
from rbfi.models.zoo import (
    CARD_EPS,
    CARD_NAME,
    CARD_SCHEMA,
    NAME_PATTERN,
    RECHECK_EXAMPLES,
    WEIGHTS_LIMIT,
    ZOO_BUDGET,
    pack_flags,
    weights_bytes,
)
from rbfi.training import TrainConfig

REPOSITORY = Path(__file__).resolve().parents[1]
METRICS_NAME = "metrics.jsonl"
# written even at their default value: what a command must say to stay exact if defaults change
ALWAYS_WRITTEN = ("arch", "layers", "geometry", "epochs", "pixel_scale")


class CardError(ValueError):
    """The run, the name or a result file cannot make a card."""


# --- the training command ----------------------------------------------------------------------


def _text(value) -> str:
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _option_args(config) -> list[tuple[str, object, list[str]]]:
    """(name, default, args) per command-line field of ``config`` (nested configs included) whose
    value differs from the field's declared default, and those of :data:`ALWAYS_WRITTEN`."""
    out = []
    for f in dataclasses.fields(config):
        value, meta = getattr(config, f.name), f.metadata
        if dataclasses.is_dataclass(value):
            out += _option_args(value)
            continue
        if "kind" not in meta or not meta["cli"] or value is None:
            continue
        if value == f.default and f.name not in ALWAYS_WRITTEN:
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            out.append((f.name, f.default, [flag]))  # the flag flips the default
        else:
            out.append((f.name, f.default, [flag, _text(value)]))
    return out


def _parse_train(args: list[str]) -> TrainConfig:
    from rbfi.cli import build_parser
    from rbfi.cli.options import config_from_args

    namespace = build_parser().parse_args(["train", *args, "--out", "-"])
    return config_from_args(TrainConfig, namespace)


def training_command(config: TrainConfig, out: str, threads: int | None) -> str:
    """``rbfi train ...`` that trains ``config``: the architecture, epochs and pixel scale, and
    every other field off its default, less those that a default of None resolves to anyway
    (e.g. the lr of the optimiser); checked by parsing the command back into ``config``."""
    pairs = _option_args(config)
    for i in reversed(range(len(pairs))):
        name, default, _ = pairs[i]
        if default is None and name not in ALWAYS_WRITTEN:  # resolved: keep only if it matters
            trial = [a for k, (*_, args) in enumerate(pairs) if k != i for a in args]
            if _parse_train(trial) == config:
                del pairs[i]
    args = [a for *_, arg_list in pairs for a in arg_list]
    if _parse_train(args) != config:
        raise CardError("the generated training command does not reproduce the settings")
    tail = (["--threads", str(threads)] if threads else []) + ["--out", out]
    return shlex.join(["rbfi", "train", *args, *tail])


# --- the card ----------------------------------------------------------------------------------


def copy_run(run: Path, dest: Path) -> dict:
    """Copy the checkpoint of ``run`` (weights byte for byte, the index without the optimiser
    state, the metrics) into ``dest``; returns the copied index, read back with its checks."""
    index = read_index(run)
    dest.mkdir(parents=True, exist_ok=True)
    weights = index["weights"]["file"]
    for stale in dest.glob("weights-*.safetensors"):
        if stale.name != weights:
            stale.unlink()
    shutil.copyfile(run / weights, dest / weights)
    if sha256_file(dest / weights) != index["weights"]["sha256"]:
        raise CardError(f"copying {run / weights} changed it (checksum mismatch)")
    copied = {k: v for k, v in index.items() if k not in ("_dir", "state")}
    atomic_write_json(dest / INDEX_NAME, copied)
    if (run / METRICS_NAME).is_file():
        shutil.copyfile(run / METRICS_NAME, dest / METRICS_NAME)
    return read_index(dest)


def read_attack_result(path: Path, model, x, y, pixel_scale: int) -> dict:
    """An ``rbfi attack`` result (robustness.json), checked to be of this net: same pixel scale,
    the first n test images, this net's clean predictions on them."""
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CardError(f"cannot read {path}: {exc}") from None
    settings = result.get("settings", {})
    if settings.get("pixel_scale", pixel_scale) != pixel_scale:
        raise CardError(
            f"{path} ran on pixels k / {settings['pixel_scale']}, not k / {pixel_scale}"
        )
    n = int(result["n_examples"])
    if result["labels"] != y[:n].tolist():
        raise CardError(f"{path} was not made on the first {n} test images")
    if result["clean_predictions"] != predict(model, x[:n]).tolist():
        raise CardError(f"{path} was made on another net (its clean predictions differ)")
    return result


def strong_suite_entry(path: Path, model, x, y, flags: dict, pixel_scale: int) -> dict:
    """The card's ``strong_suite`` from a run of the whole strong suite on this net."""
    result = read_attack_result(path, model, x, y, pixel_scale)
    settings = result.get("settings", {})
    if settings.get("suite") != "strong":
        raise CardError(f"{path} is not a strong-suite result (suite {settings.get('suite')!r})")
    if settings.get("attacks"):
        raise CardError(f"{path} ran only {', '.join(settings['attacks'])} of the strong suite")
    missing = [e for e in CARD_EPS if e not in result["worst_case"]]
    if missing:
        raise CardError(f"{path} has no worst case at eps {', '.join(missing)}")
    n = int(result["n_examples"])
    robust = {e: torch.tensor(row_flags(result["worst_case"][e])) for e in CARD_EPS}
    certified = {e: torch.tensor(flags[e][:n]) for e in CARD_EPS}
    for e in CARD_EPS:  # a certificate is a lower bound: no attack may break a certified image
        broken = (certified[e] & ~robust[e]).nonzero().flatten().tolist()
        if broken:
            raise CardError(
                f"{path}: the strong suite broke {len(broken)} image(s) certified at eps {e} "
                f"(first: test image {broken[0]}): the bounds or the attack are wrong"
            )
    return {
        "n_examples": n,
        "worst_case": {e: result["worst_case"][e]["accuracy"] for e in CARD_EPS},
        "certified_same_images": {e: sum(flags[e][:n]) / n for e in CARD_EPS},
        # the gap, in images: no attack broke them, the bounds do not certify them
        "robust_not_certified": {e: int((robust[e] & ~certified[e]).sum()) for e in CARD_EPS},
        "source": portable_path(path),
        "seconds": float(result["seconds"]),
        # the budgets it ran with (e.g. AutoAttack "apgd": its APGD-CE + APGD-T part only)
        "options": settings.get("options", {}),
    }


def other_attacks_entry(path: Path, model, x, y, pixel_scale: int) -> dict:
    """A card's ``other_attacks`` item: the worst case of some attacks (not the whole strong
    suite) on this net, at the eps of the card it has."""
    result = read_attack_result(path, model, x, y, pixel_scale)
    settings = result.get("settings", {})
    worst = {e: result["worst_case"][e]["accuracy"] for e in CARD_EPS if e in result["worst_case"]}
    if not worst:
        raise CardError(f"{path} has no worst case at eps {', '.join(CARD_EPS)}")
    version = (settings.get("options") or {}).get("autoattack")
    attacks = [  # AutoAttack's version matters: "apgd" is only its APGD part
        f"{a} ({version})" if a == "autoattack" and version else a
        for a in settings.get("attacks") or [f"suite {settings.get('suite')}"]
    ]
    return {
        "attacks": attacks,
        "n_examples": int(result["n_examples"]),
        "worst_case": worst,
        "source": portable_path(path),
    }


def wall_seconds(metrics: list[dict]) -> float | None:
    """The training wall time: the sum of the epochs' train and eval seconds (None when an
    epoch did not record them)."""
    if not metrics or not all("train_seconds" in m for m in metrics):
        return None
    return sum(m.get("train_seconds", 0.0) + m.get("eval_seconds", 0.0) for m in metrics)


def check_request(args: argparse.Namespace) -> tuple[dict, nn.Module]:
    """The run's index and its net, loaded once with every check of a load; refuses (before
    anything is written) a bad run, a taken name without ``--overwrite`` and a request with
    neither ``--strong-suite`` nor ``--no-strong-suite``."""
    index = read_index(args.run)
    model = load_model(args.run)
    if (Path(args.zoo) / args.name / CARD_NAME).exists() and not args.overwrite:
        raise CardError(f"{Path(args.zoo) / args.name} already holds a card; use --overwrite")
    check_size(Path(args.run) / index["weights"]["file"], Path(args.zoo), args.name)
    if args.strong_suite is None and not args.no_strong_suite:
        raise CardError("give --strong-suite ROBUSTNESS_JSON or --no-strong-suite REASON")
    return index, model


def check_size(weights: Path, zoo: Path, name: str) -> None:
    """Refuse a weights file over :data:`~rbfi.models.zoo.WEIGHTS_LIMIT`, or one that would
    take the zoo's weights over :data:`~rbfi.models.zoo.ZOO_BUDGET` (the net it replaces, if
    any, not counted)."""
    size = weights.stat().st_size
    if size > WEIGHTS_LIMIT:
        raise CardError(
            f"{weights.name} has {size / 2**20:.1f} MB, over the zoo's {WEIGHTS_LIMIT / 2**20:g} "
            "MB per net"
        )
    others = weights_bytes(zoo, without=name) if zoo.is_dir() else 0
    if others + size > ZOO_BUDGET:
        raise CardError(
            f"the zoo would hold {(others + size) / 2**20:.1f} MB of weights, over its budget "
            f"of {ZOO_BUDGET / 2**20:g} MB ({others / 2**20:.1f} MB there already)"
        )


def measure(model: nn.Module, x, y, batch_size: int) -> dict:
    """Clean predictions and the certificates at :data:`CARD_EPS` on (x, y), and their time."""
    start = time.perf_counter()
    clean = predict(model, x, batch_size)
    certificates = {e: certify(model, x, y, float(e), batch_size) for e in CARD_EPS}
    return {
        "n": len(x),
        "correct": clean == y,
        "certificates": certificates,
        "flags": {e: c.certified.tolist() for e, c in certificates.items()},
        "seconds": time.perf_counter() - start,
    }


def make_card(args: argparse.Namespace) -> dict:
    run, dest = Path(args.run), Path(args.zoo) / args.name
    index, model = check_request(args)
    training = TrainConfig.from_json(index.get("training") or {})
    command = training_command(training, portable_path(args.train_out or run), args.trained_threads)
    torch.set_num_threads(args.threads)
    test = checkpoint_test_set(run, args.limit or None)
    x, y, pixel_scale = test.x, test.y, test.pixel_scale
    numbers = measure(model, x, y, args.batch_size)
    strong = (
        strong_suite_entry(Path(args.strong_suite), model, x, y, numbers["flags"], pixel_scale)
        if args.strong_suite
        else None
    )
    others = [
        other_attacks_entry(Path(p), model, x, y, pixel_scale) for p in args.attack_result or []
    ]
    copied = copy_run(run, dest)  # the first write
    weights = dest / copied["weights"]["file"]
    loaded = model.state_dict()
    if any(not torch.equal(t, loaded[k]) for k, t in load_file(str(weights)).items()):
        raise CardError(f"{run} changed while it was measured (a run still training?); retry")
    card = card_json(args, model, copied, training, command, numbers, strong)
    if strong is None:
        card["strong_suite_note"] = args.no_strong_suite
    if others:
        card["other_attacks"] = others
    CARD_SCHEMA.check(card, CARD_NAME)  # never write what a reader refuses
    atomic_write_json(dest / CARD_NAME, card)
    return card


def card_json(args, model, copied: dict, training, command: str, numbers: dict, strong) -> dict:
    """The card (:data:`CARD_SCHEMA`) of the net ``model`` copied to the zoo (``copied``: its
    index there), from what :func:`measure` found (``numbers``) and its strong-suite entry."""
    weights = Path(copied["_dir"]) / copied["weights"]["file"]
    certificates, flags, n = numbers["certificates"], numbers["flags"], numbers["n"]
    k = min(RECHECK_EXAMPLES, n)
    card = {
        "format": "rbfi-model-card",
        "format_version": 1,
        "name": args.name,
        "description": args.description,
        "model": describe(model),
        "architecture": model_config_of(copied).to_json(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": {
            "file": weights.name,
            "sha256": sha256_file(weights),
            "bytes": weights.stat().st_size,
        },
        "pixel_scale": trained_pixel_scale(copied.get("training")),
        "training": {
            "command": command,
            "epochs": int(copied["epoch"]),
            "wall_seconds": wall_seconds(copied.get("metrics") or []),
            "machine": {"cpu": cpu_name(), "threads": args.trained_threads},
            "versions": copied.get("versions", {}),
            "source": portable_path(args.run),
        },
        "evaluation": {
            "n_examples": n,
            "clean_accuracy": numbers["correct"].sum().item() / n,
            "certified": {e: c.certified.sum().item() / n for e, c in certificates.items()},
            "seconds": numbers["seconds"],
            "machine": {"cpu": cpu_name(), "threads": torch.get_num_threads()},
            "versions": versions(),
        },
        "strong_suite": strong,
        "recheck": {
            "n_examples": k,
            "clean_correct": pack_flags(numbers["correct"][:k].tolist()),
            "certified": {e: pack_flags(flags[e][:k]) for e in CARD_EPS},
            "closest_margin": {
                e: c.margins[:k].abs().min().item() for e, c in certificates.items()
            },
        },
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    notes = list(args.note or [])
    if card["training"]["epochs"] < training.epochs:
        notes.append(
            f"the run stopped after epoch {card['training']['epochs']} of the {training.epochs} "
            "its command asks for (this checkpoint is that epoch's)"
        )
    if notes:
        card["notes"] = notes
    return card


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="run directory of the trained net")
    ap.add_argument("--name", required=True, help=f"zoo name ({NAME_PATTERN})")
    ap.add_argument("--description", required=True, help="one sentence: what the net is")
    ap.add_argument("--zoo", default=str(REPOSITORY / "zoo"), help="zoo folder (default: zoo/)")
    strong = ap.add_mutually_exclusive_group()
    strong.add_argument("--strong-suite", help="robustness.json of `rbfi attack` on this net")
    strong.add_argument("--no-strong-suite", metavar="REASON", help="why there is none")
    ap.add_argument(
        "--attack-result",
        action="append",
        metavar="ROBUSTNESS_JSON",
        help="an `rbfi attack` result of some attacks on this net (repeatable)",
    )
    ap.add_argument("--trained-threads", type=int, default=None, help="threads it trained on")
    ap.add_argument("--train-out", default=None, help="--out of the training command")
    ap.add_argument("--note", action="append", help="a note for the card (repeatable)")
    ap.add_argument("--limit", type=int, default=None, help="first N test images (tests only)")
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--overwrite", action="store_true", help="replace an existing card")
    ap.add_argument(
        "--readme", default=None, help="then regenerate this README's sections (tools.readme)"
    )
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not re.fullmatch(NAME_PATTERN, args.name):
        print(
            f"make_card: error: bad name {args.name!r} (expected {NAME_PATTERN})", file=sys.stderr
        )
        return 2
    try:
        card = make_card(args)
    except ValueError as exc:  # CardError, CheckpointError, DataError, SchemaError
        print(f"make_card: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    ev = card["evaluation"]
    print(
        f"{card['name']}: clean {100 * ev['clean_accuracy']:.2f} %, certified "
        + ", ".join(f"{e}: {100 * a:.2f} %" for e, a in ev["certified"].items())
        + f" on {ev['n_examples']} test images -> {Path(args.zoo) / args.name / CARD_NAME}"
    )
    if args.readme:
        from tools.readme import update_readme

        changed = update_readme(Path(args.readme))
        print(f"{args.readme}: {'regenerated' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
