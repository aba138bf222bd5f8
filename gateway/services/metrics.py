"""Prometheus metrics (``prometheus-client``): what the gateway counts, and the text
``GET /metrics`` serves (the route: ``gateway.web.metrics``).

Counters and histograms are kept per process. Under gunicorn (several worker processes) and with
the scheduler as its own process, they are shared through prometheus-client's multiprocess mode:
every process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and a scrape of any web
worker adds them up. ``gunicorn.conf.py`` sets that directory when it is not set and marks a dead
worker's files; give the scheduler the same directory (``make run`` does), or let it serve its
own metrics on ``GATEWAY_SCHEDULER_METRICS_PORT``.

The queue figures (outbox depth, the oldest due message, the review queue) are read from the
database at each scrape, so they are right whichever process changed the rows.

Labels carry practice slugs, categories, outcomes, reasons and Twilio error codes: never a phone
number, a body or anything a patient typed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, request
from prometheus_client import (
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.metric_files import remove_stale_files  # noqa: F401 - where callers look
from gateway.store import db

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("gateway.metrics")  # the name operators filter on

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if os.environ.get(MULTIPROC_ENV):  # its files are written from the first count on
    try:
        os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
    except OSError as exc:
        raise RuntimeError(
            f"{MULTIPROC_ENV}: cannot create {os.environ[MULTIPROC_ENV]!r}: {exc.strerror}"
        ) from None

WEBHOOK_REQUESTS = Counter(
    "gateway_webhook_requests_total",
    "Twilio webhook requests by kind (inbound, status) and the HTTP status answered.",
    ["kind", "status"],
)
WEBHOOK_SECONDS = Histogram(
    "gateway_webhook_duration_seconds",
    "Time to answer a Twilio webhook, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INBOUND_MESSAGES = Counter(
    "gateway_inbound_messages_total",
    "Inbound texts by practice and what they were taken as (opt_out, opt_in, help, ...); "
    "duplicate deliveries of one MessageSid are counted with duplicate=true.",
    ["practice", "intent", "duplicate"],
)
SENDS = Counter(
    "gateway_sends_total",
    "Dispatch outcomes: sent, skipped (reason: why), deferred, retrying and failed (reason: the "
    "Twilio error code, or gave_up/render), uncertain, paced.",
    ["practice", "category", "outcome", "reason"],
)
DELIVERY_STATUSES = Counter(
    "gateway_delivery_statuses_total",
    "Final statuses Twilio reported for sent messages (delivered, undelivered, failed), with "
    "the error code.",
    ["practice", "status", "error_code"],
)
CONSENT_CHANGES = Counter(
    "gateway_consent_changes_total",
    "Consent events recorded (committed), by practice, category, action and source.",
    ["practice", "category", "action", "source"],
)


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


# -- counting ---------------------------------------------------------------------------------


def count_send(practice: str, category: str, outcome: str, reason: str = "") -> None:
    """One dispatch outcome (``sent``, ``deferred``, ``skipped``, ``failed``, ``retrying``, ...;
    ``none`` counts nothing) and its reason (a skip reason, or a Twilio or HTTP code)."""
    if outcome == "none":
        return
    label = code_label(reason) if reason.isdigit() else reason
    SENDS.labels(practice, category, outcome, label).inc()


def code_label(code: int | str | None) -> str:
    """An error code as a label: Twilio's codes (5 digits) and HTTP statuses as they are; any
    other number (a status callback may carry anything) as ``other``, so that labels stay few."""
    if code is None or code == "":
        return ""
    text = str(code)
    return text if text.isdigit() and 3 <= len(text) <= 5 else "other"


def count_on_commit(session: Session, counter: Counter, *labels: str) -> None:
    """Count ``counter`` with ``labels`` once the session's transaction commits (not if it is
    rolled back): a consent event counts when it is on record."""
    db.on_commit(session, lambda: counter.labels(*labels).inc())


# -- the queue figures, read at scrape time ---------------------------------------------------


class QueueCollector(Collector):
    """Outbox depth and the oldest due message's age; review queue size and its oldest item's
    age. One short read-only session per scrape."""

    def __init__(self, database: Any, now: Any, practices: Iterable[str] = ()) -> None:
        self.database = database
        self.now = now
        self.practices = tuple(practices)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from gateway.store.figures import queue_figures

        now: datetime = self.now()
        depth = GaugeMetricFamily(
            "gateway_outbox_messages",
            "Messages not finished, by practice and state: due (scheduled, time come), "
            "scheduled (later), sending, uncertain.",
            labels=["practice", "state"],
        )
        oldest_due = GaugeMetricFamily(
            "gateway_outbox_oldest_due_seconds",
            "Seconds since the oldest due message (scheduled, its attempt time passed) came due; "
            "0 when none is due.",
            labels=["practice"],
        )
        review_size = GaugeMetricFamily(
            "gateway_review_queue_messages",
            "Possible opt-outs awaiting staff review, by practice.",
            labels=["practice"],
        )
        review_age = GaugeMetricFamily(
            "gateway_review_queue_oldest_seconds",
            "Age of the oldest possible opt-out awaiting review; 0 when none waits.",
            labels=["practice"],
        )
        events_failing = GaugeMetricFamily(
            "gateway_event_deliveries_failing",
            "Event-webhook deliveries to the scheduling system not delivered: retrying (pending "
            "after a failed attempt) or failed (the retry schedule is spent), by practice.",
            labels=["practice", "state"],
        )
        up = GaugeMetricFamily(
            "gateway_database_up", "1 when the queue figures could be read from the database."
        )
        try:
            with self.database.sessions() as session:
                figures = queue_figures(session, now)
        except Exception as exc:  # a scrape must answer: the counters are still worth having
            log.error("metrics: queue figures unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        counts = {(practice, status): count for practice, status, count in figures.unfinished}
        oldest: dict[str, float] = {}
        for practice, count, earliest in figures.due:
            counts[(practice, "due")] = count
            counts[(practice, "scheduled")] = counts.get((practice, "scheduled"), 0) - count
            if earliest is not None:
                oldest[practice] = max(0.0, (now - _aware(earliest)).total_seconds())
        practices = sorted(
            set(self.practices) | {p for p, _ in counts} | {p for p, *_ in figures.reviews}
        )
        for practice in practices:
            for state in ("due", "scheduled", "sending", "uncertain"):
                depth.add_metric([practice, state], counts.get((practice, state), 0))
            oldest_due.add_metric([practice], oldest.get(practice, 0.0))
        waiting = {practice: (count, earliest) for practice, count, earliest in figures.reviews}
        for practice in practices:
            count, earliest = waiting.get(practice, (0, None))
            review_size.add_metric([practice], count)
            age = (now - _aware(earliest)).total_seconds() if earliest is not None else 0.0
            review_age.add_metric([practice], max(0.0, age))
        failing_counts = {
            (practice, status): count for practice, status, count in figures.failing_events
        }
        for practice in sorted(set(practices) | {p for p, _ in failing_counts}):
            for state, status in (("retrying", "pending"), ("failed", "failed")):
                count = failing_counts.get((practice, status), 0)
                events_failing.add_metric([practice, state], count)
        yield from (depth, oldest_due, review_size, review_age, events_failing, up)


def _aware(value: datetime) -> datetime:
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)


class _Scrape:
    """The collectors of one scrape, as the registry ``generate_latest`` reads."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterator[Any]:
        for collector in self.collectors:
            yield from collector.collect()


