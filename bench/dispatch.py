"""Dispatch: messages per second against the configured sender rate, and gateway CPU per message,
through a Twilio-compatible server that answers every create after a latency.

    python bench/dispatch.py                              # both databases, the default scenarios
    python bench/dispatch.py --db postgresql --rates 225,0 --latency 0.1 --concurrency 32

For each database and each sender rate (0: no limit in the gateway), N reminders to N patients
are queued (N sized for about ten seconds at that rate), tests/twilio_server.py runs in its own
process and answers each create after ``--latency`` seconds, and the dispatcher of one scheduler
process drains the outbox (``Dispatcher.drain``, as ``flask scheduler`` runs it) in this process.

Printed per scenario: messages/s over the span of the answers (Twilio's first answer to its
last: ``sent_at``, recorded as each answer arrives; not ``send_started_at``, which a batch writes
before its requests start, or the pacing slot it reserved), the share of the configured rate,
and this process's CPU (user + system, every thread) per message: the gateway's own cost,
without the database server's and the Twilio server's (SQLite's work is this process's).

The floor (``--no-floor`` leaves it out): the bare ``twilio`` SDK sending the same number of
messages, in this process, to the same Twilio-compatible server. It is ``twilio.rest.Client``
with the gateway's HTTP client (``gateway.services.transport._HttpClient``: the timeout the
gateway's transport is built with, the SDK's own connection pool, the requests rebased onto the
local server), called from a ThreadPoolExecutor of ``--concurrency`` threads as
``client.messages.create(to=..., from_=..., body=..., status_callback=...)``, each message to
a number of its own, with the text the gateway sends (the reminder rendered as the dispatcher
renders it for implied consent; a note is printed if the gateway recorded another) and the
gateway's status callback URL: nothing of the gateway around it, no database, no policy. Its
figures are taken as the gateway's are: messages/s over the span of the answers, and this
process's CPU (``time.process_time``, every thread) around the sending, per message.

When it is measured: right before each unlimited scenario (rate 0), at that scenario's count
(``--count``), so that the two runs share the machine's load as closely as two runs in turn
can; the ratios printed under that scenario (capacity: the gateway's msg/s over the floor's;
CPU: the gateway's CPU per message over the floor's; the targets: >= 0.8x and <= 1.5x) are
against that floor. Once more at the end of the run, with its change from the first floor: how
far the machine drifted during the run (the machine is shared), i.e. how far to trust the
ratios. Rate-limited scenarios get no ratio: their figure is the share of the limit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib  # noqa: E402

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "b" * 32
SENDER = "+17865550100"
#: a Monday 10:00 in Miami: inside the sending window whatever the time of the run
DAYTIME = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PUBLIC_BASE_URL = "https://gateway.bench.test"
TEMPLATE = "appointment_reminder"
PARAMS = {"appointment_time": "2026-03-03T14:30:00-05:00"}
#: the targets of the gateway against the floor
CAPACITY_TARGET, CPU_TARGET = 0.8, 1.5

PRACTICES = """
[practices.bench]
name = "Bench Clinic"
time_zone = "America/New_York"
help_contact = "+1 786-305-8649"

[practices.bench.senders]
transactional = "{sender}"

[practices.bench.rate_limit]
transactional = {rate}
"""


def phone(n: int) -> str:
    """The ``n``-th patient's number (the floor sends to the same ones)."""
    return f"+1305{5560000 + n:07d}"


@dataclass(frozen=True)
class Figures:
    """One run's figures: messages sent, msg/s over the span of the send starts, CPU per
    message (s), wall time (s)."""

    sent: int
    rate: float
    cpu: float
    wall: float


def span_rate(sent: int, first: float, last: float) -> float:
    """Messages/s from the first answer to the last (nan for fewer than two)."""
    span = last - first
    return (sent - 1) / span if sent > 1 and span > 0 else float("nan")


def floor_text() -> str:
    """The reminder's text as the dispatcher sends it to the bench's patients: implied consent
    (the exemption's one segment of 160), the practice's language, GSM-7 look-alikes put in."""
    from gateway.config.practices import parse_practices
    from gateway.core import policy, recipients
    from gateway.services import reminders

    practice = parse_practices(tomllib.loads(PRACTICES.format(sender=SENDER, rate=0)))["bench"]
    language = recipients.language_for(None, practice.language)
    text = reminders.render_text(
        TEMPLATE, PARAMS, practice, language, max_chars=policy.EXEMPT_MAX_CHARS
    )
    return text.body


