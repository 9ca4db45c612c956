"""Studies beyond the paper, one file per item (run by ``rbfi reproduce`` after the paper's);
:data:`STUDIES` in the order they run. A new study is one file here and one line below."""

from rbfi.experiments.studies import conv, relatives

STUDIES = {module.ITEM.name: module.ITEM for module in (conv, relatives)}

__all__ = ["STUDIES"]