def exposition(database: Any, now: Any, practices: Iterable[str] = ()) -> bytes:
    """The Prometheus text of every process's counters and the queue figures."""
    if multiprocess_mode():
        counters: Any = multiprocess.MultiProcessCollector(None)
    else:
        counters = REGISTRY
    queues = QueueCollector(database, now, practices)
    return generate_latest(_Scrape([counters, queues]))  # type: ignore[arg-type]


# -- webhooks: count and time every answer ------------------------------------------------------

_WEBHOOK_KINDS = {"webhooks.inbound_message": "inbound", "webhooks.status_callback": "status"}


def instrument_webhooks(blueprint: Blueprint) -> None:
    """Count each webhook request by kind and HTTP status, and time it."""
    import time

    from flask import g

    @blueprint.before_request
    def _start() -> None:
        g.metrics_started = time.perf_counter()

    @blueprint.after_request
    def _finish(response: Response) -> Response:
        kind = _WEBHOOK_KINDS.get(request.endpoint or "", "other")
        started = g.pop("metrics_started", None)
        requests, seconds = _webhook_series(kind, response.status_code)
        requests.inc()
        if started is not None:
            seconds.observe(time.perf_counter() - started)
        return response


@cache
def _webhook_series(kind: str, status: int) -> tuple[Any, Any]:
    """The counter's and the histogram's series of one kind and status (few: kinds and the
    statuses a webhook answers), looked up once rather than by ``labels`` on every request."""
    return WEBHOOK_REQUESTS.labels(kind, str(status)), WEBHOOK_SECONDS.labels(kind)


def count_inbound(practice: str, intent: str, duplicate: bool) -> None:
    """One inbound text, by practice, what it was taken as, and whether it was a duplicate."""
    _inbound_series(practice, intent, "true" if duplicate else "false").inc()


@cache
def _inbound_series(practice: str, intent: str, duplicate: str) -> Any:
    return INBOUND_MESSAGES.labels(practice, intent, duplicate)


# -- the scheduler on its own port ---------------------------------------------------------------


def serve_scheduler_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve this process's metrics (no queue figures: the web's ``/metrics`` has them) on
    ``addr:port``, for a scheduler that shares no multiprocess directory with the web."""
    from prometheus_client import start_http_server

    start_http_server(port, addr=addr)
    log.info("scheduler metrics on http://%s:%s/metrics", addr, port)
