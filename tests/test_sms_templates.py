"""Tests for gateway.sms_templates and the texts in templates/sms/: HELP, STOP and START replies.

The context is what gateway.inbound passes: practice, purposes (the categories the sender carries)
and, for STOP, revoked.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import jinja2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import config
from gateway.config import Practice
from gateway.core.domain import Category
from gateway.core.errors import TemplateNotFound
from gateway.services import sms_templates
from gateway.services.sms_templates import render

EXAMPLE = config.load_practices(config.EXAMPLE_PRACTICES_FILE)
TESTING = config.load_practices(Path(__file__).parent / "practices.toml")
ALL_PRACTICES = {**EXAMPLE, **TESTING}
LANGUAGES = ["en", "es"]
BOTH = ["transactional", "marketing"]
MARKETING = ["marketing"]
TRANSACTIONAL = ["transactional"]
ALL_PURPOSES = [BOTH, TRANSACTIONAL, MARKETING]


def sender_purposes(practice: Practice) -> list[list[str]]:
    """The purposes of each of the practice's senders, as gateway.inbound builds them."""
    return [
        [c.value for c in practice.categories_for_sender(sender)]
        for sender in dict.fromkeys(practice.senders.values())
    ]


EXAMPLE_SENDERS = [
    (slug, purposes) for slug, practice in EXAMPLE.items() for purposes in sender_purposes(practice)
]


def context(practice: Practice, purposes: list[str], revoked: list[str] | None = None) -> dict:
    values: dict = {"practice": practice, "purposes": purposes, "restored": purposes}
    if revoked is not None:
        values["revoked"] = revoked
    return values


def every_rendering() -> list[tuple[str, str, str, list[str], list[str]]]:
    rows = []
    for slug in ALL_PRACTICES:
        for language in LANGUAGES:
            for purposes in ALL_PURPOSES:
                rows.append(("help", slug, language, purposes, []))
                rows.append(("start", slug, language, purposes, []))
                for revoked in (BOTH, MARKETING, TRANSACTIONAL):
                    rows.append(("stop", slug, language, purposes, revoked))
    return rows


def render_row(name: str, slug: str, language: str, purposes: list[str], revoked: list[str]) -> str:
    extra = {"revoked": revoked} if name == "stop" else {}
    if name == "start":
        extra = {"restored": purposes}
    return render(name, language, practice=ALL_PRACTICES[slug], purposes=purposes, **extra)


def test_example_senders_each_carry_one_category() -> None:
    # so the tables below cover both wordings of every example practice
    assert sorted(map(tuple, (p for _, p in EXAMPLE_SENDERS))) == [
        ("marketing",),
        ("marketing",),
        ("transactional",),
        ("transactional",),
    ]
    assert sender_purposes(TESTING["shared"]) == [BOTH]


# --- HELP -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("slug", "purposes"), EXAMPLE_SENDERS)
def test_help_english(slug: str, purposes: list[str]) -> None:
    practice = EXAMPLE[slug]
    text = render("help", "en", **context(practice, purposes))
    assert text.startswith(f"{practice.name}: ")
    assert practice.frequency in text
    assert "Msg & data rates may apply." in text
    assert f"Help: {practice.help_contact}" in text
    assert text.endswith("Reply STOP to cancel.")
    if practice.website:
        assert practice.website in text


@pytest.mark.parametrize(("slug", "purposes"), EXAMPLE_SENDERS)
def test_help_spanish(slug: str, purposes: list[str]) -> None:
    practice = EXAMPLE[slug]
    text = render("help", "es", **context(practice, purposes))
    assert text.startswith(f"{practice.name}: ")
    assert "Frecuencia variable." in text
    assert "Pueden aplicarse tarifas de mensajes y datos." in text
    assert f"Ayuda: {practice.help_contact}" in text
    assert "PARAR" in text
    assert text.endswith("Responda PARAR para cancelar.")
    assert "Reply STOP" not in text
    if practice.website:
        assert practice.website in text


