"""The model zoo: trained nets shipped with the repository, each a run directory with a model
card, loadable by name offline.

    zoo/NAME/checkpoint.json            a normal checkpoint (float32 safetensors weights)
    zoo/NAME/weights-eNNNN.safetensors
    zoo/NAME/card.json                  the model card (:data:`CARD_SCHEMA`), measured by
                                        ``python -m tools.make_card``, never typed by hand

``rbfi.load("zoo:NAME")`` loads a net; ``rbfi zoo list`` / ``rbfi zoo show NAME`` describe them.
The zoo folder is ``$RBFI_ZOO`` when set, else ``zoo/`` beside the ``rbfi`` package when the
package runs from a checkout of the repository; a wheel install has no zoo (:class:`ZooError`).

A card records, among the rest, the per-example certified flags of the first
:data:`RECHECK_EXAMPLES` test images at each eps, packed by :func:`pack_flags` (hex, example 0
in the most significant bit), so that anyone can re-certify them and compare.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from rbfi.io.checkpoint import SHA256
from rbfi.io.paths import portable_path
from rbfi.io.schema import (
    AnyValue,
    Const,
    Int,
    List,
    Map,
    Nullable,
    Num,
    Obj,
    Str,
)

ZOO_ENV = "RBFI_ZOO"
PREFIX = "zoo:"
CARD_NAME = "card.json"
CARD_FORMAT = "rbfi-model-card"
NAME_PATTERN = r"[a-z0-9][a-z0-9_.-]*"
RECHECK_EXAMPLES = 200
# the zoo's size limits (weights files; the rest is a few KB of JSON per net), enforced by
# tools/make_card.py and by tests/test_zoo.py
WEIGHTS_LIMIT = 10 * 2**20  # bytes of one net's weights file
ZOO_BUDGET = 80 * 2**20  # bytes of all the nets' weights files together
CARD_EPS = ("0.1", "0.2", "0.3")
HEX = Str(pattern=r"[0-9a-f]*")
EPS_KEY = r"\d+(\.\d+)?"

CARD_SCHEMA = Obj(
    {
        "format": Const(CARD_FORMAT),
        "format_version": Const(1),
        "name": Str(pattern=NAME_PATTERN),
        "description": Str(),
        "model": Str(),  # paper notation, e.g. RBFI(512^, 512v, 512^, 10v)
        "architecture": Map(AnyValue()),  # the ModelConfig JSON of checkpoint.json
        "parameters": Int(min=0),
        "weights": Obj({"file": Str(), "sha256": SHA256, "bytes": Int(min=0)}),
        "pixel_scale": Int(255, 256),  # test images as k / pixel_scale, as in training
        "training": Obj(
            {
                "command": Str(),
                "epochs": Int(min=0),
                "wall_seconds": Nullable(Num(min=0)),  # sum of the epochs' train + eval time
                "machine": Obj({"cpu": Str(), "threads": Nullable(Int(min=1))}),
                "versions": Map(Str()),  # as recorded in the checkpoint
            },
            {"source": Str()},
        ),
        "evaluation": Obj(
            {
                "n_examples": Int(min=1),
                "clean_accuracy": Num(0, 1),
                "certified": Map(Num(0, 1), key=EPS_KEY),
                "seconds": Num(min=0),
                "machine": Obj({"cpu": Str(), "threads": Int(min=1)}),
                "versions": Map(Str()),
            }
        ),
        "strong_suite": Nullable(
            Obj(
                {
                    "n_examples": Int(min=1),
                    "worst_case": Map(Num(0, 1), key=EPS_KEY),
                    "certified_same_images": Map(Num(0, 1), key=EPS_KEY),
                    "source": Str(),
                    "seconds": Num(min=0),
                },
                {
                    "options": Map(AnyValue()),  # the suite's budgets
                    # images no attack broke that the bounds do not certify (the gap)
                    "robust_not_certified": Map(Int(min=0), key=EPS_KEY),
                },
            )
        ),
        "recheck": Obj(
            {
                "n_examples": Int(min=1),
                "clean_correct": HEX,
                "certified": Map(HEX, key=EPS_KEY),
                "closest_margin": Map(Num(min=0), key=EPS_KEY),
            }
        ),
        "created": Str(),
    },
    {
        "strong_suite_note": Str(),
        "other_attacks": List(  # some attacks, not the whole strong suite
            Obj(
                {
                    "attacks": List(Str(), min_len=1),
                    "n_examples": Int(min=1),
                    "worst_case": Map(Num(0, 1), key=EPS_KEY),
                    "source": Str(),
                }
            )
        ),
        "notes": List(Str()),
    },
    rule=lambda card: (
        "strong_suite is null but strong_suite_note gives no reason"
        if card.get("strong_suite") is None and not card.get("strong_suite_note")
        else None
    ),
)


class ZooError(ValueError):
    """No zoo, an unknown name, or a card that does not match its schema."""


def zoo_dir() -> Path:
    """The zoo folder: ``$RBFI_ZOO``, else ``zoo/`` of the repository this package runs from."""
    env = os.environ.get(ZOO_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise ZooError(f"{ZOO_ENV}={env} is not a directory")
        return path
    checkout = Path(__file__).resolve().parents[2]  # rbfi/models/zoo.py -> the repository
    path = checkout / "zoo"
    if not (path.is_dir() and (checkout / "pyproject.toml").is_file()):
        raise ZooError(
            f"no model zoo found: this rbfi is not a checkout of the repository "
            f"(no {path}); set {ZOO_ENV} to a zoo folder"
        )
    return path


def names(root: Path | None = None) -> list[str]:
    """The nets of the zoo (folders holding a card), sorted."""
    root = zoo_dir() if root is None else Path(root)
    return sorted(p.parent.name for p in root.glob(f"*/{CARD_NAME}"))


def strip_prefix(ref: str | os.PathLike) -> str | None:
    """NAME for a reference "zoo:NAME", else None."""
    text = os.fspath(ref)
    return text[len(PREFIX) :] if text.startswith(PREFIX) else None


def resolve(name: str, root: Path | None = None) -> Path:
    """The run directory of the zoo net ``name`` (a bare name or "zoo:NAME")."""
    name = strip_prefix(name) or name
    root = zoo_dir() if root is None else Path(root)
    if not re.fullmatch(NAME_PATTERN, name) or not (root / name / CARD_NAME).is_file():
        known = ", ".join(names(root)) or "none"
        raise ZooError(f"no net {name!r} in the model zoo {root} (known: {known})")
    return root / name


def checkpoint_path(ref: str | os.PathLike) -> str | os.PathLike:
    """Where a checkpoint reference points: the run directory of the zoo net for "zoo:NAME"
    (:class:`ZooError` for an unknown name), anything else as given."""
    name = strip_prefix(ref)
    return ref if name is None else resolve(name)


def recorded_ref(ref: str | os.PathLike) -> str:
    """A checkpoint reference as results and checkpoints record it: "zoo:NAME" for "zoo:NAME"
    and for the folder of a zoo net, any other path through :func:`portable_path` (relative to
    the working directory when inside it), so that no machine's absolute path is recorded."""
    if strip_prefix(ref) is not None:
        return os.fspath(ref)
    try:
        root = zoo_dir().resolve()
    except ZooError:
        return portable_path(ref)
    folder = Path(ref).resolve()
    if folder.parent == root and (folder / CARD_NAME).is_file():
        return PREFIX + folder.name
    return portable_path(ref)


