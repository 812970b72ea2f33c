"""The report as tables: its columns and how each value reads (rates as percentages,
money per currency), shared by the terminal and the HTML report, and the terminal's
Rich tables. The numbers themselves come from ``kpis.build_report``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from orchestrator.reporting.sources import sources_text


def rate_text(rate: Mapping[str, Any]) -> str:
    value = rate["value"]
    return "-" if value is None else f"{value:.1%}"


def rate_n_text(rate: Mapping[str, Any]) -> str:
    """``12.5% (3/24)``: the rate with its numerator and denominator (the terminal's)."""
    if rate["value"] is None:
        return "-"
    return f"{rate['value']:.1%} ({rate['numerator']}/{rate['denominator']})"


def money_text(amounts: Mapping[str, str], sep: str = ", ") -> str:
    return sep.join(f"{cur} {Decimal(v):,.2f}" for cur, v in amounts.items()) or "-"


def recovery_text(rates: Mapping[str, Mapping[str, Any]], sep: str = ", ") -> str:
    return sep.join(f"{cur} {rate_text(r)}" for cur, r in rates.items()) or "-"


def currencies(group: Mapping[str, Any]) -> list[str]:
    """Every currency a group has an amount recovered or a balance at entry in."""
    return sorted(set(group["recovered"]) | set(group["recovery_rate"]))


def recovered_text(group: Mapping[str, Any], sep: str = ", ") -> str:
    """The amount recovered in every currency of the group, ``0.00`` where nothing was
    paid: line for line with ``group_recovery_text``."""
    shown = {c: group["recovered"].get(c, "0") for c in currencies(group)}
    return money_text(shown, sep)


def group_recovery_text(group: Mapping[str, Any], sep: str = ", ") -> str:
    """The recovery rate in every currency of the group (``-`` without a balance at
    entry), in the same order as ``recovered_text``."""
    no_balance = {"value": None}
    rates = {c: group["recovery_rate"].get(c, no_balance) for c in currencies(group)}
    return recovery_text(rates, sep)


def cost_text(group: Mapping[str, Any]) -> str:
    """``USD 0.02``: a channel's cost in its currency; ``-`` when it has no cost set."""
    cost = group.get("cost")
    if cost is None:
        return "-"
    currency = group.get("cost_currency")
    return f"{currency} {cost}" if currency else cost


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
STAGE_OUTCOME: tuple[tuple[str, Any], ...] = (  # money: a line per currency, line for line
    ("recovered", lambda g: recovered_text(g, "\n")),
    ("recovery", lambda g: group_recovery_text(g, "\n")),
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
    ("cost", cost_text),
)
# Rate columns, with the report key holding their numerator and denominator.
RATE_KEYS = {
    "deliv.": "delivery_rate",
    "contact": "contact_rate",
    "click": "click_rate",
    "promise": "promise_rate",
    "kept": "kept_rate",
    "roll": "roll_rate",
    "paid": "payment_rate",
}


def reason_rows(report: Mapping[str, Any]) -> list[tuple[str, list[int], int]]:
    """``decision:reason`` rows with a count per stage and in all, most frequent first."""
    keys = [k for k in report["total"]["decisions"] if ":" in k or k == "sent"]
    rows = []
    for key in keys:
        counts = [s["decisions"].get(key, 0) for s in report["stages"]]
        rows.append((key, counts, report["total"]["decisions"][key]))
    return sorted(rows, key=lambda r: (-r[2], r[0]))


# The terminal splits the stage and channel tables so each rate can show its counts
# (``12.5% (3/24)``) within 100 columns.
TERMINAL_REACH = ("accts", "sends", "deliv.", "contact", "click")
TERMINAL_PROMISES = ("accts", "promise", "kept", "roll")
TERMINAL_CHANNEL_PROMISES = ("prom.", "kept", "opt-outs", "cost")


def _terminal_columns(columns: Any, names: tuple[str, ...]) -> list[tuple[str, Any]]:
    """``names`` of ``columns``, each rate column showing its numerator and denominator."""
    by_name = dict(columns)
    return [
        (name, (lambda g, key=RATE_KEYS[name]: rate_n_text(g[key])))
        if name in RATE_KEYS
        else (name, by_name[name])
        for name in names
    ]


def money_rows(group: Mapping[str, Any]) -> list[list[str]]:
    """One row per currency: currency, recovered, balance at entry, recovery rate; the
    risk counts on the first row only. A group with no money has one row of ``-``."""
    risk = [str(group[k]) for k in ("opt_outs", "complaints", "failed", "ambiguous")]
    rows = []
    for i, cur in enumerate(currencies(group) or ["-"]):
        rate = group["recovery_rate"].get(cur, {"value": None})
        rows.append(
            [
                cur,
                "-" if cur == "-" else f"{Decimal(group['recovered'].get(cur, '0')):,.2f}",
                "-" if cur == "-" else f"{Decimal(group['balance_at_entry'].get(cur, '0')):,.2f}",
                rate_text(rate),
                *(risk if i == 0 else [""] * len(risk)),
            ]
        )
    return rows


MONEY_HEADER = (
    "cur",
    "recovered",
    "at entry",
    "recovery",
    "opt-outs",
    "complaints",
    "failed",
    "ambiguous",
)


def print_report(report: Mapping[str, Any], console: Any) -> None:
    """Rich tables, each within 100 columns: by stage (reach, promises, money and risk,
    one line per currency), by channel, decisions by reason, complaints, and the
    comparison with the period before."""
    from rich import box
    from rich.table import Table

    def new_table(title: str, first: str, columns: Any) -> Table:
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column(first, no_wrap=True)
        for name in columns:
            table.add_column(name, justify="right", no_wrap=True)
        return table

    period = report["period"]
    for title, columns in (
        (f"by stage, {period['since']} to {period['until']}: reach", TERMINAL_REACH),
        ("by stage: promises and roll", TERMINAL_PROMISES),
    ):
        shown = _terminal_columns(STAGE_COLUMNS, columns)
        table = new_table(title, "stage", (name for name, _ in shown))
        for group in report["stages"]:
            table.add_row(group["stage"], *(fn(group) for _, fn in shown))
        table.add_row("all", *(fn(report["total"]) for _, fn in shown), style="bold")
        console.print(table)
    money = new_table("by stage: money and risk", "stage", MONEY_HEADER)
    for label, group in [*((g["stage"], g) for g in report["stages"]), ("all", report["total"])]:
        for i, row in enumerate(money_rows(group)):
            money.add_row(label if i == 0 else "", *row, style="bold" if label == "all" else None)
    console.print(money)
    for title, columns in (
        ("by channel: reach", TERMINAL_REACH),
        ("by channel: promises and cost", TERMINAL_CHANNEL_PROMISES),
    ):
        shown = _terminal_columns(CHANNEL_COLUMNS, columns)
        table = new_table(title, "channel", (name for name, _ in shown))
        for group in report["channels"]:
            table.add_row(group["channel"], *(fn(group) for _, fn in shown))
        console.print(table)
    _print_rest(report, console, new_table)


def _print_rest(report: Mapping[str, Any], console: Any, new_table: Any) -> None:
    """Decisions by reason, complaints and cases, the comparison, the breakdown."""
    reasons = new_table(
        "decisions by reason",
        "decision:reason",
        [*(group["stage"] for group in report["stages"]), "all"],
    )
    for key, counts, all_count in reason_rows(report):
        reasons.add_row(key, *(str(c) for c in counts), str(all_count))
    console.print(reasons)
    if "complaint_rates" in report:
        table = new_table("complaints per 10,000 contacts", "group", ("complaints / contacts",))
        for label, group in complaint_rows(report):
            table.add_row(label, per_10000_text(group))
        console.print(table)
        console.print(cases_text(report["cases"]))
    if "comparison" in report:
        compared = report["comparison"]
        before = compared["previous"]
        table = new_table(
            f"against the period before, {before['since']} to {before['until']}",
            "",
            ("this period", "before", "change"),
        )
        for row in comparison_rows(compared):
            table.add_row(*row)
        console.print(table)
    if "sources" in report:
        console.print(sources_text(report["sources"]))
    if "by" in report:
        print_breakdown(report, console)


COMPARISON_LABELS = {
    "accounts": "accounts",
    "sends": "sends",
    "delivery_rate": "delivery rate",
    "contact_rate": "contact rate",
    "promise_rate": "promise rate",
    "kept_rate": "kept rate",
    "recovered": "recovered",
    "recovery_rate": "recovery rate",
}


def comparison_rows(compared: Mapping[str, Any]) -> list[list[str]]:
    """``[label, this period, before, change]`` of each row of ``kpis.comparison``:
    counts as numbers, rates in % with changes in points, money per currency."""
    out = []
    for row in compared["rows"]:
        label = COMPARISON_LABELS[row["metric"]]
        now, then, change = row["current"], row["previous"], row["change"]
        if row["metric"] == "recovered":
            cur = row["currency"]
            cells = [f"{cur} {Decimal(v):,.2f}" for v in (now, then)]
            cells.append(f"{cur} {Decimal(change):+,.2f}")
        elif row["metric"].endswith("_rate"):
            cells = ["-" if v is None else f"{v:.1%}" for v in (now, then)]
            cells.append("-" if change is None else f"{change * 100:+.1f} pts")
        else:
            cells = [f"{now:,}", f"{then:,}", f"{change:+,}"]
        if "currency" in row and row["metric"] == "recovery_rate":
            label = f"{label} {row['currency']}"
        out.append([label, *cells])
    return out


def per_10000_text(group: Mapping[str, Any]) -> str:
    """``3 / 1,200 = 25.0``: complaints, contacts, and complaints per 10,000 contacts."""
    value = group["per_10000"]
    rate = "-" if value is None else f"{value:,.1f}"
    return f"{group['complaints']} / {group['contacts']:,} = {rate}"


def complaint_rows(report: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """``stage M1``, ``channel sms``, ``creditor acme``, ..., ``all``, with their rates."""
    rates = report["complaint_rates"]
    rows: list[tuple[str, Mapping[str, Any]]] = [
        (f"{dim} {group[dim]}", group)
        for dim in ("stage", "channel", "creditor")
        for group in rates[dim]
    ]
    return [*rows, ("all", rates["total"])]


def cases_text(cases: Mapping[str, Any]) -> str:
    opened = cases["opened"]
    return (
        f"cases opened: {opened['complaint']} complaints, {opened['dispute']} disputes; "
        f"at {cases['as_of']}: {cases['open']} open, {cases['overdue']} overdue"
    )


# --- the breakdown (--by) ------------------------------------------------------------------

BY_ACTIVITY: tuple[tuple[str, Any], ...] = (
    *STAGE_ACTIVITY[:-1],  # a group of the breakdown has no roll: a payment rate instead
    ("paid", lambda g: rate_text(g["payment_rate"])),
)
BY_OUTCOME: tuple[tuple[str, Any], ...] = (
    ("recovered", lambda g: money_text(g["recovered"])),
    ("per acct", lambda g: per_account_text(g["recovered_per_account"])),
    ("opt-outs", lambda g: str(g["opt_outs"])),
    ("complaints", lambda g: str(g["complaints"])),
)


def by_columns(by: str) -> tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
    """The breakdown's activity and outcome columns; by segment, with the roll and
    recovery rates (a group of accounts has a balance at stage entry, a send has none)."""
    if by != "segment":
        return BY_ACTIVITY, BY_OUTCOME
    roll = ("roll", lambda g: rate_text(g["roll_rate"]))
    recovery = ("recovery", lambda g: recovery_text(g["recovery_rate"]))
    return (*BY_ACTIVITY, roll), (*BY_OUTCOME[:2], recovery, *BY_OUTCOME[2:])


# The rates an arm is compared on, as the variant tables label them.
COMPARED_LABELS = (
    ("delivery", "delivery_rate"),
    ("contact", "contact_rate"),
    ("promise", "promise_rate"),
    ("kept", "kept_rate"),
    ("paid", "payment_rate"),
)
NOT_SIGNIFICANT = "not significant yet"


def per_account_text(rates: Mapping[str, Mapping[str, Any]], sep: str = ", ") -> str:
    return (
        sep.join(
            f"{cur} {'-' if r['value'] is None else format(r['value'], ',.2f')}"
            for cur, r in rates.items()
        )
        or "-"
    )


def group_label(by: str, group: Mapping[str, Any]) -> str:
    """How a group of the breakdown is named: its value, ``-`` for none."""
    value = group["variant"] if by == "variant" else group[by]
    if value is None:
        return "-"
    return f"{value:02d}:00" if by == "hour" else str(value)


def interval_text(rate: Mapping[str, Any]) -> str:
    """``4/20 = 20.0% [8.1, 41.6]``: a rate, its counts and its Wilson 95% interval."""
    if rate["value"] is None:
        return "-"
    low, high = rate["ci"]
    return (
        f"{rate['numerator']}/{rate['denominator']} = {rate['value']:.1%} "
        f"[{low * 100:.1f}, {high * 100:.1f}]"
    )


def verdict_text(diff: Mapping[str, Any]) -> str:
    return "significant" if diff["significant"] else NOT_SIGNIFICANT


def versus_text(diff: Mapping[str, Any] | None) -> str:
    """``+70.0 pts [+40.5, +83.9]`` over ``significant`` (or ``not significant yet``)
    and the accounts an arm needs to detect a difference that size."""
    if diff is None:
        return "-"
    low, high = diff["ci"]
    lines = [
        f"{diff['difference'] * 100:+.1f} pts [{low * 100:+.1f}, {high * 100:+.1f}]",
        verdict_text(diff),
    ]
    if diff.get("sample_size_per_arm") is not None:
        lines.append(f"{diff['sample_size_per_arm']:,} an arm to detect")
    return "\n".join(lines)


def money_versus_text(diffs: Mapping[str, Mapping[str, Any] | None]) -> str:
    lines = []
    for cur, diff in diffs.items():
        if diff is None:
            lines.append(f"{cur} -")
            continue
        low, high = diff["ci"]
        lines.append(
            f"{cur} {diff['difference']:+,.2f} [{low:+,.2f}, {high:+,.2f}]\n{verdict_text(diff)}"
        )
    return "\n".join(lines) or "-"


def variant_tables(report: Mapping[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    """By variant, one table per experiment (the groups outside any last): a column per
    arm, the baseline first; a row per rate with its interval, each followed by the arms'
    difference against the baseline. Returns ``(title, header, rows)``; a cell may hold
    several lines."""
    experiments: dict[Any, list[Mapping[str, Any]]] = {}
    for group in report["groups"]:
        experiments.setdefault(group["experiment"], []).append(group)
    return [_experiment_table(name, arms) for name, arms in experiments.items()]


def _experiment_table(
    experiment: str | None, arms: list[Mapping[str, Any]]
) -> tuple[str, list[str], list[list[str]]]:
    base = next((a["variant"] for a in arms if a["baseline"]), None)
    compared = experiment is not None and len(arms) > 1

    def versus(text: Any) -> list[str]:
        return [f"  vs {base}", *("baseline" if a["baseline"] else text(a["versus"]) for a in arms)]

    rows = [["accounts", *(str(a["accounts"]) for a in arms)]]
    for label, key in COMPARED_LABELS:
        rows.append([label, *(interval_text(a[key]) for a in arms)])
        if compared:
            rows.append(versus(lambda v, key=key: versus_text(v[key])))
    money = (per_account_text(a["recovered_per_account"], "\n") for a in arms)
    rows.append(["recovered/acct", *money])
    if compared:
        rows.append(versus(lambda v: money_versus_text(v["recovered_per_account"])))
    title = (
        "outside any experiment"
        if experiment is None
        else f"experiment {experiment}: each arm against {base}"
    )
    header = ["", *(group_label("variant", a) + (" (baseline)" * a["baseline"]) for a in arms)]
    return title, header, rows


def print_breakdown(report: Mapping[str, Any], console: Any) -> None:
    """The ``--by`` groups: by variant a table per experiment, else one table."""
    from rich import box
    from rich.table import Table

    by = report["by"]
    if by == "variant":
        for title, header, rows in variant_tables(report):
            table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
            table.add_column(header[0], no_wrap=True)
            for name in header[1:]:
                table.add_column(name, justify="right")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        return
    activity, outcome = by_columns(by)
    multiline = dict(outcome) | {
        "recovered": lambda g: money_text(g["recovered"], "\n"),
        "per acct": lambda g: per_account_text(g["recovered_per_account"], "\n"),
        "recovery": lambda g: recovery_text(g["recovery_rate"], "\n"),
    }
    outcome = tuple((name, multiline[name]) for name, _ in outcome)
    for title, columns in ((f"by {by}", activity), (f"by {by}: money and risk", outcome)):
        table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
        table.add_column(by, no_wrap=True)
        for name, _ in columns:
            table.add_column(name, justify="right", no_wrap=True)
        for group in report["groups"]:
            table.add_row(group_label(by, group), *(fn(group) for _, fn in columns))
        console.print(table)
