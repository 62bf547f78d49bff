"""``vigile report --html``: the console's content for the top hosts, in one offline file.

The file carries everything it needs inline: styles, plotly.js (from the pinned
``plotly`` package), the console's own drawing code and each plot's data. Its
Content-Security-Policy forbids loading anything, so it reads the same on an
air-gapped machine and can be mailed as it is.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from markupsafe import Markup

from vigile.config import Config
from vigile.store import Store
from vigile.web import charts, hosts, queries
from vigile.web.app import HERE, make_templates, plotly_js_path

#: Findings with plots shown per host.
FINDINGS_PER_HOST = 3


def _inline_script(text: str) -> Markup:
    # A literal "</script" would end the inline element early; "<\/" is the same in JS.
    return Markup(text.replace("</script", "<\\/script"))


def report_context(store: Store, config: Config, top: int) -> dict[str, Any]:
    """The data the report shows: the overview and the ``top`` hosts with plots."""
    data = queries.overview(store, config)
    detailed = []
    for h in [h for h in data["hosts"] if h["score"] > 0][:top]:
        detail = hosts.host_detail(store, config, h["host"])
        if detail is None:
            continue
        detail["traffic"] = json.dumps(hosts.host_traffic(store, h["host"]))
        shown = [f for f in detail["findings"] if f["suppressed_by"] is None][:FINDINGS_PER_HOST]
        for f in shown:
            f["plots"] = [
                (kind, json.dumps(charts.chart_data(store, f, kind)))
                for kind in charts.chart_kinds(f)
            ]
        detail["shown"] = shown
        detailed.append(detail)
    return {
        "data": data,
        "hosts": detailed,
        "store": store.location,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def render_report(store: Store, config: Config, top: int = 5) -> str:
    """The whole report as one HTML document."""
    template = make_templates().env.get_template("report.html")
    return template.render(
        **report_context(store, config, top),
        css=Markup((HERE / "static" / "console.css").read_text(encoding="utf-8")),
        plotly_js=_inline_script(plotly_js_path().read_text(encoding="utf-8")),
        console_js=_inline_script((HERE / "static" / "console.js").read_text(encoding="utf-8")),
    )


def write_report(path: Path, store: Store, config: Config, top: int = 5) -> int:
    """Write the report to ``path``; returns its size in bytes."""
    text = render_report(store, config, top)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return len(text.encode())
