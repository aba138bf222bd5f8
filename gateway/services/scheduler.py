"""The scheduler process: APScheduler running the dispatch pass and housekeeping.

Run it as its own process (``flask --app app scheduler``; the Procfile's ``scheduler``), never
inside gunicorn workers: each worker would run its own loop. Any number of scheduler processes
may run against one PostgreSQL database; the outbox's leases keep them from sending twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from gateway.services import event_delivery, reconcile, retention
from gateway.services.dispatch import Dispatcher
from gateway.store import outbox
from gateway.store.db import DatabaseUnavailable

log = logging.getLogger("gateway.scheduler")  # the name operators filter on

HOUSEKEEPING_SECONDS = 30
RECONCILE_SECONDS = 30
RETENTION_HOURS = 24
#: how often the event outbox is looked at (events reach the scheduling system within seconds)
EVENTS_SECONDS = 2


def build(
    app: Flask, dispatcher: Dispatcher | None = None, stop: threading.Event | None = None
) -> BlockingScheduler:
    """A scheduler with the gateway's jobs, not yet started. Setting ``stop`` ends a drain
    under way after the messages it has claimed."""
    settings = app.extensions["gateway.settings"]
    database = app.extensions["gateway.db"]
    transport = app.extensions["gateway.transport"]
    dispatcher = dispatcher or Dispatcher.from_app(app)
    scheduler = BlockingScheduler(timezone=UTC)

    def dispatch() -> None:
        _survive_database_outage("dispatch", lambda: dispatcher.drain(stop))

    def reconciliation() -> None:
        _survive_database_outage(
            "reconciliation", lambda: reconcile.run(database, settings, transport)
        )

    def housekeeping() -> None:
        def release() -> Any:
            with database.sessions() as session:
                counts = outbox.release_expired_leases(session)
            if any(counts.values()):
                log.warning("housekeeping: expired leases %s", counts)

        _survive_database_outage("housekeeping", release)

    def apply_retention() -> None:
        def purge_all() -> None:
            for practice in settings.practices.values():
                with database.sessions() as session:
                    counts = retention.purge(session, settings, practice)
                if any(counts.values()):
                    log.info("retention %s: %s", practice.slug, counts)

        _survive_database_outage("retention", purge_all)

    deliverer = event_delivery.from_app(app)

    def deliver_events() -> None:
        _survive_database_outage("events", deliverer.drain)

    jobs = (  # (job, id, interval): each runs at start, then at its interval; never two at once
        (dispatch, "dispatch", {"seconds": settings.dispatch_interval}),
        (housekeeping, "housekeeping", {"seconds": HOUSEKEEPING_SECONDS}),
        (reconciliation, "reconciliation", {"seconds": RECONCILE_SECONDS}),
        (deliver_events, "events", {"seconds": EVENTS_SECONDS}),
        (apply_retention, "retention", {"hours": RETENTION_HOURS}),
    )
    for job, job_id, interval in jobs:
        scheduler.add_job(
            job, "interval", **interval, id=job_id, next_run_time=datetime.now(UTC),
            max_instances=1, coalesce=True, misfire_grace_time=None,
        )  # fmt: skip
    return scheduler


def run(app: Flask) -> None:
    """Run until SIGTERM or SIGINT, then finish the pass under way and stop."""
    stopping = threading.Event()
    scheduler = build(app, stop=stopping)

    def stop(signum: int, _frame: Any) -> None:
        log.info("scheduler: signal %s, stopping after the messages claimed", signum)
        stopping.set()
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    settings = app.extensions["gateway.settings"]
    if settings.scheduler_metrics_port:
        from gateway.services import metrics

        metrics.serve_scheduler_metrics(settings.scheduler_metrics_port)
    log.info("scheduler: dispatch every %ss, transport %s", settings.dispatch_interval,
             app.extensions["gateway.transport"].name)  # fmt: skip
    scheduler.start()


def _survive_database_outage(job: str, work: Any) -> None:
    try:
        work()
    except DatabaseUnavailable as exc:  # the next run tries again; nothing claimed is lost
        log.error("%s: database unavailable (%s); retrying next run", job, type(exc.orig).__name__)