def test_help_uses_the_practice_frequency() -> None:
    assert "Message frequency may vary." in render(
        "help", "en", **context(EXAMPLE["bellara"], TRANSACTIONAL)
    )
    assert "Msg frequency varies." in render(
        "help", "en", **context(EXAMPLE["alluring"], TRANSACTIONAL)
    )
    custom = replace(EXAMPLE["bellara"], frequency="Up to 4 msgs/month.")
    assert "Up to 4 msgs/month." in render("help", "en", **context(custom, TRANSACTIONAL))


def test_help_without_website_has_no_dangling_or() -> None:
    text = render("help", "en", **context(EXAMPLE["bellara"], TRANSACTIONAL))
    assert EXAMPLE["bellara"].website is None
    assert "Help: +1 305-555-0142. Reply" in text
    assert " or " not in text
    assert "None" not in text


@pytest.mark.parametrize(
    ("language", "purposes", "says", "never_says"),
    [
        ("en", TRANSACTIONAL, "appointment reminders and care messages.", "offers"),
        ("en", MARKETING, "offers and practice news.", "appointment"),
        ("en", BOTH, "appointment reminders, care messages and, if you opted in, offers.", None),
        ("es", TRANSACTIONAL, "recordatorios de citas y mensajes de atención.", "ofertas"),
        ("es", MARKETING, "ofertas y novedades.", "citas"),
        (
            "es",
            BOTH,
            "recordatorios de citas, mensajes de atención y, si los aceptó, ofertas.",
            None,
        ),
    ],
)
def test_help_describes_what_the_sender_sends(
    language: str, purposes: list[str], says: str, never_says: str | None
) -> None:
    text = render("help", language, **context(TESTING["shared"], purposes))
    assert f"{TESTING['shared'].name}: {says}" in text
    if never_says:
        assert never_says not in text


# --- STOP -------------------------------------------------------------------------------------


@pytest.mark.parametrize("slug", EXAMPLE)
@pytest.mark.parametrize("revoked", [BOTH, TRANSACTIONAL])
def test_stop_everything(slug: str, revoked: list[str]) -> None:
    practice = EXAMPLE[slug]
    en = render("stop", "en", **context(practice, BOTH, revoked))
    assert en == (
        f"{practice.name}: you are unsubscribed and will get no more messages from this number. "
        "Reply START to resubscribe."
    )
    es = render("stop", "es", **context(practice, BOTH, revoked))
    assert es == (
        f"{practice.name}: se ha dado de baja y no recibirá más mensajes de este número. "
        "Responda ALTA para volver a suscribirse."
    )


@pytest.mark.parametrize("slug", EXAMPLE)
def test_stop_marketing_only(slug: str) -> None:
    practice = EXAMPLE[slug]
    en = render("stop", "en", **context(practice, MARKETING, MARKETING))
    assert en == (
        f"{practice.name}: you will get no more offers from us. Appointment messages are not "
        "affected. Reply START to resubscribe."
    )
    assert "unsubscribed" not in en
    es = render("stop", "es", **context(practice, MARKETING, MARKETING))
    assert es == (
        f"{practice.name}: no recibirá más ofertas. Los mensajes sobre sus citas continúan. "
        "Responda ALTA para volver a suscribirse."
    )


@pytest.mark.parametrize("slug", EXAMPLE)
@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("revoked", [BOTH, MARKETING, TRANSACTIONAL])
def test_stop_fits_one_sms(slug: str, language: str, revoked: list[str]) -> None:
    text = render("stop", language, **context(EXAMPLE[slug], revoked, revoked))
    assert len(text) <= 160, (len(text), text)


# GSM 03.38 basic character set and its extension table (each extension character counts twice)
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"


def gsm7_length(text: str) -> int | None:
    """Septets the text needs in GSM-7, or None when it needs UCS-2."""
    if any(ch not in GSM7_BASIC and ch not in GSM7_EXTENSION for ch in text):
        return None
    return sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)


