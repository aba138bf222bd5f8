"""A database that goes silent: webhooks and ``/healthz`` answer 503 within 5 s (Twilio gives up
after 15 s and then tries the fallback URL) with the pool warm, for a server that resets its
connections and for one that keeps its sockets open and never answers (a frozen primary, a
partition); and the gateway recovers by itself when the server is back."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy.engine import make_url

from conftest import TwilioActions, get_database_of
from gateway.store.models import Base
from tcp_proxy import TcpProxy

#: Twilio's own limit: past it Twilio gives up and tries the fallback URL. The gateway's bounds
#: (3 s a statement, 2 s to connect) answer in about 3 s here (bench figure in the README); the
#: test asserts the limit that matters, so that a busy machine cannot fail it.
BOUND = 15.0


def timed(call):
    """(the response, seconds it took) or (None, None) when it did not answer in 30 s."""
    result = {}

    def run():
        started = time.monotonic()
        result["response"] = call()
        result["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=30)
    return result.get("response"), result.get("seconds")


@pytest.mark.parametrize("kind", ["cut", "blackhole"])
def test_webhooks_answer_503_promptly_when_the_database_goes_silent(
    database_url, make_app, kind
):
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite is a file: it does not go silent")
    # the gateway's own connect bound, not the tests' patient one (conftest's connect_timeout)
    url = make_url(database_url).difference_update_query(["connect_timeout"])
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        app = make_app(url.set(port=proxy.port).render_as_string(hide_password=False),
                       GATEWAY_DATABASE_TIMEOUT="3")  # production's deadline, the one under test
        try:
            outage(app, proxy, kind)
        finally:  # the database is shared by the session's tests
            proxy.restore()
            with get_database_of(app).engine.begin() as connection:
                for table in reversed(Base.metadata.sorted_tables):
                    connection.execute(table.delete())


def outage(app, proxy: TcpProxy, kind: str) -> None:
    twilio = TwilioActions(app.test_client())
    client = app.test_client()
    for n in range(3):  # the pool is warm: connections open, idle, trusted
        assert twilio.inbound(f"hello {n}").status_code == 200
        assert client.get("/healthz").status_code == 200

    getattr(proxy, kind)()
    for call in (lambda: twilio.inbound("STOP"), lambda: client.get("/healthz"),
                 lambda: twilio.inbound("HELP")):  # fmt: skip
        response, seconds = timed(call)
        assert response is not None, "no answer: the request hangs on the database"
        assert response.status_code == 503
        assert seconds < BOUND

    proxy.restore()  # back: the next webhook works, with nothing done by hand
    assert twilio.inbound("STOP").status_code == 200
    assert client.get("/healthz").status_code == 200
