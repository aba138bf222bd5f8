"""Send-time decisions per second: the policy alone, and the decisions a dispatcher makes.

    .venv/bin/python bench/decisions.py                   # both databases, 5,000 reminders
    .venv/bin/python bench/decisions.py --db sqlite --count 20000 --repeat 5 --batch 500

For each database, a scratch database (migrated; PostgreSQL: created on ``--postgres-url``, else
``GATEWAY_BENCH_POSTGRES_URL`` or ``GATEWAY_TEST_POSTGRES_URL``, else the local server, and
dropped) is filled with ``--count`` queued reminders to as many patients of the example practices,
with what makes decisions differ: contacts (languages, time zones, minors with and without a
guardian, a do-not-text request with an alternate number, numbers Twilio marked unreachable),
consent histories (opt-outs, express opt-ins, marketing double opt-ins pending or confirmed),
recent sends that hit the frequency caps, suppression entries and expired reminders. The clock
is a Monday 10:00 in New York, inside the sending windows.

Timed, in this process, nothing sent and nothing written (the dispatcher's own code, built with
the app's settings and a console transport, so the bench follows the dispatcher as it changes):

- **decide**: ``policy.decide`` over the facts of every reminder, exactly those the dispatcher
  passed it in an untimed first run (pure);
- **batched**: what ``Dispatcher.prepare`` and ``_Pipeline.start`` do for a claimed batch
  (``--batch``, default ``GATEWAY_DISPATCH_BATCH``), but the locks, the pacing and the writes:
  in one read transaction a batch, the patients' contacts (``facts.contacts``, read once), the
  numbers each reminder may go to (``numbers_in``) and the batch's facts (``facts.gather``);
  then per reminder ``Dispatcher._decide`` (the text rendered by ``reminders.render_text``, then
  ``policy.decide``). Reported as dispatched, and without the rendering (``render_text`` then
  hands back the text it rendered in the first run);
- **one by one**: the same with batches of one reminder (a transaction and up to six queries a
  reminder), the cost when fact gathering is not batched; over a fifth of the reminders.

Every reminder is decided in its batch: the dispatcher would decide one that shares a number
(a guardian's, an alternate) with an earlier one of its batch on its own after that one's send
is recorded; there are few here, and their decisions cost the same.

Each figure is the best of ``--repeat`` runs (the machine is shared; its cores and load average
are printed), beside its target. The outcomes (send, defer, skip by reason) are printed as a
check. About 30 s with the defaults.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import benchlib

#: a Monday, 10:00 in New York: inside every sending window
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
TARGETS = {"sqlite": 20_000, "postgresql": 5_000}


@dataclass
class Timing:
    """Seconds spent, over one run, per part of the decision."""

    #: the read transactions: ``facts.contacts`` and ``facts.gather``
    gather: float = 0.0
    #: ``Dispatcher._decide``: the text rendered, then ``policy.decide``
    decide: float = 0.0

    @property
    def total(self) -> float:
        return self.gather + self.decide


# --- the data -------------------------------------------------------------------------------


def populate(app: Any, count: int, seed: int = 3) -> None:
    """``count`` queued reminders to ``count`` patients, and the history that decides them."""
    from sqlalchemy import insert

    from gateway.store.models import ConsentEvent, Contact, OutboundMessage, Suppression
    from gateway.store.privacy import phone_hash

    settings = app.extensions["gateway.settings"]
    rng = random.Random(seed)
    numbers = benchlib.phone_numbers(count + count // 10, rng)
    patients, spare = numbers[:count], numbers[count:]
    contacts, events, outbound, suppressions = [], [], [], []
    for n, phone in enumerate(patients):
        practice = "alluring" if n % 5 < 3 else "bellara"
        marketing = rng.random() < 0.1
        r = rng.random()
        if r < 0.7:  # most patients have a contact record; some have something that matters
            contact = {
                "practice": practice, "phone": phone, "do_not_text": False,
                "language": "es" if rng.random() < 0.2 else None,
                "time_zone": "America/Chicago" if rng.random() < 0.1 else None,
                "created_at": NOW - timedelta(days=400), "updated_at": NOW - timedelta(days=3),
                "date_of_birth": None, "guardian_phone": None, "alternate_phone": None,
                "unreachable": None,
            }  # fmt: skip
            r = rng.random()
            if r < 0.05:  # a minor (16 or 17), mostly with a guardian on file
                contact["date_of_birth"] = date(2009, 6, 1)
                if rng.random() < 0.8:
                    contact["guardian_phone"] = rng.choice(spare)
            elif r < 0.06:
                contact["date_of_birth"] = date(2011, 6, 1)  # under both minimum ages
            elif r < 0.07:
                contact["do_not_text"] = True
                if rng.random() < 0.5:
                    contact["alternate_phone"] = rng.choice(spare)
            elif r < 0.09:
                contact["unreachable"] = rng.choice(["invalid_number", "not_mobile"])
            else:
                contact["date_of_birth"] = date(1960 + rng.randrange(45), 1 + rng.randrange(12), 1)
            contacts.append(contact)

        def event(
            category: str, action: str, days_ago: float, practice: str = practice,
            phone: str = phone,
        ) -> None:  # fmt: skip
            events.append({
                "practice": practice, "phone": phone, "category": category, "action": action,
                "source": "keyword", "occurred_at": NOW - timedelta(days=days_ago),
                "recorded_at": NOW - timedelta(days=days_ago), "evidence": {"keyword": "BENCH"},
            })  # fmt: skip

        r = rng.random()
        if r < 0.08:
            event("transactional", "opt_out", 30)
        elif r < 0.23:
            event("transactional", "opt_out", 90)
            event("transactional", "opt_in", 20)  # express consent: no exemption caps
        if marketing:
            r = rng.random()
            if r < 0.4:
                event("marketing", "opt_in_requested", 60)
                event("marketing", "opt_in", 59)
            elif r < 0.5:
                event("marketing", "opt_in_requested", 1)  # pending: no marketing yet
            elif r < 0.6:
                event("marketing", "opt_in_requested", 30)  # lapsed
        if rng.random() < 0.25:  # texted recently: the caps may defer the reminder
            for k in range(1 + rng.randrange(3)):
                # in the daytime (13:00-23:00 UTC), as the sending windows allow
                day = NOW - timedelta(days=rng.randrange(7))
                at = day.replace(hour=13 + rng.randrange(10), minute=rng.randrange(60))
                at = at if at < NOW else at - timedelta(days=1)
                outbound.append(_message(practice, phone, f"sent-{n}-{k}", "transactional",
                                         status="sent", sent_to=phone, sent_at=at))  # fmt: skip
        if rng.random() < 0.01:
            suppressions.append({
                "practice": practice, "phone_hash": phone_hash(settings.hash_key, phone),
                "category": "transactional", "reason": "erased_after_opt_out", "created_at": NOW,
            })  # fmt: skip
        expires = None if rng.random() < 0.7 else NOW + timedelta(hours=rng.choice([-1, 6, 30]))
        if marketing:
            queued = _message(practice, phone, f"news-{n}", "marketing", template="practice_news",
                              params={"message": "Spring hours: open Saturdays until 2 PM."},
                              expires_at=expires)  # fmt: skip
        else:
            queued = _message(practice, phone, f"appt-{n}", "transactional", expires_at=expires)
        outbound.append(queued)
    engine = app.extensions["gateway.db"].engine
    with engine.begin() as connection:
        for model, rows in ((Contact, contacts), (ConsentEvent, events),
                            (OutboundMessage, outbound), (Suppression, suppressions)):  # fmt: skip
            for start in range(0, len(rows), 2000):
                connection.execute(insert(model), rows[start : start + 2000])


def _message(practice: str, phone: str, external_id: str, category: str, **values: Any) -> dict:
    row = {
        "practice": practice, "external_id": external_id, "request_hash": "0" * 64,
        "phone": phone, "category": category, "template": "appointment_reminder",
        "params": {"appointment_time": "2026-03-03T14:30:00-05:00", "location": "Suite 200"},
        "send_at": NOW, "expires_at": None, "status": "scheduled", "next_attempt_at": NOW,
        "attempts": 0, "created_at": NOW - timedelta(days=2), "updated_at": NOW,
        "sender": None, "sent_to": None, "sent_at": None, "send_started_at": None,
    }  # fmt: skip
    row.update(values)
    return row


# --- the decisions --------------------------------------------------------------------------


def dispatcher_for(app: Any) -> Any:
    """A dispatcher of the app's database and settings that would print what it sent (it sends
    nothing here: only its ``_decide`` is called), on the bench's clock."""
    import io

    from gateway.services.dispatch import Dispatcher
    from gateway.services.transport import ConsoleTransport

    return Dispatcher(app.extensions["gateway.db"], app.extensions["gateway.settings"],
                      ConsoleTransport(io.StringIO()), clock=lambda: NOW)  # fmt: skip