@pytest.mark.parametrize("slug", EXAMPLE)
@pytest.mark.parametrize("revoked", [BOTH, MARKETING])
def test_english_stop_is_one_gsm7_segment(slug: str, revoked: list[str]) -> None:
    text = render("stop", "en", **context(EXAMPLE[slug], revoked, revoked))
    length = gsm7_length(text)
    assert length is not None, text
    assert length <= 160


# --- no marketing in STOP and START -----------------------------------------------------------

PROMOTIONAL = re.compile(
    r"offer|discount|% ?off|special|promo|sale\b|deal|coupon|free\b|save\b|book now|"
    r"oferta|descuento|especial|promoci[oó]n|gratis|cup[oó]n",
    re.IGNORECASE,
)
#: naming what was revoked is not promoting it
NEGATED = re.compile(r"no more offers|no recibirá más ofertas", re.IGNORECASE)


def promotional_words(text: str) -> list[str]:
    return PROMOTIONAL.findall(NEGATED.sub("", text))


def test_promotional_detector() -> None:
    assert promotional_words("20% off your next visit!") == ["% off"]
    assert promotional_words("Special offer: free consult") == ["Special", "offer", "free"]
    assert promotional_words("Oferta especial") == ["Oferta", "especial"]
    assert promotional_words("you will get no more offers from us") == []
    assert promotional_words("no more offers, but a new offer") == ["offer"]


@pytest.mark.parametrize(
    ("name", "slug", "language", "purposes", "revoked"),
    [row for row in every_rendering() if row[0] in ("stop", "start")],
)
def test_stop_and_start_are_not_promotional(
    name: str, slug: str, language: str, purposes: list[str], revoked: list[str]
) -> None:
    text = render_row(name, slug, language, purposes, revoked)
    assert promotional_words(text) == [], text


@pytest.mark.parametrize("slug", EXAMPLE)
def test_start_english_and_spanish(slug: str) -> None:
    practice = EXAMPLE[slug]
    en = render("start", "en", **context(practice, TRANSACTIONAL))
    assert en.startswith(f"{practice.name}: you are subscribed again")
    assert practice.frequency in en
    assert "Msg & data rates may apply." in en
    assert "Reply HELP for help, STOP to cancel." in en
    es = render("start", "es", **context(practice, TRANSACTIONAL))
    assert es.startswith(f"{practice.name}: está suscrito de nuevo")
    assert "Pueden aplicarse tarifas de mensajes y datos." in es
    assert "AYUDA" in es
    assert "PARAR" in es


# --- shape of every text ----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "slug", "language", "purposes", "revoked"), every_rendering())
def test_rendered_text_is_one_clean_line(
    name: str, slug: str, language: str, purposes: list[str], revoked: list[str]
) -> None:
    text = render_row(name, slug, language, purposes, revoked)
    assert text
    assert "\n" not in text
    assert "\r" not in text
    assert "\t" not in text
    assert "  " not in text
    assert text == text.strip()
    for leftover in ("{{", "}}", "{%", "%}", "{#", "#}"):
        assert leftover not in text
    assert "None" not in text
    assert text.startswith(ALL_PRACTICES[slug].name + ": ")


def test_whitespace_in_values_collapses_too() -> None:
    practice = replace(EXAMPLE["alluring"], name="Alluring\n  Plastic\tSurgery")
    text = render("stop", "en", **context(practice, BOTH, BOTH))
    assert text.startswith("Alluring Plastic Surgery: you are unsubscribed")


@settings(max_examples=200)
@given(
    name=st.text(min_size=1, max_size=40),
    frequency=st.text(min_size=1, max_size=40),
    help_contact=st.text(min_size=1, max_size=30),
    template=st.sampled_from(["help", "start", "stop"]),
    language=st.sampled_from(LANGUAGES),
    purposes=st.sampled_from(ALL_PURPOSES),
)
def test_any_values_render_to_collapsed_text(
    name: str, frequency: str, help_contact: str, template: str, language: str, purposes: list[str]
) -> None:
    practice = replace(
        EXAMPLE["alluring"], name=name, frequency=frequency, help_contact=help_contact
    )
    text = render(template, language, **context(practice, purposes, purposes))
    assert text == " ".join(text.split())
    assert " ".join(name.split()) in text


