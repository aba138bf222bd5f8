"""Shared helpers of the benchmarks in ``bench/``: the machine, scratch databases, servers on
loopback, signed inbound webhooks, percentiles and the resident memory of process trees.

Nothing here is imported by the gateway; the scripts import it as ``benchlib`` (they run from
``bench/``, which is first on ``sys.path``).
"""

from __future__ import annotations

import base64
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PYTHON = sys.executable
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
#: the Procfile's web process: ``--workers ${WEB_CONCURRENCY:-2} --access-logfile -``
WEB_WORKERS = int(os.environ.get("WEB_CONCURRENCY") or 2)
INBOUND_PATH = "/webhooks/twilio/inbound"

#: the senders of ``practices.example.toml`` (the default GATEWAY_CONFIG): number -> weight
SENDERS = {"+17865550100": 5, "+17865550101": 1, "+13055550110": 3, "+13055550111": 1}


# --- the machine ----------------------------------------------------------------------------


def machine() -> str:
    """Cores and load average, printed next to every figure (the machine is shared)."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    usable = len(os.sched_getaffinity(0))
    return f"cores {os.cpu_count()} (usable {usable}), load average {load}"


def heading(text: str) -> None:
    print(f"\n== {text} ==", flush=True)


# --- databases ------------------------------------------------------------------------------


def postgres_admin_url(explicit: str | None = None) -> str:
    return (
        explicit
        or os.environ.get("GATEWAY_BENCH_POSTGRES_URL")
        or os.environ.get("GATEWAY_TEST_POSTGRES_URL")
        or DEFAULT_POSTGRES_URL
    )


@contextmanager
def scratch_database(kind: str, postgres_url: str | None = None) -> Iterator[str]:
    """A new, empty database: a SQLite file in a temporary directory, or a PostgreSQL database
    created on the server of ``postgres_url``; removed (dropped) on exit."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="gateway-bench-") as directory:
            yield f"sqlite:///{directory}/bench.sqlite3"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin_url = postgres_admin_url(postgres_url)
    name = f"gateway_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def postgres_reachable(postgres_url: str | None = None) -> bool:
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_admin_url(postgres_url), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means: not reachable
        return False
    finally:
        engine.dispose()


def count_rows(url: str, table: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


# --- the gateway's environment --------------------------------------------------------------


@dataclass(frozen=True)
class Secrets:
    """Fresh secrets for one bench run (never printed)."""

    auth_token: str
    api_token: str
    encryption_key: str
    hash_key: str
    secret_key: str

    @classmethod
    def new(cls) -> Secrets:
        return cls(
            auth_token=secrets.token_hex(16),
            api_token=secrets.token_urlsafe(24),
            encryption_key=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
            hash_key=secrets.token_urlsafe(32),
            secret_key=secrets.token_urlsafe(32),
        )


def gateway_env(database_url: str, base_url: str, instance: Path, keys: Secrets) -> dict[str, str]:
    """The environment of the gateway's processes: the machine's, without gateway or Twilio
    settings of its own, plus this run's database and secrets (console transport: no SID)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GATEWAY_", "TWILIO_"))
        and k not in ("DATABASE_URL", "PUBLIC_BASE_URL", "WEB_CONCURRENCY")
    }
    env.update(
        DATABASE_URL=database_url,
        PUBLIC_BASE_URL=base_url,
        TWILIO_AUTH_TOKEN=keys.auth_token,
        GATEWAY_API_TOKEN=keys.api_token,
        GATEWAY_ENCRYPTION_KEYS=keys.encryption_key,
        GATEWAY_HASH_KEY=keys.hash_key,
        GATEWAY_SECRET_KEY=keys.secret_key,
        GATEWAY_INSTANCE_PATH=str(instance),
        PATH=f"{Path(PYTHON).parent}:{os.environ.get('PATH', '')}",
    )
    return env


def migrate(database_url: str) -> None:
    """Alembic to head, in a child process (the bench process keeps no gateway state)."""
    subprocess.run(
        [PYTHON, "-c",
         "import sys; from gateway.store import migrate; migrate.upgrade(sys.argv[1])",
         database_url],
        cwd=ROOT, check=True,
    )  # fmt: skip


# --- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A process we started (in a session of its own), stopped with its children on exit."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        # unnamed (gone when closed): the server's output, shown if it fails to start
        self.log = tempfile.TemporaryFile(prefix="gateway-bench-log-")  # noqa: SIM115
        self.process = subprocess.Popen(
            list(argv), cwd=ROOT, env=dict(env), stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_http(self, url: str, timeout: float = 30) -> None:
        """Until ``url`` answers (any HTTP status), or raise with the server's output."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except urllib.error.HTTPError:
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        # workers left behind by a master that died: same process group
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def gunicorn(name: str, app: str, port: int, env: Mapping[str, str]) -> Server:
    """gunicorn with the Procfile's web settings (and ``gunicorn.conf.py``, read from the
    project directory), bound to loopback; its access log goes to a temporary file."""
    argv = [
        PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS),
        "--access-logfile", "-", app,
    ]  # fmt: skip
    return Server(name, argv, env)


