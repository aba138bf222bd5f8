"""What an operator runs: ``make run`` binds the development gateway to loopback and does not
print secrets the operator configured."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from conftest import API_TOKEN, AUTH_TOKEN

ROOT = Path(__file__).parent.parent


def test_make_run_binds_the_development_gateway_to_loopback():
    recipe = subprocess.run(
        ["make", "-n", "-o", "install", "run"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    (start,) = [line for line in recipe.splitlines() if "honcho start" in line]
    environment = dict(re.findall(r"\b([A-Z_]+)=(\S+)", start))
    environment.pop("PATH", None)
    (web,) = [line for line in (ROOT / "Procfile").read_text().splitlines()
              if line.startswith("web:")]  # fmt: skip
    command = subprocess.run(
        ["bash", "-c", "echo " + web.removeprefix("web:")],
        env={"PATH": os.environ["PATH"], **environment}, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert f"--bind 127.0.0.1:{environment['PORT']}" in command
    # production (the Procfile as is, no GATEWAY_BIND) keeps its explicit bind
    production = subprocess.run(
        ["bash", "-c", "echo " + web.removeprefix("web:")],
        env={"PATH": os.environ["PATH"], "PORT": "8000"}, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    assert "--bind 0.0.0.0:8000" in production


def test_credentials_do_not_print_a_token_the_operator_configured(app):
    output = app.test_cli_runner().invoke(args=["credentials"]).output
    assert API_TOKEN not in output and AUTH_TOKEN not in output
    assert "set by the operator (GATEWAY_API_TOKEN)" in output
    revealed = app.test_cli_runner().invoke(args=["credentials", "--reveal"]).output
    assert API_TOKEN in revealed


def test_credentials_print_the_generated_development_token(make_app, database_url):
    app = make_app(database_url, GATEWAY_API_TOKEN="")
    output = app.test_cli_runner().invoke(args=["credentials"]).output
    token = app.extensions["gateway.settings"].api_tokens[0]
    assert f"API token (local development token; Authorization: Bearer ...): {token}" in output
