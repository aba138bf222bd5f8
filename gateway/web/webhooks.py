"""Twilio's webhooks: ``POST /webhooks/twilio/inbound`` (a message comes in) and
``POST /webhooks/twilio/status`` (status callbacks for the messages the gateway sent).

Order of work: check the signature (403, nothing written), validate the form (400/404 with a JSON
reason), then hand a normalised ``InboundSms`` to the inbound service and answer TwiML.
Bodies are never logged.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache, wraps
from typing import Any
from urllib.parse import urlparse

from flask import Blueprint, Response, jsonify, request
from twilio.request_validator import RequestValidator, compare, remove_port
from twilio.twiml.messaging_response import MessagingResponse

from gateway.config import current_settings
from gateway.core import phone
from gateway.services import delivery, inbound, metrics
from gateway.store import send_lock
from gateway.store.db import get_session
from gateway.web import log_context

log = logging.getLogger("gateway.webhooks")  # the name operators filter on

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks/twilio")
metrics.instrument_webhooks(bp)

#: Twilio concatenates at most 10 segments: 1,600 characters
MAX_BODY_CHARS = 1600
_SID = re.compile(r"^[A-Za-z0-9]{2,64}$")
#: integers are stored in 32-bit columns (PostgreSQL ``integer``)
_MAX_INT = 2**31 - 1
#: Twilio's Advanced Opt-Out names the keyword class it handled
_OPT_OUT_TYPES = ("STOP", "START", "HELP")


class BadWebhook(Exception):
    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def public_url() -> str:
    """The URL Twilio called, as Twilio saw it: PUBLIC_BASE_URL + path + query when set.

    Behind a TLS-terminating proxy the request reaches us as http://internal:8000/...; Twilio
    signed https://public.example/..., so the configured public base wins.
    """
    base = current_settings().public_base_url
    if not base:
        return request.url
    path = request.full_path
    return base + (path[:-1] if path.endswith("?") else path)


class _Validator(RequestValidator):
    """The twilio SDK's validator, without the work that cannot change its answer.

    The SDK signs the URL twice, without and with the port (its back end is inconsistent), and
    accepts either. The first is the URL Twilio usually signed: when it matches, the answer is
    yes, and the second is not computed. Any other request goes through the SDK's ``validate``
    unchanged (a query string, perhaps with ``bodySHA256``; another algorithm; a mismatch).
    """

    def validate(self, uri: str, params: Any, signature: str, algorithm: str | None = None) -> bool:
        if algorithm is None and "?" not in uri and isinstance(params, _Form):
            without_port = remove_port(urlparse(uri))
            if compare(self.compute_signature(without_port, params), signature):
                return True
        return super().validate(uri, params, signature, algorithm)


class _Form:
    """``request.form`` as the SDK's validator reads it: its ``getall`` is tried first (for
    other frameworks' multi-dicts), so a werkzeug form raises and catches an AttributeError
    for every parameter; this one answers at once, with the same values."""

    __slots__ = ("_form",)

    def __init__(self, form: Any) -> None:
        self._form = form

    def __iter__(self) -> Any:
        return iter(self._form)

    def __len__(self) -> int:
        return len(self._form)

    def getall(self, name: str) -> list[str]:
        return self._form.getlist(name)


@lru_cache(maxsize=4)
def _validator(auth_token: str) -> _Validator:
    return _Validator(auth_token)


def signed_by_twilio(view: Any) -> Any:
    """Reject requests whose X-Twilio-Signature does not match (403, before any other work)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        signature = request.headers.get("X-Twilio-Signature", "")
        validator = _validator(current_settings().twilio_auth_token)
        if not signature or not validator.validate(public_url(), _Form(request.form), signature):
            log.warning("webhook %s rejected: missing or invalid X-Twilio-Signature", request.path)
            return jsonify(error="missing or invalid X-Twilio-Signature"), 403
        return view(*args, **kwargs)

    return wrapper


def twiml(text: str | None = None) -> Response:
    return Response(_twiml_document(text or None), mimetype="application/xml")