def read_card(name: str, root: Path | None = None) -> dict:
    """The card of the zoo net ``name``, checked against :data:`CARD_SCHEMA`."""
    path = resolve(name, root) / CARD_NAME
    try:
        card = json.loads(path.read_text())
        CARD_SCHEMA.check(card, CARD_NAME)
    except (OSError, ValueError) as exc:  # SchemaError and JSONDecodeError are ValueErrors
        raise ZooError(f"bad model card {path}: {exc}") from None
    if card["name"] != path.parent.name:
        raise ZooError(f"model card {path} names {card['name']!r}, not its folder")
    return card


def weights_bytes(root: Path | None = None, without: str | None = None) -> int:
    """The bytes of the weights files of every net of the zoo (``without``: except that net's),
    as their cards record them."""
    root = zoo_dir() if root is None else Path(root)
    return sum(read_card(n, root)["weights"]["bytes"] for n in names(root) if n != without)


def pack_flags(flags) -> str:
    """Booleans (a sequence or a 1-d tensor) as hex, 4 flags a digit, the first flag in the
    most significant bit of the first digit; padded with 0 flags to a multiple of 4."""
    bits = "".join("1" if bool(f) else "0" for f in flags)
    bits += "0" * (-len(bits) % 4)
    return "".join(f"{int(bits[i : i + 4], 2):x}" for i in range(0, len(bits), 4))


def unpack_flags(text: str, n: int) -> list[bool]:
    """The first ``n`` flags of :func:`pack_flags`' hex ``text``."""
    if len(text) * 4 < n:
        raise ZooError(f"packed flags hold {len(text) * 4} flags, {n} wanted")
    bits = "".join(f"{int(c, 16):04b}" for c in text)
    return [b == "1" for b in bits[:n]]


__all__ = [
    "CARD_NAME",
    "CARD_SCHEMA",
    "RECHECK_EXAMPLES",
    "WEIGHTS_LIMIT",
    "ZOO_BUDGET",
    "ZOO_ENV",
    "ZooError",
    "checkpoint_path",
    "names",
    "pack_flags",
    "read_card",
    "recorded_ref",
    "resolve",
    "strip_prefix",
    "unpack_flags",
    "weights_bytes",
    "zoo_dir",
]
