"""Small store helpers the layers above call instead of building SQL: work run on commit, the
suppression list's add-once, the database ping, the re-encryption's schema check; and the
dashboard's fold of hourly counts into local days."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from conftest import PATIENT, get_database_of
from gateway.store import db, privacy, rekey
from gateway.store.models import Suppression
from gateway.web.console.stats import per_local_day

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)

# --- store.db.on_commit ------------------------------------------------------------------------


def test_work_on_commit_runs_once_after_the_commit_in_order(session):
    done: list[str] = []
    db.on_commit(session, lambda: done.append("first"))
    db.on_commit(session, lambda: done.append("second"))
    db.ping(session)
    assert done == []
    session.commit()
    assert done == ["first", "second"]
    session.commit()  # a later transaction does not run it again
    assert done == ["first", "second"]


def test_work_on_commit_is_dropped_by_a_rollback(session):
    done: list[str] = []
    db.on_commit(session, lambda: done.append("rolled back"))
    db.ping(session)
    session.rollback()
    session.commit()
    assert done == []


# --- store.privacy.suppress ----------------------------------------------------------------------


def test_suppress_adds_an_entry_once_per_practice_and_category(session):
    hashed = privacy.phone_hash("key", PATIENT)
    entry = {"practice": "shared", "hashed": hashed, "reason": "erased_after_opt_out", "now": NOW}
    assert privacy.suppress(session, category="marketing", **entry) is True
    assert privacy.suppress(session, category="marketing", **entry) is False  # already listed
    assert privacy.suppress(session, category="transactional", **entry) is True
    assert privacy.suppress(session, **{**entry, "practice": "split"}, category="marketing")
    session.commit()
    assert privacy.is_suppressed(session, "key", "shared", PATIENT, "marketing")
    assert not privacy.is_suppressed(session, "other key", "shared", PATIENT, "marketing")
    rows = session.scalars(sa.select(Suppression).order_by(Suppression.id)).all()
    assert [(r.practice, r.category, r.reason) for r in rows] == [
        ("shared", "marketing", "erased_after_opt_out"),
        ("shared", "transactional", "erased_after_opt_out"),
        ("split", "marketing", "erased_after_opt_out"),
    ]


# --- store.db.ping -------------------------------------------------------------------------------


def test_ping_raises_database_unavailable_when_nothing_answers(tmp_path):
    database = db.Database(f"sqlite:///{tmp_path / 'missing' / 'gateway.sqlite3'}")
    with database.sessions() as session, pytest.raises(db.DatabaseUnavailable):
        db.ping(session)
    assert issubclass(db.DatabaseUnavailable, db.DatabaseFailure)
    database.dispose()


# --- store.rekey ---------------------------------------------------------------------------------


def test_rotate_table_refuses_a_column_that_is_not_text_yet(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE old_rows (id INTEGER PRIMARY KEY, params JSON)"))
        connection.execute(sa.text("INSERT INTO old_rows (id, params) VALUES (1, NULL), (2, 5)"))
    with pytest.raises(rekey.NotMigrated) as raised:
        rekey.rotate_table(engine, "old_rows", ("params",), batch=10)
    assert raised.value.table == "old_rows"
    engine.dispose()


def test_the_encrypted_columns_come_from_the_models(app):
    columns = rekey.encrypted_columns()
    assert "body" in columns["outbound_messages"] and "body" in columns["inbound_messages"]
    assert all(names for names in columns.values())
    with get_database_of(app).engine.connect() as connection:
        stored = sa.inspect(connection)
        for table, names in columns.items():
            assert set(names) <= {c["name"] for c in stored.get_columns(table)}


# --- web.console.stats.per_local_day -------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")


def hour(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("hours", "days", "expected"),
    [
        ([], [date(2026, 3, 1)], [0]),
        # 04:00 UTC on 2 March is 23:00 on 1 March in New York (EST, UTC-5)
        ([(hour("2026-03-02T04:00"), 2), (hour("2026-03-02T05:00"), 3)],
         [date(2026, 3, 1), date(2026, 3, 2)], [2, 3]),
        # the spring-forward day has 23 hours: 04:00 UTC on 9 March is already EDT's midnight
        ([(hour("2026-03-08T04:00"), 1), (hour("2026-03-09T03:00"), 1),
          (hour("2026-03-09T04:00"), 1)],
         [date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)], [1, 1, 1]),
        # the fall-back day has 25 hours: 04:00 UTC on 2 November is still 1 November
        ([(hour("2026-11-01T04:00"), 1), (hour("2026-11-02T04:00"), 1),
          (hour("2026-11-02T05:00"), 1)],
         [date(2026, 11, 1), date(2026, 11, 2)], [2, 1]),
        # hours outside the days asked for are left out
        ([(hour("2026-02-01T12:00"), 9), (hour("2026-03-01T12:00"), 1)], [date(2026, 3, 1)],
         [1]),
    ],
)  # fmt: skip
def test_per_local_day(hours, days, expected):
    assert per_local_day(hours, NEW_YORK, days) == expected


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=24 * 40 - 1), st.integers(0, 1000)),
        max_size=60,
    ),
    st.sampled_from(["America/New_York", "Europe/London", "Asia/Kolkata", "UTC"]),
)
def test_per_local_day_keeps_every_count_inside_the_days(offsets, zone_name):
    zone = ZoneInfo(zone_name)
    start = datetime(2026, 2, 20, tzinfo=UTC)
    hours = [(start + timedelta(hours=offset), count) for offset, count in offsets]
    first = start.astimezone(zone).date() + timedelta(days=1)
    days = [first + timedelta(days=i) for i in range(30)]
    inside = sum(c for h, c in hours if days[0] <= h.astimezone(zone).date() <= days[-1])
    counts = per_local_day(hours, zone, days)
    assert len(counts) == len(days) and sum(counts) == inside