def floor(count: int, concurrency: int, twilio_url: str, body: str) -> Figures:
    """The bare SDK: ``count`` creates, ``concurrency`` at a time, with the gateway's client."""
    from twilio.rest import Client

    from gateway.services.dispatch import STATUS_CALLBACK_PATH
    from gateway.services.transport import _HttpClient, transport_for

    # the timeout and base URL of the transport create_app builds for these settings
    gateway_transport = transport_for(  # connections: as create_app sizes them
        account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, api_base_url=twilio_url,
        connections=concurrency + 4,
    )  # fmt: skip
    http = _HttpClient(
        timeout=gateway_transport.timeout, api_base_url=gateway_transport.api_base_url,
        connections=gateway_transport.connections,
    )  # fmt: skip
    gateway_transport.close()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    messages = client.messages  # the SDK's lazy imports, before the clock starts
    callback = PUBLIC_BASE_URL + STATUS_CALLBACK_PATH
    answers: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        try:
            messages.create(to=phone(n), from_=SENDER, body=body, status_callback=callback)
        except Exception as exc:  # noqa: BLE001 - counted and named, not raised
            with lock:
                failures.append(type(exc).__name__)
            return
        with lock:
            answers.append(time.monotonic())

    wall, cpu = time.monotonic(), time.process_time()
    try:
        with ThreadPoolExecutor(concurrency, "floor") as pool:
            for _ in pool.map(send, range(count)):
                pass
    finally:
        cpu = time.process_time() - cpu
        wall = time.monotonic() - wall
        if http.session is not None:
            http.session.close()
    if failures:
        print(f"floor: {len(failures)} sends failed ({', '.join(sorted(set(failures)))})")
    sent = len(answers)
    rate = span_rate(sent, min(answers), max(answers)) if answers else float("nan")
    return Figures(sent, rate, cpu / max(sent, 1), wall)


def print_floor(figures: Figures, count: int) -> None:
    """The floor's line, its columns under the scenarios' (no limit, so no share of it)."""
    print(
        f"{'floor':10} {'bare SDK':12}  sent {figures.sent:5}/{count:<5} {figures.rate:7.1f} "
        f"msg/s {'':19}CPU {figures.cpu * 1000:5.2f} ms/msg  wall {figures.wall:5.1f} s",
        flush=True,
    )


def print_ratios(gateway: Figures, floor: Figures) -> None:
    """The gateway against the floor measured just before it, with the targets."""
    capacity, cpu = gateway.rate / floor.rate, gateway.cpu / floor.cpu
    print(
        f"  vs floor: capacity {capacity:.2f}x, CPU/msg {cpu:.2f}x  "
        f"(target >= {CAPACITY_TARGET:g}x capacity, <= {CPU_TARGET:g}x CPU)",
        flush=True,
    )


def print_drift(last: Figures, first: Figures) -> None:
    """How far the floor moved during the run: the machine's drift."""
    print(
        f"  drift since the first floor: msg/s {last.rate / first.rate - 1:+.1%}, "
        f"CPU/msg {last.cpu / first.cpu - 1:+.1%}",
        flush=True,
    )


def queue(app, count: int) -> None:
    """``count`` due reminders to ``count`` patients (implied consent: one a day each)."""
    from sqlalchemy import insert

    from gateway.store.models import OutboundMessage

    rows = [
        {
            "practice": "bench",
            "external_id": f"appt-{n}",
            "request_hash": "0" * 64,
            "phone": phone(n),
            "category": "transactional",
            "template": TEMPLATE,
            "params": PARAMS,
            "send_at": DAYTIME,
            "expires_at": None,
            "status": "scheduled",
            "next_attempt_at": DAYTIME,
            "attempts": 0,
            "created_at": DAYTIME,
            "updated_at": DAYTIME,
        }  # fmt: skip
        for n in range(count)
    ]
    with app.extensions["gateway.db"].engine.begin() as connection:
        connection.execute(insert(OutboundMessage), rows)


