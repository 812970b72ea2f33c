"""The HTML report: one self-contained file (inline SVG charts, inline CSS, no script or
font fetched from anywhere), readable in any browser offline and fit to mail to a manager.
Charts are drawn by pygal as static SVG; the tables show each rate with its numerator and
denominator on hover."""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import pygal
from jinja2 import Environment, StrictUndefined, select_autoescape
from markupsafe import Markup
from pygal.style import Style

from orchestrator.reporting.breakdown import WEEKDAYS
from orchestrator.reporting.kpis import DECISIONS
from orchestrator.reporting.sources import sources_text
from orchestrator.reporting.tables import (
    CHANNEL_COLUMNS,
    RATE_KEYS,
    STAGE_COLUMNS,
    by_columns,
    cases_text,
    comparison_rows,
    complaint_rows,
    group_label,
    money_text,
    rate_text,
    reason_rows,
    recovery_text,
    variant_tables,
)

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#333",
    foreground_strong="#111",
    foreground_subtle="#ccc",
    font_family="sans-serif",
    colors=("#2b6cb0", "#dd6b20", "#38a169", "#805ad5", "#e53e3e", "#718096", "#d69e2e"),
)


def _chart(kind: type[Any], title: str, **options: Any) -> Any:
    return kind(
        js=[],
        disable_xml_declaration=True,
        style=STYLE,
        width=720,
        height=320,
        title=title,
        legend_at_bottom=True,
        print_values=False,
        explicit_size=False,
        **options,
    )


def _svg(chart: Any) -> Markup:
    return Markup(chart.render(is_unicode=True))  # noqa: S704 - pygal escapes its text


def _pct(rate: Mapping[str, Any]) -> float | None:
    value = rate["value"]
    return None if value is None else round(value * 100, 1)


