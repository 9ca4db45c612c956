"""Load a model from a checkpoint, refusing anything the checkpoint contradicts.

Before a model is built, :func:`load_model` checks, in order:

1. ``checkpoint.json`` against its schema (:data:`rbfi.io.checkpoint.INDEX_SCHEMA`) and the
   ``model`` entry against :data:`rbfi.models.config.MODEL_SCHEMA` (types, ranges, geometry);
2. the weights file against its SHA-256;
3. the tensors against the config (:func:`check_weights`): exactly the expected names, shapes
   and dtypes; finite values; u and w inside the bounds of the config, which the saved bound
   buffers must equal; the Or masks agreeing with the geometry (all And for ``^``, all Or for
   ``v``).

Each failure is a :class:`~rbfi.io.checkpoint.CheckpointError` with a one-line message.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from rbfi.io.checkpoint import CheckpointError, load_tensors, read_index
from rbfi.models.config import RBF_ARCHITECTURES, ModelConfig
from rbfi.models.nets import layer_names
from rbfi.models.registry import build_model, expected_state


def model_config_of(index: dict) -> ModelConfig:
    """The checked :class:`ModelConfig` of a checkpoint index."""
    try:
        return ModelConfig.from_json(index["model"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {index['_dir']}: bad model config: {exc}") from None


def check_weights(config: ModelConfig, tensors: dict[str, Tensor], where: str = "") -> None:
    """Raise CheckpointError unless ``tensors`` are a valid state of ``config``'s model."""
    prefix = f"checkpoint {where}: " if where else ""
    expected = expected_state(config)
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        parts = [f"missing {', '.join(missing)}" if missing else "", ""]
        parts[1] = f"unexpected {', '.join(extra)}" if extra else ""
        detail = "; ".join(p for p in parts if p)
        raise CheckpointError(f"{prefix}weights do not fit the model config ({detail})")
    for name, (shape, dtype) in expected.items():
        tensor = tensors[name]
        if tuple(tensor.shape) != shape or tensor.dtype != dtype:
            raise CheckpointError(
                f"{prefix}weights do not fit the model config: {name} is "
                f"{tuple(tensor.shape)} {tensor.dtype}, expected {shape} {dtype}"
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{prefix}{name} holds NaN or infinite values")
    if config.arch in RBF_ARCHITECTURES:
        _check_rbfi_layers(config, tensors, prefix)


def _check_rbfi_layers(config: ModelConfig, tensors: dict[str, Tensor], prefix: str) -> None:
    for k, (kind, layer) in enumerate(zip(config.kinds, layer_names(config))):
        for param, bounds in (("u", config.u_bounds), ("w", config.w_bounds)):
            saved = tensors[f"{layer}.{param}_bounds"]
            wanted = torch.tensor(bounds, dtype=saved.dtype)
            if not torch.equal(saved, wanted):
                raise CheckpointError(
                    f"{prefix}{layer}.{param}_bounds {saved.tolist()} contradict the model "
                    f"config's {param}_bounds {list(bounds)}"
                )
            values = tensors[f"{layer}.{param}"]
            low, high = values.min().item(), values.max().item()
            if low < wanted[0].item() or high > wanted[1].item():
                raise CheckpointError(
                    f"{prefix}{layer}.{param} lies in [{low:.6g}, {high:.6g}], outside its "
                    f"bounds {list(bounds)}"
                )
        is_or = tensors[f"{layer}.is_or"]
        symbol = config.geometry[k]
        if (kind == "and" and is_or.any()) or (kind == "or" and not is_or.all()):
            raise CheckpointError(
                f"{prefix}the Or mask of layer {k} ({int(is_or.sum())} of {is_or.numel()} Or "
                f"units) contradicts its geometry symbol {symbol!r} ({kind} layer)"
            )


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model of the checkpoint at ``path`` (run directory or its checkpoint.json),
    after the checks of the module docstring; returns it in eval mode on ``map_location``."""
    index = read_index(path)
    config = model_config_of(index)
    model = build_model(config)
    load_checked_weights(model, index, config, index["_dir"])
    return model.to(map_location).eval()


def load_checked_weights(model: nn.Module, index: dict, config: ModelConfig, where: str) -> None:
    """Read the weights of the checkpoint ``index`` (SHA-256 checked), check them against
    ``config`` (:func:`check_weights`; ``where`` names the checkpoint in errors) and copy them
    into ``model`` (strict: every name, nothing else). The one way weights are loaded."""
    tensors = load_tensors(index, "weights")
    check_weights(config, tensors, where)
    model.load_state_dict(tensors, strict=True)


def save_model(
    directory: str | os.PathLike, model: nn.Module, *, epoch: int = 0, **entries
) -> os.PathLike:
    """Save ``model`` as a checkpoint (see :func:`rbfi.io.checkpoint.save` for ``entries``)."""
    from rbfi.io.checkpoint import save

    return save(
        directory,
        model_config=model.config.to_json(),
        weights=model.state_dict(),
        epoch=epoch,
        **entries,
    )
