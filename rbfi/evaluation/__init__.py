"""Robustness evaluation: config, runner (attacks over an eps grid, the worst case, the
certified lower bound), cost model, checks (one function per check), reports."""

from rbfi.evaluation.checks import SoundnessError, run_masking_checks, soundness_violations
from rbfi.evaluation.config import DEFAULT_EPS, EvalConfig
from rbfi.evaluation.report import ROBUSTNESS_SCHEMA, plot, to_markdown, write_results
from rbfi.evaluation.runner import evaluate_robustness, worst_case

__all__ = [
    "DEFAULT_EPS",
    "ROBUSTNESS_SCHEMA",
    "EvalConfig",
    "SoundnessError",
    "evaluate_robustness",
    "plot",
    "run_masking_checks",
    "soundness_violations",
    "to_markdown",
    "worst_case",
    "write_results",
]
