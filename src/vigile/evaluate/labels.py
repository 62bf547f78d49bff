"""Ground truth from labeled captures: Stratosphere's ``label`` column in Zeek conn logs.

The Stratosphere datasets (CTU-Malware-Capture, CTU-Normal) append ``label`` and
``detailedlabel`` fields to Zeek's conn log (``Malicious``/``Benign``/``Background``).
Every pair of addresses with a malicious flow becomes one truth record spanning the
first to the last of its malicious flows.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from vigile.errors import InputError, Location
from vigile.simulate.scenarios.base import Truth


def read_stratosphere_truth(path: Path) -> list[Truth]:
    """Truth records of one labeled Zeek conn log (plain or gzipped)."""
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    fields: list[str] | None = None
    pairs: dict[tuple[str, str], list[float | int | str]] = {}
    with opener(path, "rt", encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#fields"):
                fields = line.rstrip("\n").split("\t")[1:]
                continue
            if line.startswith("#") or not line.strip():
                continue
            if fields is None or "label" not in fields:
                raise InputError(Location(path, line=number), "no #fields line with a label column")
            row = dict(zip(fields, line.rstrip("\n").split("\t"), strict=False))
            if row.get("label", "").lower() != "malicious":
                continue
            try:
                ts = float(row["ts"])
            except (KeyError, ValueError):
                raise InputError(Location(path, line=number), "bad ts in a labeled row") from None
            key = (row["id.orig_h"], row["id.resp_h"])
            span = pairs.setdefault(key, [ts, ts, 0, row.get("detailedlabel", "") or ""])
            span[0], span[1] = min(float(span[0]), ts), max(float(span[1]), ts)
            span[2] = int(span[2]) + 1
    if fields is None:
        raise InputError(Location(path), "not a Zeek log (no #fields line)")
    return [
        Truth(
            i,
            f"labeled:{detail or 'malicious'}",
            "labeled",
            src,
            dst,
            None,
            float(first),
            float(last),
            int(n),
            {"file": path.name},
            f"{n} flows labeled Malicious",
        )
        for i, ((src, dst), (first, last, n, detail)) in enumerate(sorted(pairs.items()))
    ]