def terminate_on_sigterm() -> None:
    """SIGTERM runs the ``finally`` blocks (servers stopped, databases dropped) like Ctrl-C."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# --- memory ---------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and all its descendants (from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time used so far by these processes (not their waited-for children)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


def postgres_backends(url: str) -> list[int]:
    """The server processes of the connections to the database of ``url`` (but this one's)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = :name "
                    "AND pid <> pg_backend_pid()"
                ),
                {"name": make_url(url).database},
            )
            return [int(pid) for (pid,) in rows]
    finally:
        engine.dispose()


def rss_kib(pid: int) -> int:
    """VmRSS of one process, in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(root: int) -> tuple[float, int]:
    """The summed VmRSS of a process tree in MiB, and how many processes it has."""
    pids = process_tree(root)
    return sum(rss_kib(p) for p in pids) / 1024, len(pids)


# --- inbound webhooks -----------------------------------------------------------------------

#: (weight, bodies): ordinary replies dominate; keywords and revocations are a minority
BODIES: tuple[tuple[int, tuple[str, ...]], ...] = (
    (60, (
        "Yes I'll be there", "C", "Confirmed, thank you!", "Can we move it to 4pm?",
        "Running about 10 min late, sorry", "What should I bring to the consultation?",
        "Ok 👍", "Thanks!", "Is parking validated?", "Sí, ahí estaré. Gracias",
        "Do I need to fast before the procedure?", "Perfect see you tomorrow",
        "Hi, this is Maria. I got your message about Thursday's appointment. Could you tell me "
        "whether I should arrive 15 minutes early to fill in the forms? Thank you so much!",
        "¿Puedo cambiar la cita para el viernes?",
    )),
    (5, ("I'll stop by at 3", "I need to cancel my appointment", "wrong number")),
    (12, ("STOP", "Stop", "stop please", "UNSUBSCRIBE", "PARAR", "Stop texting me")),
    (8, ("START", "Start", "UNSTOP", "YES")),
    (10, ("HELP", "help", "INFO", "AYUDA")),
    (5, ("Cancel", "END")),
)  # fmt: skip
_AREA_CODES = ("305", "786", "954", "561", "312", "212", "415", "713")


def phone_numbers(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct valid US mobile-looking numbers (E.164)."""
    import phonenumbers

    numbers: set[str] = set()
    while len(numbers) < count:
        exchange = rng.randrange(201, 999)
        if exchange % 100 == 11 or exchange == 555:
            continue
        text = f"+1{rng.choice(_AREA_CODES)}{exchange}{rng.randrange(10000):04d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(text)):
            numbers.add(text)
    return sorted(numbers)


def inbound_requests(
    count: int, *, url: str, auth_token: str, tag: str, numbers: Sequence[str], seed: int = 5
) -> list[tuple[str, str]]:
    """``count`` signed inbound webhooks as Twilio sends them: (signature, form-encoded body).

    Every MessageSid is distinct (the tag keeps the phases of one run apart); ``From`` is drawn
    from ``numbers``, ``To`` from the example practices' senders, ``Body`` from :data:`BODIES`.
    """
    from twilio.request_validator import RequestValidator

    rng = random.Random(f"{seed}-{tag}")
    validator = RequestValidator(auth_token)
    weights = [w for w, _ in BODIES]
    senders, sender_weights = list(SENDERS), list(SENDERS.values())
    prefix = uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{seed}-{uuid.uuid4()}").hex[:16]
    requests = []
    for n in range(count):
        sid = f"SM{prefix}{n:016x}"
        sender = rng.choices(senders, sender_weights)[0]
        from_ = rng.choice(numbers)
        body = rng.choice(rng.choices(BODIES, weights)[0][1])
        params = {
            "ToCountry": "US", "ToState": "FL", "SmsMessageSid": sid, "NumMedia": "0",
            "ToCity": "MIAMI", "FromZip": "33101", "SmsSid": sid, "FromState": "FL",
            "SmsStatus": "received", "FromCity": "MIAMI", "Body": body, "FromCountry": "US",
            "To": sender, "ToZip": "33125", "NumSegments": "1", "MessageSid": sid,
            "AccountSid": "AC" + "3" * 32, "From": from_, "ApiVersion": "2010-04-01",
        }  # fmt: skip
        signature = validator.compute_signature(url, params)
        requests.append((signature, urllib.parse.urlencode(params)))
    return requests


def write_requests(path: Path, requests: Sequence[tuple[str, str]]) -> None:
    """One request a line: signature, a tab, the form-encoded body (the wrk script reads it)."""
    with path.open("w", encoding="ascii") as file:
        for signature, body in requests:
            file.write(f"{signature}\t{body}\n")


# --- figures --------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(p / 100 * len(sorted_values))))
    return sorted_values[rank - 1]
