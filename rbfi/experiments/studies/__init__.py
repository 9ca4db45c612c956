"""Studies beyond the paper's experiment section, items of ``rbfi reproduce`` like the paper's
(one file per study); :data:`ITEMS` in the order they run."""

from rbfi.experiments.studies import conv

ITEMS = {module.ITEM.name: module.ITEM for module in (conv,)}

__all__ = ["ITEMS"]
