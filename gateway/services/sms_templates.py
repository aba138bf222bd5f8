"""Every text the gateway sends, rendered from ``templates/sms/<name>.<lang>.txt`` (Jinja).

Whitespace in a rendered template collapses to single spaces, so templates can be written on
several lines. A language without its own file falls back to English.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import jinja2

from gateway.config import PROJECT_ROOT
from gateway.core.errors import TemplateNotFound

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "sms"
FALLBACK_LANGUAGE = "en"


_DAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
}
_MONTHS = {
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"),
}  # fmt: skip


@dataclass(frozen=True)
class TemplateSpec:
    """What the API may enqueue with a template (``templates/sms/catalog.toml``)."""

    name: str
    category: str
    required: frozenset[str]
    optional: frozenset[str]
    datetimes: frozenset[str]
    #: the reminders API may enqueue it (the double opt-in request is sent by the gateway itself)
    enqueueable: bool = True
    #: asks the patient to confirm a pending opt-in: allowed while consent is ``pending``
    confirms_opt_in: bool = False

    @property
    def params(self) -> frozenset[str]:
        return self.required | self.optional


@cache
def catalog() -> dict[str, TemplateSpec]:
    data = tomllib.loads((TEMPLATE_DIR / "catalog.toml").read_text(encoding="utf-8"))
    return {
        name: TemplateSpec(
            name=name,
            category=entry["category"],
            required=frozenset(entry.get("required", ())),
            optional=frozenset(entry.get("optional", ())),
            datetimes=frozenset(entry.get("datetimes", ())),
            enqueueable=entry.get("enqueueable", True),
            confirms_opt_in=entry.get("confirms_opt_in", False),
        )
        for name, entry in data.items()
    }


def when(value: str | datetime, practice: Any, language: str = "en", short: bool = False) -> str:
    """An instant as a patient reads it, in the practice's time zone.

    English "on Tue, Mar 3 at 2:30 PM"; Spanish "el martes 3 de marzo a las 14:30". ``short``:
    "on Tue 3/3 at 2:30 PM", "el mar 3/3 a las 14:30" (for texts that must fit one SMS).
    """
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    local = instant.astimezone(ZoneInfo(practice.time_zone))
    if short:
        if language == "es":
            day = _DAYS["es"][local.weekday()][:3].replace("á", "a").replace("é", "e")
            return f"el {day} {local.day}/{local.month} a las {local:%H:%M}"
        hour = local.hour % 12 or 12
        return (
            f"on {_DAYS['en'][local.weekday()]} {local.month}/{local.day} at {hour}:{local:%M} "
            + ("AM" if local.hour < 12 else "PM")
        )
    if language == "es":
        day, month = _DAYS["es"][local.weekday()], _MONTHS["es"][local.month - 1]
        return f"el {day} {local.day} de {month} a las {local:%H:%M}"
    day, month = _DAYS["en"][local.weekday()], _MONTHS["en"][local.month - 1]
    hour = local.hour % 12 or 12
    return f"on {day}, {month} {local.day} at {hour}:{local:%M} {'AM' if local.hour < 12 else 'PM'}"


@cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        auto_reload=False,  # the templates ship with the code: no look at the disk per text
        lstrip_blocks=True,
    )
    environment.filters["when"] = when
    return environment


def exists(name: str, language: str = FALLBACK_LANGUAGE) -> bool:
    return f"{name}.{language}.txt" in _files()


@cache
def _files() -> frozenset[str]:
    """The template files (read once: they ship with the code, and a deploy restarts)."""
    return frozenset(p.name for p in TEMPLATE_DIR.glob("*.txt") if p.is_file())


def render(name: str, language: str, **context: Any) -> str:
    """Render one SMS text in ``language`` (else English); raises TemplateNotFound."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise TemplateNotFound(f"no SMS template named {name!r}")
    for lang in dict.fromkeys((language, FALLBACK_LANGUAGE)):
        if exists(name, lang):
            text = _environment().get_template(f"{name}.{lang}.txt").render(**context)
            return " ".join(text.split())
    raise TemplateNotFound(f"no SMS template named {name!r}")
