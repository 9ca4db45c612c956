"""Every item ``rbfi reproduce`` knows, in the order it runs them: the paper's tables and
figures (:mod:`rbfi.experiments.paper`), then the studies beyond it
(:mod:`rbfi.experiments.studies`)."""

from rbfi.experiments.paper import ITEMS as PAPER_ITEMS
from rbfi.experiments.studies import STUDIES

ITEMS = {**PAPER_ITEMS, **STUDIES}

__all__ = ["ITEMS", "PAPER_ITEMS", "STUDIES"]