@lru_cache(maxsize=256)
def _twiml_document(text: str | None) -> str:
    """The TwiML for a reply (or none); replies come from a few templates, so most are cached."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


@bp.errorhandler(BadWebhook)
def _bad_webhook(exc: BadWebhook) -> Any:
    log.warning("webhook %s rejected: %s", request.path, exc.reason)
    return jsonify(error=exc.reason), exc.status


@bp.post("/inbound")
@signed_by_twilio
def inbound_message() -> Response:
    form = request.form
    sid = _required(form, "MessageSid", "SmsMessageSid", "SmsSid")
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is not a Twilio SID")
    from_raw = _required(form, "From")
    to_raw = _required(form, "To")
    body = form.get("Body", "")
    if len(body) > MAX_BODY_CHARS:
        raise BadWebhook(f"Body exceeds {MAX_BODY_CHARS} characters")
    num_media = _count(form.get("NumMedia"), "NumMedia") or 0
    opt_out_type = (form.get("OptOutType") or "").strip().upper() or None
    if opt_out_type is not None and opt_out_type not in _OPT_OUT_TYPES:
        raise BadWebhook("OptOutType is not " + ", ".join(_OPT_OUT_TYPES))

    to = _normalize_or_raw(to_raw)
    service = (form.get("MessagingServiceSid") or "").strip() or None
    resolved = current_settings().resolve_sender(to, service)
    if resolved is None:
        raise BadWebhook("To is not a sender of any configured practice", status=404)
    practice, categories = resolved
    log_context.set_practice(practice.slug)
    # the sender that matched: the Messaging Service when it is one of ours, else the number
    sender = service if service in practice.senders.values() else to
    try:
        from_phone = _normalize(from_raw)
    except phone.InvalidPhoneNumber as exc:
        # Nothing can be recorded against a number we cannot read; Twilio gets a valid answer.
        log.warning("inbound sid=%s ignored: From %s", sid, exc)
        return twiml()

    sms = inbound.InboundSms(
        message_sid=sid,
        phone=from_phone,
        sender=sender,
        practice=practice,
        categories=categories,
        body=body,
        num_media=num_media,
        opt_out_type=opt_out_type,
    )
    session = get_session()
    # SQLite: the number's lock before the transaction (a STOP waits for a send under way)
    send_lock.before(session, [from_phone])
    result = inbound.handle(session, sms)
    metrics.count_inbound(practice.slug, result.intent.value, result.duplicate)
    return twiml(result.reply)


@bp.post("/status")
@signed_by_twilio
def status_callback() -> Any:
    """Apply a status callback. Unknown messages and stale statuses are acknowledged (200) too:
    an error would only make Twilio log it; nothing would improve by a retry."""
    form = request.form
    sid = _required(form, "MessageSid", "SmsSid")
    if not _SID.match(sid):
        raise BadWebhook("MessageSid is not a Twilio SID")
    status = _required(form, "MessageStatus", "SmsStatus").lower()
    error_code = _count(form.get("ErrorCode"), "ErrorCode")
    outcome = delivery.apply_status(get_session(), current_settings(), sid, status, error_code)
    if outcome is not delivery.Outcome.APPLIED:
        log.info("status sid=%s status=%s: %s", sid, status, outcome.value)
    return Response(status=204)


def _required(form: Any, *names: str) -> str:
    for name in names:
        value = (form.get(name) or "").strip()
        if value:
            return value
    raise BadWebhook(f"{names[0]} is required")


def _count(raw: str | None, name: str) -> int | None:
    """A whole number Twilio sends as text (NumMedia, ErrorCode); None when absent or blank."""
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise BadWebhook(f"{name} is not a number") from None
    if not 0 <= value <= _MAX_INT:
        raise BadWebhook(f"{name} is out of range")
    return value


def _normalize_or_raw(value: str) -> str:
    try:
        return _normalize(value)
    except phone.InvalidPhoneNumber:
        return value


#: ``phone.normalize`` is pure and costs a parse and a validation; patients text from the same
#: numbers, in the same form (Twilio sends E.164), again and again. Failures are not cached.
_normalize = lru_cache(maxsize=8192)(phone.normalize)
