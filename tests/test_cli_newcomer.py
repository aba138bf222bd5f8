"""The commands a newcomer runs first: ``flask text`` finds the gateway on $PORT or
PUBLIC_BASE_URL, ``flask credentials`` says which transport and tokens are in use."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest
from werkzeug.serving import make_server

from conftest import API_TOKEN
from gateway.cli.commands import default_url


def invoke(app, args, **env):
    with app.app_context():  # as the `flask` command has one
        return app.test_cli_runner().invoke(args=args, env=env)


@pytest.mark.parametrize(
    ("public_base_url", "env", "expected"),
    [
        (None, {}, "http://127.0.0.1:8000"),
        (None, {"PORT": "8101"}, "http://127.0.0.1:8101"),
        (None, {"PORT": " "}, "http://127.0.0.1:8000"),
        ("https://sms.example.com", {"PORT": "8101"}, "https://sms.example.com"),
    ],
)
def test_the_gateway_is_found_where_it_runs(public_base_url, env, expected):
    assert default_url(SimpleNamespace(public_base_url=public_base_url), env) == expected


@pytest.fixture
def served(database_url, make_app):
    """The gateway on a free loopback port, without PUBLIC_BASE_URL (as `make run`)."""

    def serve(**settings: str):
        app = make_app(database_url, PUBLIC_BASE_URL="", **settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return server.server_port

    servers: list = []
    yield serve
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_flask_text_follows_port(database_url, make_app, served):
    port = served()
    result = invoke(make_app(database_url, PUBLIC_BASE_URL=""),
                    ["text", "--from", "(305) 555-0123", "HELP"], PORT=str(port))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.startswith("reply: Shared Line Clinic")


def test_a_signature_mismatch_says_what_to_align(database_url, make_app, served):
    port = served(TWILIO_AUTH_TOKEN="another-auth-token-0123456789abcd")
    result = invoke(make_app(database_url, PUBLIC_BASE_URL=""),
                    ["text", "--from", "(305) 555-0123", "HELP"], PORT=str(port))  # fmt: skip
    assert result.exit_code == 1
    assert "403" in result.output and "TWILIO_AUTH_TOKEN" in result.output


@pytest.mark.parametrize(
    ("settings", "transport"),
    [
        ({}, "Transport: console"),
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_API_BASE_URL": "http://127.0.0.1:4011"},
         "Transport: Twilio at http://127.0.0.1:4011 (TWILIO_API_BASE_URL)"),
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32}, "Transport: Twilio at https://api.twilio.com"),
    ],
)  # fmt: skip
def test_credentials_tell_the_transport_and_tokens(database_url, make_app, settings, transport):
    app = make_app(database_url, **settings)
    output = invoke(app, ["credentials"], GATEWAY_API_TOKEN=API_TOKEN).output
    lines = output.splitlines()
    assert lines[0].startswith(transport), output
    assert lines[1].startswith("API token (GATEWAY_API_TOKEN") and API_TOKEN not in output
    revealed = invoke(app, ["credentials", "--reveal"], GATEWAY_API_TOKEN=API_TOKEN).output
    assert revealed.splitlines()[1].endswith(API_TOKEN)
    assert "Webhook auth token" in lines[2]
    assert lines[3] == "Webhooks signed for: https://gateway.example.test (PUBLIC_BASE_URL)"


def test_the_api_token_alone_for_a_shell_variable(app):
    result = invoke(app, ["credentials", "--api-token"])
    assert result.output == API_TOKEN + "\n"
