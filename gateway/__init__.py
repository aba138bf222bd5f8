"""SMS consent and messaging gateway: the application factory."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("gateway")  # the name operators filter on


def create_app(test_config: Mapping[str, str] | None = None) -> Flask:
    """Build the app from the environment; ``test_config`` overrides environment variables."""
    # imported here, not with the package: gunicorn's master process imports the package for
    # its logger class (``gateway.core.logs``) and never builds the app
    from flask import Flask

    from gateway.config import load_settings

    env = {**os.environ, **(test_config or {})}
    instance_path = env.get("GATEWAY_INSTANCE_PATH") or None
    app = Flask(__name__, instance_path=instance_path)
    settings = load_settings(env, Path(app.instance_path))
    from gateway.store import crypto

    crypto.configure(settings.encryption_keys)
    app.extensions["gateway.settings"] = settings
    app.config["MAX_CONTENT_LENGTH"] = 256 * 1024
    app.json.sort_keys = False

    from gateway import cli
    from gateway.services import transport
    from gateway.store import db
    from gateway.web import health, metrics, openapi, webhooks
    from gateway.web.api import contacts as contacts_api
    from gateway.web.api import events as events_api
    from gateway.web.api import reminders as reminders_api
    from gateway.web.api import reviews as reviews_api

    database = db.init_app(app, settings.database_url, pool_size=settings.dispatch_concurrency + 4,
                           timeout=settings.database_timeout)  # fmt: skip
    from gateway.store import event_outbox

    event_outbox.enable(database.engine, (p.slug for p in settings.practices.values()
                                          if p.events_url))  # fmt: skip
    app.extensions["gateway.transport"] = transport.transport_for(
        account_sid=settings.twilio_account_sid,
        auth_token=settings.twilio_auth_token,
        api_base_url=settings.twilio_api_base_url,
        # the dispatcher's requests in flight, and the reconciliation's and the web's beside
        connections=settings.dispatch_concurrency + 4,
    )
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(reminders_api.bp)
    app.register_blueprint(contacts_api.bp)
    app.register_blueprint(reviews_api.bp)
    app.register_blueprint(events_api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(metrics.bp)
    cli.init_app(app)
    _register_error_handlers(app)
    from gateway.web import log_context

    log_context.init_app(app)  # before the console's CSRF check: a refused form has an id too
    from gateway.web import console

    app.register_blueprint(console.bp)
    # the API, the webhooks, health and metrics authenticate each request themselves and get no
    # console cookie: every blueprint but the console's is exempt from its CSRF check
    console.init_app(app, csrf_exempt=[blueprint for blueprint in app.blueprints.values()
                                       if blueprint is not console.bp])  # fmt: skip
    _configure_logging(settings.log_format)
    return app


def _register_error_handlers(app: Flask) -> None:
    from flask import jsonify
    from werkzeug.exceptions import HTTPException

    from gateway.store.db import DatabaseUnavailable, NoConnectionFree

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        return jsonify(error=exc.description), exc.code

    from gateway.store.crypto import KeyMissing

    @app.errorhandler(KeyMissing)
    def _key_missing(exc: KeyMissing) -> Any:
        log.error("encryption key problem: %s", exc)  # names the setting, never a key or text
        return jsonify(error="stored data cannot be decrypted: check GATEWAY_ENCRYPTION_KEYS"), 500

    @app.errorhandler(DatabaseUnavailable)
    def _database_unavailable(exc: DatabaseUnavailable) -> Any:
        # Twilio then tries the number's fallback URL; the scheduling system retries.
        log.error("database unavailable: %s", type(exc.orig).__name__)
        return jsonify(error="database unavailable"), 503

    @app.errorhandler(NoConnectionFree)
    def _no_connection_free(exc: NoConnectionFree) -> Any:
        log.error("database unavailable: no pooled connection came free in time")
        return jsonify(error="database unavailable"), 503


def _configure_logging(log_format: str = "text") -> None:
    from gateway.core import logs
    from gateway.web import log_context

    logs.install()
    logger = logging.getLogger("gateway")
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(log_context.formatter(log_format))  # text, or one JSON object a line
    handler.addFilter(log_context.ContextFilter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