def decide_batches(dispatcher: Any, messages: list[Any], batch: int) -> tuple[Counter[str], Timing]:
    """Decide every message as the dispatcher does, ``batch`` at a time, writing nothing."""
    from gateway.core import log_fields
    from gateway.services.dispatch import Result
    from gateway.store import facts

    settings, sessions = dispatcher.settings, dispatcher.database.sessions
    outcomes: Counter[str] = Counter()
    timing = Timing()
    clock = time.perf_counter
    for start in range(0, len(messages), batch):
        chunk = messages[start : start + batch]
        began = clock()
        with sessions() as session:  # one read transaction: _Pipeline.start's and prepare's
            keys = {(m.practice, m.phone) for m in chunk}
            patients = facts.contacts(session, keys)  # as the dispatcher: read once a batch
            numbers = facts.numbers_in(patients, keys)
            found = facts.gather(session, chunk, settings.practices, now=NOW,
                                 hash_key=settings.hash_key, patients=patients)  # fmt: skip
        gathered = clock()
        for message in chunk:
            mine = numbers[(message.practice, message.phone)]
            with log_fields.practice_named(message.practice):
                decided = dispatcher._decide(message, found[message.id], mine, NOW)
            result = decided[0]
            outcomes["send" if not isinstance(result, Result) else str(result)] += 1
        timing.gather += gathered - began
        timing.decide += clock() - gathered
    return outcomes, timing


