"""``GET /metrics``: the Prometheus text of the gateway's counters and queue figures
(``gateway.services.metrics``), for a bearer token that reaches every practice, the metrics
token, or an address in ``metrics_allow``."""

from __future__ import annotations

import hmac
from ipaddress import ip_address

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.services.metrics import exposition

bp = Blueprint("metrics", __name__)


def _allowed() -> bool:
    settings = current_app.extensions["gateway.settings"]
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    token = supplied.strip().encode()
    if scheme.lower() == "bearer" and token:
        # the metrics token, or an API token that reaches every practice (metrics name them all)
        known = [t for t in settings.api_tokens if settings.token_scopes.get(t) is None]
        if settings.metrics_token:
            known.append(settings.metrics_token)
        matched = False
        for candidate in known:  # compare with every token: constant time
            matched |= hmac.compare_digest(token, candidate.encode())
        if matched:
            return True
    if settings.metrics_allow and request.remote_addr:
        try:
            address = ip_address(request.remote_addr)
        except ValueError:
            return False
        return any(address in network for network in settings.metrics_allow)
    return False


@bp.get("/metrics")
def metrics() -> Response:
    if not _allowed():
        response = Response('{"error": "missing or invalid bearer token"}\n', status=401,
                            mimetype="application/json")  # fmt: skip
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from gateway.store.db import get_database
    from gateway.store.models import utcnow

    practices = current_app.extensions["gateway.settings"].practices
    return Response(exposition(get_database(), utcnow, practices), mimetype=CONTENT_TYPE_LATEST)
