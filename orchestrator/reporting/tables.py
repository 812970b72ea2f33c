"""The report as tables: its columns and how each value reads (rates as percentages,
money per currency), shared by the terminal and the HTML report, and the terminal's
Rich tables. The numbers themselves come from ``kpis.build_report``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any


def rate_text(rate: Mapping[str, Any]) -> str:
    value = rate["value"]
    return "-" if value is None else f"{value:.1%}"


def money_text(amounts: Mapping[str, str], sep: str = ", ") -> str:
    return sep.join(f"{cur} {Decimal(v):,.2f}" for cur, v in amounts.items()) or "-"


def recovery_text(rates: Mapping[str, Mapping[str, Any]], sep: str = ", ") -> str:
    return sep.join(f"{cur} {rate_text(r)}" for cur, r in rates.items()) or "-"


STAGE_ACTIVITY: tuple[tuple[str, Any], ...] = (
    ("accts", lambda g: str(g["accounts"])),
    ("sends", lambda g: str(g["sends"])),
    ("deliv.", lambda g: rate_text(g["delivery_rate"])),
    ("contact", lambda g: rate_text(g["contact_rate"])),
    ("click", lambda g: rate_text(g["click_rate"])),
    ("promise", lambda g: rate_text(g["promise_rate"])),
    ("kept", lambda g: rate_text(g["kept_rate"])),
    ("roll", lambda g: rate_text(g["roll_rate"])),
)
STAGE_OUTCOME: tuple[tuple[str, Any], ...] = (
    ("recovered", lambda g: money_text(g["recovered"])),
    ("recovery", lambda g: recovery_text(g["recovery_rate"])),
    ("opt-outs", lambda g: str(g["opt_outs"])),
    ("complaints", lambda g: str(g["complaints"])),
    ("failed", lambda g: str(g["failed"])),
    ("ambiguous", lambda g: str(g["ambiguous"])),
)
STAGE_COLUMNS = STAGE_ACTIVITY + STAGE_OUTCOME
CHANNEL_COLUMNS: tuple[tuple[str, Any], ...] = (
    ("accts", lambda g: str(g["accounts"])),
    ("sends", lambda g: str(g["sends"])),
    ("deliv.", lambda g: rate_text(g["delivery_rate"])),
    ("contact", lambda g: rate_text(g["contact_rate"])),
    ("click", lambda g: rate_text(g["click_rate"])),
    ("prom.", lambda g: str(g["promises"])),
    ("kept", lambda g: rate_text(g["kept_rate"])),
    ("opt-outs", lambda g: str(g["opt_outs"])),
    ("cost", lambda g: g.get("cost") or "-"),
)
# Rate columns, with the report key holding their numerator and denominator.
RATE_KEYS = {
    "deliv.": "delivery_rate",
    "contact": "contact_rate",
    "click": "click_rate",
    "promise": "promise_rate",
    "kept": "kept_rate",
    "roll": "roll_rate",
}


def reason_rows(report: Mapping[str, Any]) -> list[tuple[str, list[int], int]]:
    """``decision:reason`` rows with a count per stage and in all, most frequent first."""
    keys = [k for k in report["total"]["decisions"] if ":" in k or k == "sent"]
    rows = []
    for key in keys:
        counts = [s["decisions"].get(key, 0) for s in report["stages"]]
        rows.append((key, counts, report["total"]["decisions"][key]))
    return sorted(rows, key=lambda r: (-r[2], r[0]))


def print_report(report: Mapping[str, Any], console: Any) -> None:
    """Rich tables: by stage (activity, then outcome), by channel, decisions by reason."""
    from rich import box
    from rich.table import Table

    def new_table(title: str, first: str, columns: Any) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column(first, no_wrap=True)
        for name in columns:
            table.add_column(name, justify="right", no_wrap=True)
        return table

    period = report["period"]
    outcome = dict(STAGE_OUTCOME) | {
        "recovered": lambda g: money_text(g["recovered"], "\n"),
        "recovery": lambda g: recovery_text(g["recovery_rate"], "\n"),
    }
    for title, columns in (
        (f"by stage, {period['since']} to {period['until']}", STAGE_ACTIVITY),
        ("by stage: money and risk", tuple(outcome.items())),
    ):
        table = new_table(title, "stage", (name for name, _ in columns))
        for group in report["stages"]:
            table.add_row(group["stage"], *(fn(group) for _, fn in columns))
        table.add_row("all", *(fn(report["total"]) for _, fn in columns), style="bold")
        console.print(table)
    channels = new_table("by channel", "channel", (name for name, _ in CHANNEL_COLUMNS))
    for group in report["channels"]:
        channels.add_row(group["channel"], *(fn(group) for _, fn in CHANNEL_COLUMNS))
    console.print(channels)
    reasons = new_table(
        "decisions by reason",
        "decision:reason",
        [*(group["stage"] for group in report["stages"]), "all"],
    )
    for key, counts, all_count in reason_rows(report):
        reasons.add_row(key, *(str(c) for c in counts), str(all_count))
    console.print(reasons)
