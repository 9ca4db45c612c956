"""The paper's experiment section, one file per table or figure; :data:`ITEMS` in the order of
the paper. A new table is one file here and one line below."""

from rbfi.experiments.paper import (
    baselines,
    fig3,
    fig4,
    fig5,
    sec68,
    sec69,
    table1,
    table2,
    table3,
    table4,
)

ITEMS = {
    module.ITEM.name: module.ITEM
    for module in (table1, fig3, table2, table3, fig4, fig5, table4, sec68, sec69, baselines)
}

__all__ = ["ITEMS"]
