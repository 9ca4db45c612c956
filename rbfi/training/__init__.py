"""Training: the typed config, the objectives (what a step minimises), resumable state, the
loop. Clean accuracy and loss come from :func:`rbfi.models.evaluate`."""

from rbfi.training.config import DEFAULT_LR, TrainConfig
from rbfi.training.linf import LinfDistObjective
from rbfi.training.loop import METRICS_NAME, RunExists, TrainingDiverged, train
from rbfi.training.objectives import Objective, Standard, make_objective
from rbfi.training.state import capture_state, restore_state, seed_everything

__all__ = [
    "DEFAULT_LR",
    "LinfDistObjective",
    "METRICS_NAME",
    "Objective",
    "RunExists",
    "Standard",
    "TrainConfig",
    "TrainingDiverged",
    "capture_state",
    "make_objective",
    "restore_state",
    "seed_everything",
    "train",
]