def charts(report: Mapping[str, Any]) -> dict[str, Markup]:
    stages = report["stages"]
    currencies = sorted({c for s in stages for c in s["recovery_rate"]})
    recovery = _chart(pygal.Bar, "Recovery rate by stage (%)")
    recovery.x_labels = [s["stage"] for s in stages]
    for currency in currencies or ["-"]:
        recovery.add(
            currency,
            [
                _pct(s["recovery_rate"][currency]) if currency in s["recovery_rate"] else None
                for s in stages
            ],
        )

    days = [row["date"] for row in report["daily"]]
    label_every = max(1, len(days) // 12)
    sends = _chart(
        pygal.StackedBar, "Sends per day by channel", x_label_rotation=45, show_minor_x_labels=False
    )
    sends.x_labels = days
    sends.x_labels_major = days[::label_every]
    channels = sorted(
        {k.split(":", 1)[1] for row in report["daily"] for k in row if k.startswith("sent:")}
    )
    for channel in channels:
        sends.add(channel, [row.get(f"sent:{channel}", 0) for row in report["daily"]])

    decisions = _chart(
        pygal.StackedBar, "Decisions per day", x_label_rotation=45, show_minor_x_labels=False
    )
    decisions.x_labels = days
    decisions.x_labels_major = days[::label_every]
    for decision in DECISIONS:
        if any(row.get(decision) for row in report["daily"]):
            decisions.add(decision, [row.get(decision, 0) for row in report["daily"]])

    reasons = _chart(pygal.HorizontalBar, "Decisions by reason (top 12)", show_legend=False)
    top = [r for r in reason_rows(report) if r[0] != "sent"][:12]
    reasons.x_labels = [key for key, _, _ in reversed(top)]
    reasons.add("decisions", [count for _, _, count in reversed(top)])

    by_channel = _chart(pygal.Bar, "Delivery, contact and kept rates by channel (%)")
    groups = [g for g in report["channels"] if g["accounts"] or g["sends"]]
    by_channel.x_labels = [g["channel"] for g in groups]
    for name, key in (
        ("delivery", "delivery_rate"),
        ("contact", "contact_rate"),
        ("kept", "kept_rate"),
    ):
        by_channel.add(name, [_pct(g[key]) for g in groups])
    found = {
        "recovered": _svg(_recovered_chart(report)),
        "recovery": _svg(recovery),
        "sends": _svg(sends),
        "decisions": _svg(decisions),
        "reasons": _svg(reasons),
        "channels": _svg(by_channel),
    }
    if report.get("by") in ("hour", "weekday"):
        found["by"] = _svg(_by_time_chart(report))
    return found


def _recovered_chart(report: Mapping[str, Any]) -> Any:
    """The amount recovered per day, a line per currency (amounts of different
    currencies share the axis, never a sum)."""
    rows = report["recovered_daily"]
    days = [row["date"] for row in rows]
    chart = _chart(
        pygal.Line,
        "Amount recovered per day",
        x_label_rotation=45,
        show_minor_x_labels=False,
        fill=False,
    )
    chart.x_labels = days
    chart.x_labels_major = days[:: max(1, len(days) // 12)]
    found = sorted({c for row in rows for c in row["recovered"]})
    for currency in found or ["-"]:
        chart.add(currency, [float(row["recovered"].get(currency, 0)) for row in rows])
    return chart


def _by_time_chart(report: Mapping[str, Any]) -> Any:
    """Contact, promise and payment rates by local hour (every hour of the day) or by
    local weekday."""
    by = report["by"]
    groups = {g[by]: g for g in report["groups"] if g[by] is not None}
    slots: list[Any] = list(range(24)) if by == "hour" else [w for w in WEEKDAYS if w in groups]
    chart = _chart(pygal.Bar, f"Contact, promise and payment rates by local {by} (%)")
    chart.x_labels = [f"{s:02d}" if by == "hour" else s for s in slots]
    for name, key in (
        ("contact", "contact_rate"),
        ("promise", "promise_rate"),
        ("paid", "payment_rate"),
    ):
        chart.add(name, [_pct(groups[s][key]) if s in groups else None for s in slots])
    return chart


def heatmap_tables(report: Mapping[str, Any]) -> list[tuple[str, list[tuple[str, list[Any]]]]]:
    """Per channel, rows Monday to Sunday of 24 cells ``(text, style, title)``: the share
    of sends answered at that local hour, shaded against the channel's best cell."""
    out: list[tuple[str, list[tuple[str, list[Any]]]]] = []
    for channel, cells in sorted(report.get("heatmap", {}).items()):
        at = {(c["weekday"], c["hour"]): c for c in cells}
        top = max((c["answered"] / c["sent"] for c in cells if c["sent"]), default=0.0)
        rows = []
        for day, name in enumerate(WEEKDAYS, start=1):
            row = []
            for hour in range(24):
                c = at.get((day, hour))
                if c is None or not c["sent"]:
                    row.append(("", "", ""))
                    continue
                rate = c["answered"] / c["sent"]
                shade = 0.08 + 0.82 * (rate / top if top else 0.0)
                row.append(
                    (
                        f"{rate * 100:.0f}",
                        f"background: rgba(43, 108, 176, {shade:.2f})",
                        f"{name} {hour:02d}:00: {c['answered']} of {c['sent']} answered",
                    )
                )
            rows.append((name, row))
        out.append((channel, rows))
    return out


def render_html(report: Mapping[str, Any], *, title: str = "Collections report") -> str:
    env = Environment(
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=rate_text, money=money_text, recovery=recovery_text)
    by = report.get("by")
    source = files("orchestrator.reporting").joinpath("assets/report.html.j2").read_text("utf-8")
    return env.from_string(source).render(
        title=title,
        report=report,
        charts=charts(report),
        stage_columns=STAGE_COLUMNS,
        channel_columns=CHANNEL_COLUMNS,
        reasons=reason_rows(report),
        rate_keys=RATE_KEYS,
        by=by,
        by_columns=sum(by_columns(by), ()) if by else (),
        group_label=group_label,
        variant_tables=variant_tables(report) if by == "variant" else [],
        heatmaps=heatmap_tables(report),
        complaint_rows=complaint_rows,
        cases_text=cases_text,
        comparison=comparison_rows(report["comparison"]) if "comparison" in report else None,
        sources_text=sources_text,
    )
