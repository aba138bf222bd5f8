"""Every text the gateway sends, rendered from ``templates/sms/<name>.<lang>.txt`` (Jinja).

Whitespace in a rendered template collapses to single spaces, so templates can be written on
several lines. A language without its own file falls back to English.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2

from gateway.config import PROJECT_ROOT
from gateway.errors import TemplateNotFound

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "sms"
FALLBACK_LANGUAGE = "en"


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        lstrip_blocks=True,
    )


def exists(name: str, language: str = FALLBACK_LANGUAGE) -> bool:
    return (TEMPLATE_DIR / f"{name}.{language}.txt").is_file()


def render(name: str, language: str, **context: Any) -> str:
    """Render one SMS text in ``language`` (else English); raises TemplateNotFound."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise TemplateNotFound(f"no SMS template named {name!r}")
    for lang in dict.fromkeys((language, FALLBACK_LANGUAGE)):
        if exists(name, lang):
            text = _environment().get_template(f"{name}.{lang}.txt").render(**context)
            return " ".join(text.split())
    raise TemplateNotFound(f"no SMS template named {name!r}")
