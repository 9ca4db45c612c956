"""``rbfi zoo``: the nets shipped in the repository's model zoo (:mod:`rbfi.models.zoo`).

rbfi zoo list [--json]           one line per net: name, model, clean and certified accuracy
rbfi zoo show NAME [--json]      its model card (and where its checkpoint lies)
rbfi zoo path NAME [--json]      the net's run directory (for ``rbfi certify`` and friends)
"""

from __future__ import annotations

import argparse
import json

from rbfi.cli.options import add_common

HELP = "the model zoo: trained nets with model cards, loadable as rbfi.load('zoo:NAME')"


def add_parser(sub) -> None:
    p = sub.add_parser("zoo", help=HELP, description=HELP)
    actions = p.add_subparsers(dest="zoo_command", required=True, parser_class=type(p))
    listing = actions.add_parser("list", help="the nets of the zoo")
    add_common(listing, "threads", "json", json={"help": "print the cards as one JSON list"})
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="a net's model card")
    show.add_argument("name", help="a zoo net (NAME or zoo:NAME)")
    add_common(show, "threads", "json", json={"help": "print the card as JSON"})
    show.set_defaults(handler=run_show)
    path = actions.add_parser("path", help="a net's run directory")
    path.add_argument("name", help="a zoo net (NAME or zoo:NAME)")
    add_common(path, "threads", "json", json={"help": 'print {"name": NAME, "path": DIR}'})
    path.set_defaults(handler=run_path)


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def summary_line(card: dict, width: int = 28) -> str:
    """NAME  MODEL  clean  certified at each eps (full test set) and the strong suite's n;
    ``width``: of the model column."""
    ev = card["evaluation"]
    certified = "  ".join(f"{k}: {_pct(v)}" for k, v in ev["certified"].items())
    strong = card["strong_suite"]
    attacked = f"strong suite on {strong['n_examples']}" if strong else "no strong suite"
    return (
        f"{card['name']:16s} {card['model']:{width}s} clean {_pct(ev['clean_accuracy'])}  "
        f"certified {certified}  ({ev['n_examples']} images; {attacked})"
    )


def shapes(architecture: dict) -> str:
    """What each layer outputs, from the input: 'mnist 1x28x28 -> 16x12x12 -> 32x5x5 -> 512 ->
    10' (a conv net's feature maps, C x H x W), 'mnist 784 -> 512 -> 512 -> 512 -> 10'."""
    from rbfi.models import ModelConfig

    config = ModelConfig.from_json(architecture)
    data = f"{config.dataset} " if config.dataset else ""
    if config.is_conv:
        maps = ["x".join(map(str, shape)) for shape in config.feature_shapes]
        return data + " -> ".join(maps + [str(n) for n in config.dense_layers])
    return data + " -> ".join(str(n) for n in (config.in_features, *config.layers))


def run_list(args: argparse.Namespace) -> int:
    from rbfi.models.zoo import names, read_card, zoo_dir

    cards = [read_card(name) for name in names()]
    if args.json:
        print(json.dumps(cards))
        return 0
    if not cards:
        print(f"the model zoo {zoo_dir()} holds no nets")
    width = max([28] + [len(card["model"]) for card in cards])  # conv nets' names are longer
    for card in cards:
        print(summary_line(card, width))
    return 0


def run_show(args: argparse.Namespace) -> int:
    from rbfi.models.zoo import read_card, resolve

    card = read_card(args.name)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    ev, training = card["evaluation"], card["training"]
    strong = card["strong_suite"]
    lines = [
        f"{card['name']}: {card['model']}, {card['parameters']:,} parameters",
        f"  {card['description']}",
        f"layers      {shapes(card['architecture'])}",
        f"checkpoint  {resolve(args.name)}  (load: rbfi.load('zoo:{card['name']}'))",
        f"weights     {card['weights']['file']}  sha256 {card['weights']['sha256']}",
        f"pixels      k / {card['pixel_scale']}",
        f"trained by  {training['command']}",
        f"            {training['epochs']} epochs, "
        + (
            f"{training['wall_seconds'] / 60:.1f} min"
            if training["wall_seconds"] is not None
            else "time not recorded"
        )
        + f" on {training['machine']['cpu']}, {training['machine']['threads'] or '?'} threads",
        f"clean       {_pct(ev['clean_accuracy'])} % ({ev['n_examples']} test images)",
        "certified   "
        + ", ".join(f"eps {k}: {_pct(v)} %" for k, v in ev["certified"].items())
        + " (interval bounds)",
    ]
    if strong:
        lines.append(
            "strong      "
            + ", ".join(f"eps {k}: {_pct(v)} %" for k, v in strong["worst_case"].items())
            + f" (worst case of the strong suite, first {strong['n_examples']} test images)"
        )
        lines.append(
            "gap         "
            + ", ".join(
                f"eps {k}: {100 * (v - strong['certified_same_images'][k]):+.1f} points"
                for k, v in strong["worst_case"].items()
            )
            + " (worst case - certified on the same images; every certified image held)"
        )
    else:
        lines.append(f"strong      not measured: {card['strong_suite_note']}")
    for other in card.get("other_attacks", []):
        lines.append(
            "attacks     "
            + ", ".join(f"eps {k}: {_pct(v)} %" for k, v in other["worst_case"].items())
            + f" (worst case of {', '.join(other['attacks'])}, first {other['n_examples']}"
            " test images)"
        )
    for note in card.get("notes", []):
        lines.append(f"note        {note}")
    print("\n".join(lines))
    return 0


def run_path(args: argparse.Namespace) -> int:
    from rbfi.models.zoo import resolve

    path = resolve(args.name)
    if args.json:
        print(json.dumps({"name": path.name, "path": str(path)}))
    else:
        print(path)
    return 0
