"""The scheduler process: its jobs, and the real loop sending a due reminder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from conftest import PATIENT, app_config
from gateway.services import scheduler
from gateway.store.models import utcnow

ROOT = Path(__file__).resolve().parent.parent
ZONES = ["America/New_York", "Europe/London", "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo",
         "Pacific/Auckland", "Pacific/Honolulu", "America/Los_Angeles"]  # fmt: skip


def daytime_zone() -> str:
    """A zone where the local time is now well inside 08:00-20:00."""
    now = utcnow()
    return next(z for z in ZONES if 9 <= now.astimezone(ZoneInfo(z)).hour < 18)


def test_jobs_never_overlap_and_coalesce(app):
    jobs = {job.id: job for job in scheduler.build(app).get_jobs()}
    assert set(jobs) == {"dispatch", "housekeeping", "reconciliation", "retention", "events"}
    for job in jobs.values():
        assert job.max_instances == 1
        assert job.coalesce is True
    assert jobs["dispatch"].trigger.interval.total_seconds() == 2.0


def test_dispatch_interval_comes_from_the_environment(make_app, database_url):
    app = make_app(database_url, GATEWAY_DISPATCH_INTERVAL="0.5")
    job = scheduler.build(app).get_job("dispatch")
    assert job.trigger.interval.total_seconds() == 0.5


@pytest.mark.slow
def test_the_scheduler_process_sends_a_due_reminder_and_stops_on_sigterm(
    api, database_url, tmp_path
):
    # The real clock runs in the subprocess: give the patient a zone where it is daytime now.
    api.patch(
        f"/api/v1/contacts/{PATIENT}", json={"practice": "shared", "time_zone": daytime_zone()}
    )
    api.enqueue(send_at=utcnow().isoformat(), expires_at=None)
    env = {
        **os.environ,
        **app_config(database_url, tmp_path / "instance", GATEWAY_DISPATCH_INTERVAL="0.2"),
        "PYTHONUNBUFFERED": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "app", "scheduler"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 300  # a guard against a hang
        while api.reminder()["status"] != "sent" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert api.reminder()["status"] == "sent"
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=120)[0].decode()
    assert process.returncode == 0, output
    assert "+13055550123" in output  # the console transport printed the message
    assert "reminder of your appointment" in output
