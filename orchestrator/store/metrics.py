"""What ``/metrics`` reads from the database at scrape time: sends by channel and
status, and the occurrences due now. Counters of requests (rejections) live on the
``Server``; these gauges cost a query per scrape, none per request."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy.engine import Engine

from orchestrator.clock import Clock
from orchestrator.store.tables import OccurrenceRow, Send, table_of

__all__ = ["DbCollector"]


class DbCollector:
    """A prometheus collector: asked for its metrics at each scrape, it queries then."""

    def __init__(self, db: Engine, clock: Clock):
        self.db = db
        self.clock = clock

    def collect(self) -> Any:
        sends = GaugeMetricFamily(
            "outreach_sends", "Sends by channel and status", labels=["channel", "status"]
        )
        due = GaugeMetricFamily("outreach_due_occurrences", "Occurrences due now, not decided")
        send_t, occ_t = table_of(Send), table_of(OccurrenceRow)
        with self.db.connect() as conn:
            for channel, status, count in conn.execute(
                sa.select(send_t.c.channel, send_t.c.status, sa.func.count()).group_by(
                    send_t.c.channel, send_t.c.status
                )
            ):
                sends.add_metric([channel, status], count)
            due.add_metric(
                [],
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(occ_t)
                    .where(
                        occ_t.c.state.in_(("pending", "deferred")),
                        occ_t.c.next_attempt_at <= self.clock.now(),
                    )
                ).scalar_one(),
            )
        yield sends
        yield due
