"""Every item of ``rbfi reproduce``, in the order they run: the paper's experiment section
(:mod:`rbfi.experiments.paper`, in the paper's order), then the studies beyond it
(:mod:`rbfi.experiments.studies`)."""

from rbfi.experiments.paper import ITEMS as PAPER_ITEMS
from rbfi.experiments.studies import ITEMS as STUDY_ITEMS

ITEMS = {**PAPER_ITEMS, **STUDY_ITEMS}

__all__ = ["ITEMS", "PAPER_ITEMS", "STUDY_ITEMS"]