def measure(app, count: int):
    from sqlalchemy import func, select

    from gateway.services.dispatch import Dispatcher, PassSummary
    from gateway.store.models import OutboundMessage
    from gateway.store.pacing import Pacer

    settings, database = app.extensions["gateway.settings"], app.extensions["gateway.db"]
    started, wall_start = time.monotonic(), time.time()

    def ticking() -> datetime:  # the real clock's pace, from a daytime moment
        return DAYTIME + timedelta(seconds=time.monotonic() - started)

    pacer = Pacer(database.sessions, settings.sender_rates(), now=lambda: ticking().timestamp())
    dispatcher = Dispatcher.from_app(app, clock=ticking, pacer=pacer)
    cpu = time.process_time()
    total = PassSummary()
    deadline = time.monotonic() + 600
    while total.sent < count and time.monotonic() < deadline:
        total.merge(dispatcher.drain())
        if total.sent < count:
            time.sleep(0.05)  # what waits behind the pace comes due in a moment
    cpu = time.process_time() - cpu
    wall = time.time() - wall_start
    with database.sessions() as session:
        first, last, sent = session.execute(
            select(
                func.min(OutboundMessage.sent_at),
                func.max(OutboundMessage.sent_at),
                func.count(),
            ).where(OutboundMessage.status == "sent")
        ).one()  # fmt: skip
        bodies = set(session.scalars(
            select(OutboundMessage.body).where(OutboundMessage.status == "sent")
        ))  # fmt: skip
    achieved = span_rate(sent, 0, (last - first).total_seconds()) if sent > 1 else float("nan")
    return Figures(sent, achieved, cpu / max(sent, 1), wall), total, bodies


def scenario(kind: str, rate: float, count: int, args, twilio_url: str, body: str) -> Figures:
    from gateway import create_app

    with (
        benchlib.scratch_database(kind) as url,
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as directory,
    ):
        benchlib.migrate(url)
        practices = Path(directory) / "practices.toml"
        practices.write_text(PRACTICES.format(sender=SENDER, rate=rate))
        app = create_app({
            "DATABASE_URL": url, "GATEWAY_CONFIG": str(practices),
            "GATEWAY_INSTANCE_PATH": directory, "GATEWAY_ENV": "test",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_API_BASE_URL": twilio_url, "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "GATEWAY_DISPATCH_CONCURRENCY": str(args.concurrency),
            "GATEWAY_DISPATCH_BATCH": str(args.batch),
        })  # fmt: skip
        try:
            queue(app, count)
            figures, total, bodies = measure(app, count)
        finally:
            app.extensions["gateway.transport"].close()
            app.extensions["gateway.db"].dispose()
    limit = f"{rate:g}/s" if rate else "none"
    share = f"{figures.rate / rate:6.1%}" if rate else "   n/a"
    print(
        f"{kind:10} limit {limit:>6}  sent {figures.sent:5}/{count:<5} {figures.rate:7.1f} msg/s "
        f"({share} of limit)  CPU {figures.cpu * 1000:5.2f} ms/msg  wall {figures.wall:5.1f} s"
        f"  [{total}]",
        flush=True,
    )
    if bodies - {body}:  # the floor would not be sending what the gateway sends
        print(f"  note: the gateway sent {len(bodies - {body})} text(s) unlike the floor's")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument(
        "--rates",
        default="1,12,225,0",
        help="sender limits in messages/s, comma-separated; 0: no limit",
    )
    parser.add_argument(
        "--seconds", type=float, default=10, help="size each run for about this long at its rate"
    )
    parser.add_argument("--count", type=int, default=2000, help="messages for the unlimited run")
    parser.add_argument("--latency", type=float, default=0.1, help="Twilio's answer time (s)")
    parser.add_argument("--concurrency", type=int, default=32, help="sends in flight")
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument(
        "--no-floor", action="store_true", help="leave out the bare SDK's floor and the ratios"
    )
    args = parser.parse_args()
    benchlib.terminate_on_sigterm()
    os.environ.pop("GATEWAY_CONFIG", None)
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    port = benchlib.free_port()
    benchlib.heading(
        f"dispatch: Twilio latency {args.latency * 1000:g} ms, {args.concurrency} sends in "
        f"flight, batch {args.batch}; {benchlib.machine()}"
    )
    argv = [
        benchlib.PYTHON, "tests/twilio_server.py", "--port", str(port), "--account-sid",
        ACCOUNT_SID, "--auth-token", AUTH_TOKEN, "--deliver-after", "0",
        "--latency", str(args.latency),
    ]  # fmt: skip
    twilio_url = f"http://127.0.0.1:{port}"
    body = floor_text()
    floors: list[Figures] = []
    with benchlib.Server("twilio", argv, os.environ) as twilio:
        twilio.wait_http(f"{twilio_url}/")
        for kind in kinds:
            for rate in (float(r) for r in args.rates.split(",")):
                count = max(int(rate * args.seconds), 10) if rate else args.count
                if rate or args.no_floor:
                    scenario(kind, rate, count, args, twilio_url, body)
                    continue
                floors.append(floor(count, args.concurrency, twilio_url, body))
                print_floor(floors[-1], count)
                print_ratios(scenario(kind, rate, count, args, twilio_url, body), floors[-1])
        if floors:
            last = floor(args.count, args.concurrency, twilio_url, body)
            print_floor(last, args.count)
            print_drift(last, floors[0])


if __name__ == "__main__":
    main()
