"""The one printer of the CLI's tables: columns as wide as their widest cell, whatever it is.

A fixed-width format (`{status:12}`) breaks its alignment on a value longer than it planned
for (`failed (rolled back)`); every `ritmo ... list` prints through `table` instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

GAP = "  "


def table(
    heads: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> list[str]:
    """`heads` and `rows` as aligned lines: each column as wide as its widest cell, two
    spaces between columns, the columns numbered in `right` right-aligned (numbers).

    An empty or None cell reads `-`; a cell is one line (whitespace runs become one space),
    so no value can break the grid. Trailing spaces are dropped."""
    grid = [[_cell(c) for c in heads]] + [[_cell(c) for c in row] for row in rows]
    if any(len(row) != len(heads) for row in grid):
        raise ValueError(f"every row must have {len(heads)} cells")
    widths = [max(len(row[i]) for row in grid) for i in range(len(heads))]
    at_right = set(right)
    return [
        GAP.join(
            cell.rjust(width) if i in at_right else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in grid
    ]


def _cell(value: object) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text or "-"
