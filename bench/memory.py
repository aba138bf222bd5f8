"""Resident memory of the web and scheduler processes, idle and after load.

    .venv/bin/python bench/memory.py                      # both databases, about 1 minute
    .venv/bin/python bench/memory.py --db sqlite --duration 20 --reminders 1000

Needs wrk (``apt-get install -y wrk``) and, for PostgreSQL, a server on which it may create and
drop a scratch database (``--postgres-url``, else ``GATEWAY_BENCH_POSTGRES_URL`` or
``GATEWAY_TEST_POSTGRES_URL``, else the local server).

For each database: the Procfile's two processes on a scratch database, with the example
practices and the console transport: ``web`` (gunicorn, ``--workers ${WEB_CONCURRENCY:-2}``,
``--access-logfile -``) and ``scheduler`` (``flask --app app scheduler``). Their memory is read
once they are up, then ``--reminders`` reminders are enqueued through the API (due now, to as
many patients, each given a time zone where it is daytime) while wrk (1 thread, 8 connections)
posts signed inbound webhooks for ``--duration`` seconds, and the scheduler decides and sends
what is due (at the example senders' rate limit; the rest waits for it). Then, after the
scheduler's next passes, memory again.

Memory is VmRSS from /proc/<pid>/status, summed over each process tree (the gunicorn master and
its workers; the scheduler): the target of issue 5 is web + scheduler under 300 MB together (MB
here: MiB). A sum of RSS counts the pages the processes share (the interpreter, libraries) once
per process; PSS (/proc/<pid>/smaps_rollup, shared pages divided among their users) is printed
next to it, and the peak RSS (VmHWM) of each process, summed the same way.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import benchlib

TARGET_MIB = 300
PUBLIC_BASE_URL = "https://sms.bench.example"


def tree_memory(pid: int) -> tuple[float, float, float, int]:
    """(VmRSS, VmHWM, Pss) in MiB, each summed over the tree under ``pid``, and its size."""
    pids = benchlib.process_tree(pid)
    peak = pss = 0
    for p in pids:
        try:
            peak += _kib(Path(f"/proc/{p}/status"), "VmHWM:")
            pss += _kib(Path(f"/proc/{p}/smaps_rollup"), "Pss:")
        except OSError:
            pass
    rss, count = benchlib.tree_rss_mib(pid)
    return rss, peak / 1024, pss / 1024, count


def _kib(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


#: zones one of which is in its daytime whenever the bench runs
_ZONES = ("America/New_York", "America/Los_Angeles", "Pacific/Honolulu", "Asia/Tokyo",
          "Asia/Kolkata", "Europe/Paris", "Australia/Sydney", "America/Sao_Paulo")  # fmt: skip


def daytime_zone() -> str:
    """A zone where it is now between 10:00 and 18:00, so that reminders are sent, not deferred."""
    now = datetime.now(UTC)
    return min(_ZONES, key=lambda z: abs(now.astimezone(ZoneInfo(z)).hour + 0.5 - 14))


def api(base: str, token: str, method: str, path: str, body: dict) -> bool:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=40) as response:
            return response.status in (200, 201)
    except urllib.error.HTTPError as exc:  # refused, or 503 (database locked): not counted
        exc.close()
        return False
    except (urllib.error.URLError, TimeoutError):
        return False


def enqueue(base: str, token: str, numbers: list[str]) -> int:
    """One reminder per number through the API, due now, each patient in a zone where it is
    daytime (so that the scheduler sends rather than defers); how many were accepted."""
    now = datetime.now(UTC).replace(microsecond=0)
    zone = daytime_zone()
    accepted = 0
    for n, number in enumerate(numbers):
        practice = "alluring" if n % 2 else "bellara"
        api(base, token, "PATCH", f"/api/v1/contacts/{urllib.parse.quote(number)}",
            {"practice": practice, "time_zone": zone})  # fmt: skip
        body = {
            "id": f"bench-{n}", "practice": practice, "to": number,
            "send_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "template": "appointment_reminder",
            "params": {"appointment_time": (now + timedelta(days=2)).isoformat(),
                       "location": "Suite 200"},
        }  # fmt: skip
        accepted += api(base, token, "POST", "/api/v1/reminders", body)
    return accepted


def outbox_counts(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT status, reason IS NOT NULL, count(*) FROM outbound_messages "
                    "GROUP BY status, reason IS NOT NULL"
                )
            )
            return {
                f"{status}{' (deferred)' if status == 'scheduled' and why else ''}": int(count)
                for status, why, count in rows
            }
    finally:
        engine.dispose()


def measure(kind: str, args: argparse.Namespace, workdir: Path) -> tuple[float, float]:
    keys = benchlib.Secrets.new()
    numbers = benchlib.phone_numbers(args.reminders + 2000, benchlib.random.Random(17))
    requests_file = workdir / f"inbound-{kind}.tsv"
    benchlib.write_requests(
        requests_file,
        benchlib.inbound_requests(
            3000 * int(args.duration) + 1000, url=PUBLIC_BASE_URL + benchlib.INBOUND_PATH,
            auth_token=keys.auth_token, tag=f"memory-{kind}", numbers=numbers[args.reminders:],
        ),
    )  # fmt: skip
    with benchlib.scratch_database(kind, args.postgres_url) as url:
        benchlib.migrate(url)
        port = benchlib.free_port()
        base = f"http://127.0.0.1:{port}"
        env = benchlib.gateway_env(url, PUBLIC_BASE_URL, workdir / f"instance-{kind}", keys)
        web = benchlib.gunicorn(f"web ({kind})", "app:app", port, env)
        scheduler = benchlib.Server(
            f"scheduler ({kind})", [benchlib.PYTHON, "-m", "flask", "--app", "app", "scheduler"],
            env,
        )  # fmt: skip
        try:
            web.wait_http(base + "/healthz")
            time.sleep(3)  # the scheduler's first passes
            idle_web, idle_scheduler = tree_memory(web.pid), tree_memory(scheduler.pid)
            wrk = subprocess.Popen(
                ["wrk", "-t1", "-c8", f"-d{int(args.duration)}s", "-s",
                 str(benchlib.BENCH / "inbound.lua"), base, "--", str(requests_file)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            accepted = enqueue(base, keys.api_token, numbers[: args.reminders])
            output = wrk.communicate()[0]
            time.sleep(6)  # the scheduler's passes after the load
            if web.process.poll() is not None or scheduler.process.poll() is not None:
                raise RuntimeError(f"a process exited:\n{web.tail()}\n{scheduler.tail()}")
            loaded_web, loaded_scheduler = tree_memory(web.pid), tree_memory(scheduler.pid)
            counts = outbox_counts(url)
        finally:
            scheduler.stop()
            web.stop()
    match = re.search(r"^BENCH (\{.*\})$", output, re.MULTILINE)
    figures = json.loads(match.group(1)) if match else {"requests": 0, "status_errors": 0}
    inbound = f"{figures['requests']} inbound webhooks"
    if figures["status_errors"] or figures.get("timeouts"):
        inbound += f" ({figures['status_errors']} non-2xx, {figures.get('timeouts', 0)} timeouts)"
    total = loaded_web[0] + loaded_scheduler[0]
    rows = (
        (f"web ({loaded_web[3]} processes)", idle_web, loaded_web),
        (f"scheduler ({loaded_scheduler[3]} process)", idle_scheduler, loaded_scheduler),
    )
    table = "\n".join(
        f"  {name:26}{idle[0]:>7.0f} MiB{loaded[0]:>8.0f} MiB{loaded[2]:>8.0f} MiB"
        f"{loaded[1]:>8.0f} MiB"
        for name, idle, loaded in rows
    )
    print(
        f"{kind}: {inbound} in {args.duration:g} s, {accepted} of {args.reminders} reminders "
        f"enqueued; outbox after: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))}\n"
        f"  {'':26}{'RSS idle':>11}{'RSS loaded':>12}{'PSS loaded':>12}{'peak RSS':>12}\n"
        f"{table}\n"
        f"  web + scheduler after load: {total:.0f} MiB RSS, "
        f"{loaded_web[2] + loaded_scheduler[2]:.0f} MiB PSS "
        f"({'meets' if total < TARGET_MIB else 'ABOVE'} the target of < {TARGET_MIB} MB RSS)\n"
        f"  machine: {benchlib.machine()}",
        flush=True,
    )
    return loaded_web[0], loaded_scheduler[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--duration", type=float, default=15, help="seconds of inbound load")
    parser.add_argument("--reminders", type=int, default=300, help="reminders enqueued")
    parser.add_argument("--postgres-url", help="an admin URL of the PostgreSQL server")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)")
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in kinds and not benchlib.postgres_reachable(args.postgres_url):
        sys.exit("PostgreSQL is not reachable: pass --postgres-url or --db sqlite")
    benchlib.terminate_on_sigterm()
    benchlib.heading(f"memory of the web and scheduler processes; {benchlib.machine()}")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as directory:
        for kind in kinds:
            measure(kind, args, Path(directory))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (servers stopped, scratch databases dropped)")
