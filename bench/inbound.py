"""Inbound webhook benchmark: the gateway against the bare-stack floor, on SQLite and PostgreSQL.

    .venv/bin/python bench/inbound.py                  # both databases, 10 s per measurement
    .venv/bin/python bench/inbound.py --duration 15 --databases postgresql

Needs wrk (Debian/Ubuntu: ``apt-get install -y wrk``) and, for the PostgreSQL half, a server
(``--postgres-url``, else ``GATEWAY_BENCH_POSTGRES_URL`` or ``GATEWAY_TEST_POSTGRES_URL``, else
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) on which it may create and drop a scratch
database. About 2 minutes with the defaults.

For each database, in one run, a fresh scratch database (migrated by Alembic; the floor's table
added) and two servers on loopback at the same time, each under the Procfile's web settings
(gunicorn, ``--workers ${WEB_CONCURRENCY:-2} --access-logfile -``, ``gunicorn.conf.py``):

- **gateway**: ``app:app`` with ``PUBLIC_BASE_URL`` and ``TWILIO_AUTH_TOKEN`` set (signatures are
  checked), the console transport, the example practices file;
- **floor**: ``bench/bare_app.py``, which only checks the signature with the twilio SDK's
  ``RequestValidator`` and inserts one row with SQLAlchemy (see its docstring).

Both get the same pre-signed webhooks (distinct MessageSids, 2,000 From numbers, ordinary
replies and STOP/START/HELP/YES keywords, see ``benchlib.BODIES``), in three phases:

1. warm-up (``--warmup`` seconds each, wrk, not reported);
2. **maximum throughput**: wrk, closed loop, ``--threads`` threads (default 1: the machine has
   2 cores, which the servers need) and ``--connections`` connections (default 8): requests/s
   and wrk's p50/p90/p99 (from writing the request to the last byte of the answer; connection
   set-up not included), and the CPU time per request of the server's processes (and, on
   PostgreSQL, of the database server's processes for the scratch database);
3. **fixed rate**: ``bench/paced.py`` (open loop, its own process) at ``--rate`` requests/s
   (default 300): p50/p90/p99 from each request's due time, connection set-up included.

Each phase runs in rounds of half of ``--duration`` seconds in the order gateway, floor, floor,
gateway, so that both get the same share of whatever else the machine is doing; requests/s are
over both rounds, wrk's percentiles the mean of the two rounds', and the fixed-rate percentiles
those of the worse round.

It then checks that every request got a 2xx and left its row, and prints the ratio gateway/floor
of requests/s with the targets of issue 5 (>= 80 % of the floor; p99 <= 25 ms at 300/s), the
machine's cores and load average, and the resident memory (VmRSS of the gunicorn master and its
workers) after the load. Servers are stopped and scratch databases dropped on exit (Ctrl-C too).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bare_app
import benchlib
from benchlib import BENCH, PYTHON

#: signatures are checked against this public URL (as behind a TLS-terminating proxy), so one
#: set of signed requests serves every server of the run, whatever its port
PUBLIC_BASE_URL = "https://sms.bench.example"
#: a generous upper bound of requests/s on this kind of machine, to size the request pools
MAX_RATE_GUESS = 3000
APPS = {
    "gateway": ("app:app", "inbound_messages"),
    "floor": ("bench.bare_app:create_app()", "bench_floor"),
}
INSTALL_WRK = "wrk is needed: apt-get install -y wrk (Debian/Ubuntu), brew install wrk (macOS)"


@dataclass
class Measurement:
    database: str
    app: str
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    #: CPU time of the web processes and (PostgreSQL) the database's server processes per request
    cpu_ms: float = 0.0
    #: the same at the fixed rate
    paced_cpu_ms: float = 0.0
    paced_rate: float = 0.0
    paced_p50_ms: float = 0.0
    paced_p90_ms: float = 0.0
    paced_p99_ms: float = 0.0
    rss_mib: float = 0.0
    processes: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _Running:
    """One server under test and what it has been sent so far."""

    name: str
    table: str
    server: benchlib.Server
    base: str
    rows_before: int
    sent: int = 0
    wrk_skip: int = 0
    paced_skip: int = 0
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    paced_cpu: float = 0.0
    percentiles: list[tuple[float, float, float]] = field(default_factory=list)
    paced: list[dict] = field(default_factory=list)
    result: Measurement | None = None


def wrk(url: str, requests_file: Path, skip: int, seconds: float, args: argparse.Namespace) -> dict:
    argv = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(BENCH / "inbound.lua"), url, "--", str(requests_file),
        str(skip),
    ]  # fmt: skip
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^BENCH (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"wrk printed no figures:\n{output}")
    return json.loads(match.group(1))


def paced(url: str, requests_file: Path, skip: int, rate: float, seconds: float) -> dict:
    argv = [
        PYTHON, str(BENCH / "paced.py"), "--url", url, "--rate", str(rate), "--duration",
        str(seconds), "--requests", str(requests_file), "--skip", str(skip),
    ]  # fmt: skip
    output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^BENCH (\{.*\})$", output, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"paced load printed no figures:\n{output}")
    return json.loads(match.group(1))


class _Cpu:
    """CPU seconds used by a server's process tree and, on PostgreSQL, by the server processes
    of every connection to the scratch database (the idle server's use next to nothing)."""

    def __init__(self, database: str, url: str) -> None:
        self.postgres = database == "postgresql"
        self.url = url

    def snapshot(self, server: benchlib.Server) -> dict[int, float]:
        pids = benchlib.process_tree(server.pid)
        if self.postgres:
            pids += benchlib.postgres_backends(self.url)
        return {pid: benchlib.cpu_seconds([pid]) for pid in pids}

    def used(self, server: benchlib.Server, before: dict[int, float]) -> float:
        after = self.snapshot(server)
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def _wrk_round(app: _Running, pools: dict[str, Path], seconds: float, cpu: _Cpu,
               args: argparse.Namespace, phase: str) -> None:  # fmt: skip
    before = cpu.snapshot(app.server) if phase == "max" else {}
    figures = wrk(app.base, pools[phase], app.wrk_skip if phase == "max" else 0, seconds, args)
    assert app.result is not None
    if phase == "max":
        app.cpu += cpu.used(app.server, before)
        app.wrk_skip += int(figures["requests"] * 1.1) + 10 * args.connections * args.threads
        app.requests += figures["requests"]
        app.seconds += figures["duration_us"] / 1e6
        app.percentiles.append(tuple(figures[f"p{p}_us"] / 1000 for p in (50, 90, 99)))
    app.sent += figures["requests"]
    errors = {k: v for k, v in figures.items() if k.endswith("errors") and v}
    if figures["timeouts"]:
        errors["timeouts"] = figures["timeouts"]
    if errors:
        app.result.problems.append(f"{phase}: wrk errors {errors}")
    if figures["wrapped"]:
        app.result.problems.append(f"{phase}: request pool exhausted (MessageSids repeated)")


def measure_database(
    database: str, url: str, apps: list[str], pools: dict[str, Path], keys: benchlib.Secrets,
    args: argparse.Namespace, workdir: Path,
) -> list[Measurement]:  # fmt: skip
    """Both servers up at once; rounds in the order A B B A (the machine's other load drifts:
    each app gets the same share of it); each round is half of ``--duration``."""
    cpu = _Cpu(database, url)
    running: list[_Running] = []
    try:
        for name in apps:
            target, table = APPS[name]
            port = benchlib.free_port()
            env = benchlib.gateway_env(url, PUBLIC_BASE_URL, workdir / f"instance-{name}", keys)
            rows_before = benchlib.count_rows(url, table)
            server = benchlib.gunicorn(f"{name} ({database})", target, port, env)
            app = _Running(name, table, server, f"http://127.0.0.1:{port}", rows_before)
            app.result = Measurement(database, name)
            running.append(app)
        for app in running:
            app.server.wait_http(app.base + "/healthz")
        for app in running:
            _wrk_round(app, pools, args.warmup, cpu, args, "warmup")
        order = running + running[::-1]
        for app in order:
            print(f"  {app.name}: max throughput, {args.duration / 2:g} s", flush=True)
            _wrk_round(app, pools, args.duration / 2, cpu, args, "max")
        for app in running:
            assert app.result is not None
            app.result.rss_mib, app.result.processes = benchlib.tree_rss_mib(app.server.pid)
        for app in order:
            time.sleep(1)
            print(f"  {app.name}: {args.rate:g} requests/s, {args.duration / 2:g} s", flush=True)
            before = cpu.snapshot(app.server)
            figures = paced(app.base, pools["paced"], app.paced_skip, args.rate, args.duration / 2)
            app.paced_cpu += cpu.used(app.server, before)
            app.paced.append(figures)
            app.paced_skip += figures["requests"]
            app.sent += figures["requests"]
        for app in running:
            if app.server.process.poll() is not None:
                assert app.result is not None
                app.result.problems.append(f"server exited: {app.server.tail()}")
    finally:
        for app in running:
            app.server.stop()

    results = []
    for app in running:
        result = app.result
        assert result is not None
        result.rps = app.requests / app.seconds
        result.cpu_ms = app.cpu / app.requests * 1000
        result.paced_cpu_ms = app.paced_cpu / sum(f["requests"] for f in app.paced) * 1000
        # wrk's percentiles of each round, averaged (the rounds are of equal length)
        result.p50_ms, result.p90_ms, result.p99_ms = (
            sum(p[i] for p in app.percentiles) / len(app.percentiles) for i in range(3)
        )
        # the fixed-rate rounds: the worse of the two (they cannot be merged exactly)
        result.paced_rate = sum(f["rate_sent"] for f in app.paced) / len(app.paced)
        worst = max(app.paced, key=lambda f: f["p99_us"])
        result.paced_p50_ms, result.paced_p90_ms, result.paced_p99_ms = (
            worst[f"p{p}_us"] / 1000 for p in (50, 90, 99)
        )
        for figures in app.paced:
            if figures["non_2xx"] or figures["errors"]:
                result.problems.append(
                    f"fixed rate: {figures['non_2xx']} non-2xx, {figures['errors']} errors "
                    "(timeouts: the server could not keep up)"
                )
        rows = benchlib.count_rows(url, app.table) - app.rows_before
        # wrk does not count the requests in flight when it stops: allow for them
        slack = 3 * args.connections * (2 + len(app.percentiles))
        if not app.sent - slack <= rows <= app.sent + slack:
            result.problems.append(f"{rows} rows written for {app.sent} requests")
        results.append(result)
    return results


def report(results: list[Measurement], args: argparse.Namespace) -> None:
    benchlib.heading("inbound webhook: results")
    print(f"machine: {benchlib.machine()}")
    print(
        f"gunicorn --workers {benchlib.WEB_WORKERS} (the Procfile's); wrk -t{args.threads} "
        f"-c{args.connections}, {args.duration:g} s; fixed rate {args.rate:g}/s for "
        f"{args.duration:g} s by bench/paced.py (1 thread, open loop)"
    )
    header = (
        f"{'database':<11}{'app':<9}{'req/s':>8}{'p50':>8}{'p90':>8}{'p99':>8}{'CPU/req':>9}"
        f"{'@rate/s':>9}{'p50':>8}{'p90':>8}{'p99':>8}{'RSS MiB':>9}"
    )
    print("\n" + header)
    print(f"{'':<28}{'(max throughput, ms)':<33}{'(fixed rate, ms)':>25}")
    for r in results:
        print(
            f"{r.database:<11}{r.app:<9}{r.rps:>8.0f}{r.p50_ms:>8.1f}{r.p90_ms:>8.1f}"
            f"{r.p99_ms:>8.1f}{r.cpu_ms:>9.2f}{r.paced_rate:>9.0f}{r.paced_p50_ms:>8.1f}"
            f"{r.paced_p90_ms:>8.1f}{r.paced_p99_ms:>8.1f}{r.rss_mib:>9.0f}"
        )
    print(
        "CPU/req: CPU ms per request of the gunicorn processes and, on PostgreSQL, of the\n"
        "database's server processes, at max throughput (less disturbed by other load)"
    )
    print()
    for database in dict.fromkeys(r.database for r in results):
        by_app = {r.app: r for r in results if r.database == database}
        gateway, floor = by_app.get("gateway"), by_app.get("floor")
        if gateway and floor and floor.rps:
            ratio = gateway.rps / floor.rps
            verdict = "meets" if ratio >= 0.8 else "BELOW"
            print(
                f"{database}: gateway/floor = {ratio:.0%} of the floor's requests/s "
                f"({verdict} the target of >= 80%); floor/gateway CPU per request: "
                f"{floor.cpu_ms / gateway.cpu_ms:.0%} at max throughput, "
                f"{floor.paced_cpu_ms / gateway.paced_cpu_ms:.0%} at {args.rate:g}/s "
                f"({gateway.paced_cpu_ms:.2f} and {floor.paced_cpu_ms:.2f} ms)"
            )
        if gateway:
            verdict = "meets" if gateway.paced_p99_ms <= 25 else "ABOVE"
            print(
                f"{database}: gateway p99 at {args.rate:g}/s = {gateway.paced_p99_ms:.1f} ms "
                f"({verdict} the target of <= 25 ms)"
            )
    problems = [(r, p) for r in results for p in r.problems]
    for r, problem in problems:
        print(f"PROBLEM {r.database} {r.app}: {problem}")
    if not problems:
        print("checks: every request answered 2xx and left its row; no MessageSid repeated")


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Inbound webhook throughput and latency: gateway against the bare floor."
    )
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of warm-up per server")
    parser.add_argument("--rate", type=float, default=300, help="fixed rate, requests/s")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--databases", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--apps", default="gateway,floor", help="comma-separated")
    parser.add_argument("--postgres-url", help="an admin URL of the PostgreSQL server")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit(INSTALL_WRK)
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    apps = [a.strip() for a in args.apps.split(",") if a.strip()]
    if set(databases) - {"sqlite", "postgresql"} or set(apps) - set(APPS):
        sys.exit("--databases: sqlite, postgresql; --apps: gateway, floor")
    if "postgresql" in databases and not benchlib.postgres_reachable(args.postgres_url):
        sys.exit("PostgreSQL is not reachable: pass --postgres-url or --databases sqlite")
    benchlib.terminate_on_sigterm()

    print(f"machine: {benchlib.machine()}", flush=True)
    keys = benchlib.Secrets.new()
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="gateway-bench-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        numbers = benchlib.phone_numbers(2000, benchlib.random.Random(11))
        url = PUBLIC_BASE_URL + benchlib.INBOUND_PATH
        sizes = {
            "warmup": int(MAX_RATE_GUESS * args.warmup) + 1000,
            "max": int(MAX_RATE_GUESS * args.duration * 1.1) + 1000,
            "paced": int(args.rate * args.duration) + 10,
        }
        pools = {}
        for phase, size in sizes.items():
            pools[phase] = workdir / f"{phase}.tsv"
            benchlib.write_requests(
                pools[phase],
                benchlib.inbound_requests(
                    size, url=url, auth_token=keys.auth_token, tag=phase, numbers=numbers
                ),
            )
        print(f"signed {sum(sizes.values())} requests in {time.monotonic() - started:.1f} s")
        for database in databases:
            with benchlib.scratch_database(database, args.postgres_url) as db_url:
                benchlib.migrate(db_url)
                bare_app.create_table(db_url)
                benchlib.heading(f"{database}: {', '.join(apps)}")
                for result in measure_database(database, db_url, apps, pools, keys, args, workdir):
                    results.append(result)
                    print(
                        f"{result.app}: {result.rps:.0f} req/s, p99 {result.p99_ms:.1f} ms, "
                        f"{result.cpu_ms:.2f} CPU ms/req; at {result.paced_rate:.0f}/s p99 "
                        f"{result.paced_p99_ms:.1f} ms",
                        flush=True,
                    )
                print(f"machine: {benchlib.machine()}", flush=True)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (servers stopped, scratch databases dropped)")
