"""Dispatch: messages per second against the configured sender rate, and gateway CPU per message,
through a Twilio-compatible server that answers every create after a latency.

    python bench/dispatch.py                              # both databases, the default scenarios
    python bench/dispatch.py --db postgresql --rates 225,0 --latency 0.1 --concurrency 32

For each database and each sender rate (0: no limit in the gateway), N reminders to N patients
are queued (N sized for about ten seconds at that rate), tests/twilio_server.py runs in its own
process and answers each create after ``--latency`` seconds, and the dispatcher of one scheduler
process drains the outbox (``Dispatcher.drain``, as ``flask scheduler`` runs it) in this process.

Printed per scenario: messages/s over the span of the requests (first to last send start),
the share of the configured rate, and this process's CPU (user + system, every thread) per
message: the gateway's own cost, without the database server's and the Twilio server's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import benchlib  # noqa: E402

ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "b" * 32
SENDER = "+17865550100"
#: a Monday 10:00 in Miami: inside the sending window whatever the time of the run
DAYTIME = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)

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


def queue(app, count: int) -> None:
    """``count`` due reminders to ``count`` patients (implied consent: one a day each)."""
    from sqlalchemy import insert

    from gateway.store.models import OutboundMessage

    rows = [
        {
            "practice": "bench",
            "external_id": f"appt-{n}",
            "request_hash": "0" * 64,
            "phone": f"+1305{5560000 + n:07d}",
            "category": "transactional",
            "template": "appointment_reminder",
            "params": {"appointment_time": "2026-03-03T14:30:00-05:00"},
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
                func.min(OutboundMessage.send_started_at),
                func.max(OutboundMessage.send_started_at),
                func.count(),
            ).where(OutboundMessage.status == "sent")
        ).one()  # fmt: skip
    span = (last - first).total_seconds() if sent > 1 else float("nan")
    return sent, (sent - 1) / span if span else float("nan"), cpu / max(sent, 1), wall, total


def scenario(kind: str, rate: float, count: int, args, twilio_url: str) -> None:
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
            "TWILIO_API_BASE_URL": twilio_url, "PUBLIC_BASE_URL": "https://gateway.bench.test",
            "GATEWAY_DISPATCH_CONCURRENCY": str(args.concurrency),
            "GATEWAY_DISPATCH_BATCH": str(args.batch),
        })  # fmt: skip
        try:
            queue(app, count)
            sent, achieved, cpu_per_message, wall, total = measure(app, count)
        finally:
            app.extensions["gateway.transport"].close()
            app.extensions["gateway.db"].dispose()
    limit = f"{rate:g}/s" if rate else "none"
    share = f"{achieved / rate:6.1%}" if rate else "   n/a"
    print(
        f"{kind:10} limit {limit:>6}  sent {sent:5}/{count:<5} {achieved:7.1f} msg/s "
        f"({share} of limit)  CPU {cpu_per_message * 1000:5.2f} ms/msg  wall {wall:5.1f} s"
        f"  [{total}]",
        flush=True,
    )


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
    with benchlib.Server("twilio", argv, os.environ) as twilio:
        twilio.wait_http(f"http://127.0.0.1:{port}/")
        for kind in kinds:
            for rate in (float(r) for r in args.rates.split(",")):
                count = max(int(rate * args.seconds), 10) if rate else args.count
                scenario(kind, rate, count, args, f"http://127.0.0.1:{port}")


if __name__ == "__main__":
    main()
