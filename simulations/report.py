"""The closing table: metric before and at peak, the alert, time-to-fire and time-to-notify per channel."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from simulations.scenarios import Outcome
from simulations.watch import fmt, seconds


def stdout_console() -> Console:
    # Piped output (CI, tests, docs) gets a fixed width so the table does not wrap at 80 columns.
    return Console(width=None if sys.stdout.isatty() else 170, soft_wrap=False)


def result_table(outcomes: list[Outcome], *, with_recovery: bool = False) -> Table:
    table = Table(title="Fault simulations: from injection to notification", title_justify="left")
    for name in ("scenario", "metric", "before", "peak", "alert", "severity", "fired", "slack", "email"):
        table.add_column(
            name, justify="right" if name in {"before", "peak", "fired", "slack", "email"} else "left"
        )
    if with_recovery:
        table.add_column("resolved", justify="right")
    table.add_column("result")
    for outcome in outcomes:
        for w in outcome.watches:
            channels = w.channels
            email = seconds(w.notified_after.get("email")) if "email" in channels else "not routed"
            slack = seconds(w.notified_after.get("slack"))
            row = [
                w.scenario,
                w.expected.metric,
                fmt(w.before),
                fmt(w.peak),
                w.expected.alert,
                w.severity or "?",
                seconds(w.fired_after),
                slack,
                email,
            ]
            if with_recovery:
                if w.resolved_after is not None:
                    row.append(f"{w.resolved_after:.1f}s")
                elif w.recovery_waited is not None:
                    row.append(f">{w.recovery_waited:.0f}s")
                else:
                    row.append("-")
            row.append("[green]delivered[/]" if w.delivered else "[red]MISSING[/]")
            table.add_row(*row)
    return table


def print_report(
    outcomes: list[Outcome], *, with_recovery: bool = False, console: Console | None = None
) -> None:
    console = console or stdout_console()
    console.print()
    for outcome in outcomes:
        for line in outcome.summary:
            console.print(line, highlight=False, markup=False)
    watched = [o for o in outcomes if o.watches and o.waited]
    if watched:
        console.print(result_table(watched, with_recovery=with_recovery))
        console.print(
            "times are from the injection: fired = active in Alertmanager, slack/email = first firing "
            "notification received"
            + ("; resolved = from the clean-up to gone from Alertmanager" if with_recovery else ""),
            highlight=False,
        )
    also = sorted({name for o in outcomes for name in o.also_fired})
    if also or any(o.waited and not o.watches for o in outcomes):
        console.print(
            f"other alerts that became active meanwhile: {', '.join(also) or 'none'}", highlight=False
        )
