"""Evaluation results as Markdown tables and a PNG plot."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vigile.evaluate import FALSE_ALERT_COLUMNS, EvalResult
from vigile.evaluate.sweep import SweepPoint

SCENARIO_COLUMNS = (
    "scenario",
    "kind",
    "src",
    "dst",
    "detected",
    "rank",
    "host_rank",
    "score",
    "detector",
)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v).replace("|", "\\|")  # a quoted log line must not split the row


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def render_result(result: EvalResult, detectors: Sequence[str]) -> str:
    """Per-scenario table and the summary figures."""
    summary = result.summary()
    out = [f"Detectors: {', '.join(detectors) or 'none registered'}", ""]
    if result.scenarios:
        out.append(markdown_table([s.row() for s in result.scenarios], SCENARIO_COLUMNS))
    out.append(
        markdown_table([{"metric": k, "value": v} for k, v in summary.items()], ("metric", "value"))
    )
    if result.false_alert_rows:
        out += ["False alerts (alerts that match no scenario):", ""]
        out.append(markdown_table(result.false_alert_rows, FALSE_ALERT_COLUMNS))
    return "\n".join(out)


def sweep_rows(points: Sequence[SweepPoint]) -> list[dict[str, Any]]:
    return [
        {
            "sweep": p.sweep,
            "value": f"{p.value:g}" + (" s" if p.sweep == "period" else ""),
            "beacons": p.beacons,
            "detected": p.detected,
            "recall": round(p.recall, 2),
            "median_rank": p.median_rank,
            "false_alerts_per_1000_hosts_day": p.false_alerts_per_1000_hosts_day,
            "days": p.days,
        }
        for p in points
    ]


SWEEP_COLUMNS = (
    "sweep",
    "value",
    "beacons",
    "detected",
    "recall",
    "median_rank",
    "false_alerts_per_1000_hosts_day",
    "days",
)


def plot_sweeps(points: Sequence[SweepPoint], path: Path) -> None:
    """Recall against jitter and against period, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; files only
    import matplotlib.pyplot as plt

    kinds = [k for k in ("jitter", "period") if any(p.sweep == k for p in points)]
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        pts = [p for p in points if p.sweep == kind]
        xs = [p.value * (100 if kind == "jitter" else 1) for p in pts]
        ax.plot(xs, [p.recall for p in pts], marker="o", label="recall")
        ax.axhline(0.95, color="grey", linestyle="--", linewidth=0.8, label="target 0.95")
        ax.set_ylim(-0.05, 1.05)
        ax.set_ylabel("recall")
        if kind == "period":
            ax.set_xscale("log")
            ax.set_xlabel("beacon period (s)")
        else:
            ax.set_xlabel("beacon jitter (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Fixed metadata keeps the PNG byte-identical from run to run.
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
