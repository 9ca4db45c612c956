"""Everything that defines a training run, declared once (saved in the checkpoint; the
``rbfi train`` options are generated from these fields)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rbfi.models.config import ModelConfig
from rbfi.nn.losses import LOSSES
from rbfi.options import (
    Choice,
    Device,
    Float,
    Int,
    PositiveFloat,
    PositiveInt,
    Text,
    check_fields,
    option,
    to_json,
)

DEFAULT_LR = {"rbfi": 5.0, "rbf": 5.0, "relu": 1.0, "sigmoid": 1.0}  # the author's code
MAX_SEED = 2**63 - 1


@dataclass
class TrainConfig:
    """A training run: the model, the optimiser (AdaDelta, the paper's), data and seed."""

    model: ModelConfig = field(default_factory=ModelConfig)
    epochs: int = option(10, "training epochs", kind=PositiveInt())
    batch_size: int = option(100, "examples per optimiser step", kind=PositiveInt())
    lr: float | None = option(
        None, "AdaDelta learning rate (default 5 for rbfi/rbf, 1 otherwise)", kind=PositiveFloat()
    )
    rho: float = option(0.9, "AdaDelta decay", kind=Float(0.0, 1.0, open_max=True))
    loss: str | None = option(
        None,
        "training loss (default: square for rbfi/rbf/sigmoid, cross_entropy for relu)",
        kind=Choice(LOSSES),
    )
    seed: int = option(0, "seed of Python, NumPy and PyTorch", kind=Int(0, MAX_SEED))
    pseudogradient: bool = option(
        True,
        "train without pseudogradients (true gradients)",
        flag="--true-gradients",
        invert=True,
    )
    train_limit: int | None = option(
        None, "use only the first N training images", kind=PositiveInt()
    )
    test_limit: int | None = option(None, "evaluate on the first N test images", kind=PositiveInt())
    data_dir: str | None = option(None, "directory of MNIST IDX files", kind=Text())
    device: str = option("cpu", "torch device (cpu, cuda, cuda:1, ...)", kind=Device())

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            self.model = ModelConfig(**self.model)
        check_fields(self)
        if self.lr is None:
            self.lr = DEFAULT_LR[self.model.arch]
        if self.loss is None:
            self.loss = self.model.loss
        if self.model.layers[-1] != 10:
            raise ValueError(
                f"the last layer must have 10 units (MNIST classes), got {self.model.layers[-1]}"
            )

    def to_json(self) -> dict:
        out = to_json(self)
        out["model"] = self.model.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """From :meth:`to_json`, or from the flat settings rbfi 0.1 saved (arch, layers, ...
        at the top level). Unknown keys are ignored; bad values raise ValueError."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object of training settings, got {data!r}")
        data = dict(data)
        if "model" not in data and "arch" in data:  # rbfi 0.1
            model = {k: data.pop(k) for k in ModelConfig.__dataclass_fields__ if k in data}
            if model["arch"] not in ("rbfi", "rbf"):
                for key in ("geometry", "u_bounds", "w_bounds"):
                    model.pop(key, None)
            data["model"] = {k: v for k, v in model.items() if v is not None}
        if "model" not in data:
            raise ValueError("training settings without a model")
        model = ModelConfig.from_json(data.pop("model"))
        return cls(model=model, **{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
