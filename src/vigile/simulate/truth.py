"""Ground truth beside the simulated logs: ``ground-truth.csv``, one row per scenario.

CSV rather than JSON because the logs' folder is ingested as a whole and ``.json``
files there would be taken for logs; the scenario parameters are one JSON object in
the ``params`` column. Times are ISO 8601 UTC.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from vigile.errors import InputError, Location
from vigile.simulate.scenarios.base import Truth

COLUMNS = (
    "label",
    "scenario",
    "kind",
    "src",
    "dst",
    "fqdn",
    "start",
    "end",
    "connections",
    "params",
    "summary",
)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


def write_truth(path: Path, truths: Sequence[Truth]) -> None:
    """Write the ground-truth file."""
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for t in truths:
            w.writerow(
                [
                    t.label,
                    t.scenario,
                    t.kind,
                    t.src,
                    t.dst or "",
                    t.fqdn or "",
                    _iso(t.start),
                    _iso(t.end),
                    t.connections,
                    json.dumps(t.params, sort_keys=True),
                    t.summary,
                ]
            )


def read_truth(path: Path) -> list[Truth]:
    """Read a ground-truth file written by :func:`write_truth`."""
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or set(COLUMNS) - set(reader.fieldnames):
            raise InputError(Location(path, line=1), f"not a ground-truth file (need {COLUMNS})")
        for row in reader:
            try:
                out.append(
                    Truth(
                        int(row["label"]),
                        row["scenario"],
                        row["kind"],
                        row["src"],
                        row["dst"] or None,
                        row["fqdn"] or None,
                        datetime.fromisoformat(row["start"]).timestamp(),
                        datetime.fromisoformat(row["end"]).timestamp(),
                        int(row["connections"]),
                        json.loads(row["params"]),
                        row["summary"],
                    )
                )
            except (ValueError, KeyError) as e:
                raise InputError(Location(path, line=reader.line_num), f"bad row: {e}") from None
    return out
