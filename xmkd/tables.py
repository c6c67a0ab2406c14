"""Plain-text tables for the command line and the benchmarks: each column as wide as its widest
cell, a rule of dashes under the header, trailing spaces stripped."""

from __future__ import annotations

from collections.abc import Sequence


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """``header``, a rule and ``rows`` as lines of padded columns."""
    rule = ["-" * max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    widths = [len(r) for r in rule]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, rule, *rows]
    )


def print_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print :func:`text_table` (the benchmark scripts' tables)."""
    print(text_table(header, rows))
