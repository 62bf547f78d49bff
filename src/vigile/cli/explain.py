"""``vigile explain ID``: one finding with all its evidence."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from vigile.cli.common import DEFAULT_DB, DbOption, JsonOption, open_store
from vigile.cli.output import console
from vigile.detect import Finding
from vigile.errors import UserError
from vigile.store import Pred


def register(app: typer.Typer) -> None:
    @app.command()
    def explain(
        finding_id: Annotated[
            str, typer.Argument(metavar="ID", help="Finding id, as printed by `vigile hunt`.")
        ],
        db: DbOption = DEFAULT_DB,
        as_json: JsonOption = False,
    ) -> None:
        """Explain one finding: its sentence, its score and every number behind it.

        The evidence holds every value the detector used, so the score can be
        recomputed by hand (formulas in docs/detections.md, fields in docs/findings.md).
        """
        store = open_store(db, read_only=True)
        try:
            rows = store.scan("findings", where=[Pred("id", "=", finding_id.strip())]).to_pylist()
        finally:
            store.close()
        if not rows:
            raise UserError(
                f"no finding with id {finding_id!r} in {db}; run `vigile hunt` and copy an id "
                "from its output (ids depend on the scoring window)"
            )
        finding = Finding.from_row(rows[0])
        if as_json:
            sys.stdout.write(json.dumps(finding.to_json(), default=str) + "\n")
            return
        _print(finding)


def _print(f: Finding) -> None:
    subject = f.subject
    console.print(f"[bold]{f.detector}[/] {subject}", highlight=False)
    console.print(
        f"score {f.score:.3f} ({f.severity}); window {f.window_start} → {f.window_end}",
        highlight=False,
    )
    if f.suppressed_by:
        console.print(f"suppressed by: {f.suppressed_by}", highlight=False)
    console.print(f.explanation, highlight=False)
    table = Table(title=f"Evidence of finding {f.id}", title_justify="left")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in sorted(f.evidence):
        table.add_row(key, _value(f.evidence[key]))
    console.print(table)


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list | dict):
        return json.dumps(v)
    return str(v)