@contextmanager
def recording(seen: list[Any], texts: dict[int, Any]) -> Iterator[None]:
    """The first run: each ``policy.decide`` call's facts kept in ``seen``, each text rendered
    kept in ``texts`` (by its message's ``params``: one dict a message)."""
    from gateway.core import policy
    from gateway.services import reminders

    decide, render = policy.decide, reminders.render_text

    def keep_facts(facts: Any, now: datetime) -> Any:
        seen.append(facts)
        return decide(facts, now)

    def keep_text(template: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        text = texts[id(params)] = render(template, params, *args, **kwargs)
        return text

    policy.decide, reminders.render_text = keep_facts, keep_text
    try:
        yield
    finally:
        policy.decide, reminders.render_text = decide, render


@contextmanager
def rendered(texts: dict[int, Any]) -> Iterator[None]:
    """``reminders.render_text`` hands back the text the first run rendered for the message."""
    from gateway.services import reminders

    render = reminders.render_text
    reminders.render_text = lambda template, params, *args, **kwargs: texts[id(params)]
    try:
        yield
    finally:
        reminders.render_text = render


def decide_pure(facts_list: list[Any]) -> float:
    from gateway.core import policy

    decide = policy.decide
    began = time.perf_counter()
    for fact in facts_list:
        decide(fact, NOW)
    return time.perf_counter() - began


def decide_each(facts_list: list[Any]) -> dict[str, float]:
    """Microseconds per ``policy.decide`` call, by kind of outcome (send, defer, skip)."""
    from gateway.core import policy

    spent: Counter[str] = Counter()
    count: Counter[str] = Counter()
    clock = time.perf_counter
    for fact in facts_list:
        began = clock()
        decision = policy.decide(fact, NOW)
        kind = _label(decision)
        spent[kind] += clock() - began
        count[kind] += 1
    return {kind: spent[kind] / count[kind] * 1e6 for kind in count}


def _label(decision: Any) -> str:
    from gateway.core import policy

    if isinstance(decision, policy.Send):
        return "send"
    if isinstance(decision, policy.Defer):
        return "defer"
    return "skip"


def best(runs: int, run: Callable[[], Timing]) -> Timing:
    return min((run() for _ in range(runs)), key=lambda t: t.total)


def measure(kind: str, args: argparse.Namespace) -> dict[str, float]:
    from sqlalchemy import select

    from gateway import create_app
    from gateway.store.models import OutboundMessage

    keys = benchlib.Secrets.new()
    with (
        benchlib.scratch_database(kind, args.postgres_url) as url,
        tempfile.TemporaryDirectory(prefix="gateway-bench-") as directory,
    ):
        benchlib.migrate(url)
        app = create_app({
            "DATABASE_URL": url, "GATEWAY_CONFIG": str(benchlib.ROOT / "practices.example.toml"),
            "GATEWAY_INSTANCE_PATH": directory, "GATEWAY_ENV": "test",
            "TWILIO_AUTH_TOKEN": keys.auth_token, "GATEWAY_API_TOKEN": keys.api_token,
            "GATEWAY_ENCRYPTION_KEYS": keys.encryption_key, "GATEWAY_HASH_KEY": keys.hash_key,
            "GATEWAY_SECRET_KEY": keys.secret_key,
        })  # fmt: skip
        database = app.extensions["gateway.db"]
        try:
            populate(app, args.count)
            dispatcher = dispatcher_for(app)
            batch = args.batch or dispatcher.batch
            with database.sessions() as session:
                messages = list(session.scalars(
                    select(OutboundMessage).where(OutboundMessage.status == "scheduled")
                    .order_by(OutboundMessage.id)
                ))  # fmt: skip
            seen: list[Any] = []
            texts: dict[int, Any] = {}
            with recording(seen, texts):  # warm-up, and the facts and texts
                outcomes, _ = decide_batches(dispatcher, messages, batch)
            batched = best(args.repeat, lambda: decide_batches(dispatcher, messages, batch)[1])
            with rendered(texts):
                no_render = best(
                    args.repeat, lambda: decide_batches(dispatcher, messages, batch)[1]
                )
            single = messages[: max(1, len(messages) // 5)]  # one by one is slow: a fifth
            one_by_one = best(args.repeat, lambda: decide_batches(dispatcher, single, 1)[1])
            pure = min(decide_pure(seen) for _ in range(args.repeat))
            each = decide_each(seen)
        finally:
            database.dispose()
    count = len(messages)
    target = TARGETS[kind]
    figures = {
        "decide": len(seen) / pure,
        "batched": count / batched.total,
        "batched_no_render": count / no_render.total,
        "one_by_one": len(single) / one_by_one.total,
        "gather_share": batched.gather / batched.total,
    }

    def line(name: str, figure: float, note: str = "") -> str:
        return f"  {name:<30}{figure:>10,.0f} decisions/s{note}"

    verdict = "meets" if figures["batched"] >= target else "BELOW"
    print(
        f"{kind}: {count} reminders, batches of {batch}\n"
        + line("policy.decide alone", figures["decide"],
               f" ({', '.join(f'{k} {us:.1f} us' for k, us in sorted(each.items()))} each)")
        + "\n"
        + line("batched, as dispatched", figures["batched"],
               f"   target >= {target:,}/s: {verdict} (x{figures['batched'] / target:.2f});"
               f" gathering {figures['gather_share']:.0%}")
        + "\n"
        + line("batched, without rendering", figures["batched_no_render"]) + "\n"
        + line("one by one (batches of 1)", figures["one_by_one"],
               f"   batched is x{figures['batched'] / figures['one_by_one']:.1f}")
        + "\n"
        f"  outcomes: {', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))}\n"
        f"  machine: {benchlib.machine()}",
        flush=True,
    )  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--count", type=int, default=5000, help="queued reminders")
    parser.add_argument("--batch", type=int, default=0, help="default: GATEWAY_DISPATCH_BATCH")
    parser.add_argument("--repeat", type=int, default=3, help="runs; the best is reported")
    parser.add_argument("--postgres-url", help="an admin URL of the PostgreSQL server")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not benchlib.postgres_reachable(args.postgres_url):
        sys.exit("PostgreSQL is not reachable: pass --postgres-url or --db sqlite")
    benchlib.terminate_on_sigterm()
    benchlib.heading(f"send-time decisions; {benchlib.machine()}")
    for kind in kinds:
        measure(kind, args)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (scratch databases dropped)")