# --- lookup -----------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["fr", "pt", "", "xx", "es-MX", "en_US"])
@pytest.mark.parametrize("name", ["help", "start", "stop"])
def test_unknown_language_falls_back_to_english(name: str, language: str) -> None:
    values = context(EXAMPLE["alluring"], BOTH, BOTH)
    assert render(name, language, **values) == render(name, "en", **values)


def test_spanish_differs_from_english() -> None:
    values = context(EXAMPLE["alluring"], BOTH, BOTH)
    for name in ("help", "start", "stop"):
        assert render(name, "es", **values) != render(name, "en", **values)


def test_every_template_has_both_languages() -> None:
    names = {p.name.split(".")[0] for p in sms_templates.TEMPLATE_DIR.glob("*.txt")}
    assert {"help", "start", "stop"} <= names
    for name in names:
        for language in LANGUAGES:
            assert sms_templates.exists(name, language), (name, language)
    assert not sms_templates.exists("help", "fr")
    assert not sms_templates.exists("nope")


@pytest.mark.parametrize(
    "name",
    [
        "nope",
        "HELP",
        "help ",
        "",
        "help.en",
        "../sms/help",
        "sms/help",
        "/etc/passwd",
        "..",
        "../help",
        "..\\help",
        "help\\..",
        ".hidden",
        "./help",
        "help\x00",
    ],
)
def test_unknown_or_unsafe_template_name(name: str) -> None:
    with pytest.raises(TemplateNotFound):
        render(name, "en", **context(EXAMPLE["alluring"], BOTH, BOTH))


def test_template_not_found_message_names_it() -> None:
    with pytest.raises(TemplateNotFound, match="no SMS template named 'nope'"):
        render("nope", "es")


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("help", {"practice": EXAMPLE["alluring"]}),
        ("help", {"purposes": BOTH}),
        ("start", {"purposes": BOTH}),
        ("stop", {"practice": EXAMPLE["alluring"], "purposes": BOTH}),
        ("stop", {}),
    ],
)
@pytest.mark.parametrize("language", LANGUAGES)
def test_missing_context_variable_raises(name: str, values: dict, language: str) -> None:
    with pytest.raises(jinja2.UndefinedError):
        render(name, language, **values)


def test_missing_practice_attribute_raises() -> None:
    class Partial:
        name = "Only A Name"

    with pytest.raises(jinja2.UndefinedError):
        render("help", "en", practice=Partial(), purposes=BOTH)


def test_categories_match_template_vocabulary() -> None:
    # the templates compare purposes/revoked with these literal strings
    assert {c.value for c in Category} == {"transactional", "marketing"}


@pytest.mark.parametrize(
    ("restored", "language", "says"),
    [
        (TRANSACTIONAL, "en", "subscribed again to appointment reminders and care messages."),
        (MARKETING, "en", "subscribed again to practice news and events by text."),
        (BOTH, "en", "appointment reminders, care messages, and practice news and events."),
        (TRANSACTIONAL, "es", "suscrito de nuevo a recordatorios de citas y mensajes de atención."),
        (MARKETING, "es", "suscrito de nuevo a novedades y eventos de la clínica."),
    ],
)
def test_start_names_what_came_back(restored: list[str], language: str, says: str) -> None:
    practice = EXAMPLE["alluring"]
    assert says in render("start", language, practice=practice, purposes=BOTH, restored=restored)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("needs_consent", [False, True])
def test_start_unchanged_never_says_subscribed_again(language: str, needs_consent: bool) -> None:
    practice = EXAMPLE["alluring"]
    text = render("start_unchanged", language, practice=practice, needs_consent=needs_consent)
    assert text.startswith(practice.name + ":")
    assert "again" not in text and "de nuevo" not in text
    assert (practice.help_contact in text) is needs_consent
    assert promotional_words(text) == []
