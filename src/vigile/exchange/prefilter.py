"""Find the few rows of a block that a check must look at, one pass per needle.

Most log rows match no pattern; testing each pattern on each row in Python is what
made inspection slow. A check names *needles* instead: text that every match of its
patterns holds (derived by hand from each pattern, next to it, and checked by
``tests/test_exchange_blocks.py`` on strings Hypothesis generates from the patterns).
:func:`rows_holding` joins one column of a block and looks for each needle in the
joined text (a C-speed ``str.find``), so rows holding none cost no Python work;
the check then runs its full patterns on the rows returned.

Written by hand because it is a dozen lines over the standard library: the columnar
engines (``pyarrow.compute.match_substring``) would first need a copy of every block
as an Arrow array, which costs more than the search itself here.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

#: A needle: text parts that a match holds all of (without case, in any order).
Needle = tuple[str, ...]


def rows_holding(texts: list[str], needles: tuple[Needle, ...]) -> list[int]:
    """Indices of ``texts`` holding every part of some needle, in order.

    Needles must be lower-case ASCII without ``\\n``. Any non-ASCII text in the block
    makes every row a candidate: ``lower()`` agrees with a pattern's IGNORECASE only
    on ASCII, so the patterns themselves decide there.

    >>> rows_holding(["/owa/auth.owa", "/ECP/y.js", "/owa/auth/x.JS"],
    ...              (("ecp/",), ("/owa/auth/", ".js")))
    [1, 2]
    """
    joined = "\n".join(texts)
    if not joined.isascii():
        return list(range(len(texts)))
    low = joined.lower()
    starts: list[int] | None = None
    found: set[int] = set()
    for needle in needles:
        first, rest = needle[0], needle[1:]
        pos = low.find(first)
        if pos < 0:
            continue
        if starts is None:  # where each text begins in the joined one
            starts = list(accumulate(map((1).__add__, map(len, texts)), initial=0))
        while pos >= 0:
            i = bisect_right(starts, pos) - 1
            row = low[starts[i] : starts[i + 1] - 1]
            if all(part in row for part in rest):
                found.add(i)
            pos = low.find(first, starts[i + 1])
    return sorted(found)
