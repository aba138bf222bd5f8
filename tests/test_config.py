"""Tests for gateway.config: the practices file, settings from the environment, sender lookup.

Pure: no database. Files go to tmp_path.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import stat
from datetime import time
from ipaddress import ip_network
from pathlib import Path

import pytest

from gateway import config, create_app
from gateway.config import (
    ConfigError,
    Practice,
    Settings,
    load_practices,
    load_settings,
    parse_practices,
    schema,
)
from gateway.core.domain import Category

T, M = Category.TRANSACTIONAL, Category.MARKETING
TESTS = Path(__file__).parent
TEST_PRACTICES = TESTS / "practices.toml"
MG_SPLIT = "MG0123456789abcdef0123456789abcdef"
GOOD_TOKEN = "a-token-of-20-chars!"
PRODUCTION_ENV = {
    "GATEWAY_ENV": "production",
    "GATEWAY_API_TOKEN": GOOD_TOKEN,
    "TWILIO_AUTH_TOKEN": "0123456789abcdef0123456789abcdef",
    "PUBLIC_BASE_URL": "https://gateway.example.com",
    "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "GATEWAY_ENCRYPTION_KEYS": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "GATEWAY_HASH_KEY": "a-hash-key-of-at-least-32-characters!",
    "GATEWAY_SECRET_KEY": "a-secret-key-of-at-least-32-characters",
}

# One valid practice; the bad documents below are this text with one mistake.
BASE = """\
[practices.alluring]
name = "Alluring Plastic Surgery"
time_zone = "America/New_York"
help_contact = "+1 786-305-8649"

[practices.alluring.senders]
transactional = "+17865550100"
marketing = "+17865550101"

[practices.alluring.age]
minimum = 16
guardian_required_under = 18

[practices.alluring.retention]
sms_logs_years = 7
consent_proof_years = 7
"""

BELLARA = """
[practices.bellara]
name = "Bellara Aesthetics"
time_zone = "America/New_York"
help_contact = "+1 305-555-0142"

[practices.bellara.senders]
transactional = "{sender}"
"""


def replaced(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "practices.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- the example file -----------------------------------------------------------------------


def test_example_practices_file_loads() -> None:
    practices = load_practices(config.EXAMPLE_PRACTICES_FILE)
    assert list(practices) == ["alluring", "bellara"]
    alluring, bellara = practices["alluring"], practices["bellara"]

    assert alluring == Practice(
        slug="alluring",
        name="Alluring Plastic Surgery",
        time_zone="America/New_York",
        help_contact="+1 786-305-8649",
        senders={T: "+17865550100", M: "+17865550101"},
        website="www.alluringplasticsurgery.com",
        frequency="Msg frequency varies.",
        language="en",
        minimum_age=16,
        guardian_required_under=18,
        sms_log_retention_years=7,
        consent_proof_retention_years=7,
        windows={T: (time(8), time(20)), M: (time(10), time(19))},
    )
    assert bellara == Practice(
        slug="bellara",
        name="Bellara Aesthetics",
        time_zone="America/New_York",
        help_contact="+1 305-555-0142",
        senders={T: "+13055550110", M: "+13055550111"},
        website=None,
        frequency="Message frequency may vary.",
        language="en",
        minimum_age=18,
        guardian_required_under=18,
        sms_log_retention_years=6,
        consent_proof_retention_years=6,
        marketing_per_day=1,
    )


def test_test_practices_file_loads() -> None:
    practices = load_practices(TEST_PRACTICES)
    assert list(practices) == ["shared", "split"]
    assert practices["shared"].senders == {T: "+17865550100", M: "+17865550100"}
    assert practices["split"].senders == {T: "+13125550110", M: MG_SPLIT}
    assert practices["split"].minimum_age == 18
    assert practices["split"].time_zone == "America/Chicago"


def test_defaults_of_a_minimal_practice() -> None:
    practices = config.parse_practices(
        {
            "practices": {
                "clinic": {
                    "name": "  Clinic  ",
                    "time_zone": "UTC",
                    "help_contact": "front desk",
                    "senders": {"transactional": "+1 (786) 555-0100"},
                }
            }
        }
    )
    clinic = practices["clinic"]
    assert clinic.name == "Clinic"
    assert clinic.senders == {T: "+17865550100"}
    assert clinic.website is None
    assert clinic.frequency == "Msg frequency varies."
    assert clinic.language == "en"
    assert clinic.minimum_age is None
    assert clinic.guardian_required_under == 18
    assert clinic.sms_log_retention_years == 7
    assert clinic.consent_proof_retention_years == 6


def test_senders_are_normalised_to_e164(tmp_path: Path) -> None:
    text = replaced('"+17865550100"', '"(786) 555-0100"').replace(
        '"+17865550101"', '"tel:+1 786 555 0101"'
    )
    practices = load_practices(write(tmp_path, text))
    assert practices["alluring"].senders == {T: "+17865550100", M: "+17865550101"}


def test_one_number_may_carry_both_categories_of_one_practice(tmp_path: Path) -> None:
    practices = load_practices(write(tmp_path, replaced('"+17865550101"', '"+1 786 555 0100"')))
    alluring = practices["alluring"]
    assert alluring.categories_for_sender("+17865550100") == (T, M)
    assert alluring.categories_for_sender("+19999999999") == ()


def test_spanish_language_accepted(tmp_path: Path) -> None:
    practices = load_practices(write(tmp_path, replaced("name =", 'language = "es"\nname =')))
    assert practices["alluring"].language == "es"


# --- bad documents --------------------------------------------------------------------------

P = "practices.alluring"
BAD_DOCUMENTS = [
    # (id, TOML text, the message starts with)
    (
        "unknown time zone",
        replaced('"America/New_York"', '"America/New_Yrok"'),
        f"{P}.time_zone: unknown time zone 'America/New_Yrok'",
    ),
    (
        "time zone not a key",
        replaced('"America/New_York"', '"America/"'),
        f"{P}.time_zone: unknown time zone 'America/'",
    ),
    ("missing name", replaced('name = "Alluring Plastic Surgery"\n', ""), f"{P}.name: required"),
    ("blank name", replaced('"Alluring Plastic Surgery"', '"   "'), f"{P}.name: required"),
    ("name not a string", replaced('"Alluring Plastic Surgery"', "42"), f"{P}.name: required"),
    (
        "missing help contact",
        replaced('help_contact = "+1 786-305-8649"\n', ""),
        f"{P}.help_contact: required",
    ),
    (
        "missing senders",
        replaced(
            '[practices.alluring.senders]\ntransactional = "+17865550100"\n'
            'marketing = "+17865550101"\n',
            "",
        ),
        f"{P}.senders: a table mapping categories to sender numbers is required",
    ),
    (
        "empty senders",
        replaced('transactional = "+17865550100"\nmarketing = "+17865550101"\n', ""),
        f"{P}.senders: a table mapping categories to sender numbers is required",
    ),
    (
        "unknown category",
        replaced("marketing = ", "promotional = "),
        f"{P}.senders.promotional: unknown category (expected transactional, marketing)",
    ),
    (
        "invalid sender number",
        replaced('"+17865550100"', '"+1 555"'),
        f"{P}.senders.transactional: '+1 555' is not a valid phone number",
    ),
    (
        "sender not a phone number",
        replaced('"+17865550100"', '"front desk"'),
        f"{P}.senders.transactional: 'front desk' is not a phone number",
    ),
    (
        "sender not a string",
        replaced('"+17865550100"', "17865550100"),
        f"{P}.senders.transactional: must be an E.164 number or a Messaging Service SID",
    ),
    (
        "short Messaging Service SID",
        replaced('"+17865550101"', '"MG0123"'),
        f"{P}.senders.marketing: 'MG0123' is not a Messaging Service SID (MG + 32 lower-case hex)",
    ),
    (
        "Messaging Service SID in upper case (Twilio sends lower case: it would never match)",
        replaced('"+17865550101"', '"MG' + "AB" * 16 + '"'),
        f"{P}.senders.marketing: 'MG{'AB' * 16}' is not a Messaging Service SID",
    ),
    (
        "Messaging Service SID not hex",
        replaced('"+17865550101"', '"MG' + "z" * 32 + '"'),
        f"{P}.senders.marketing: 'MG{'z' * 32}' is not a Messaging Service SID",
    ),
    (
        "same number in two practices",
        BASE + BELLARA.format(sender="+1 (786) 555-0101"),
        "practices.bellara.senders.transactional: +17865550101 is already a sender of "
        "practice 'alluring'",
    ),
    (
        "same Messaging Service in two practices",
        replaced('"+17865550101"', f'"{MG_SPLIT}"') + BELLARA.format(sender=MG_SPLIT),
        f"practices.bellara.senders.transactional: {MG_SPLIT} is already a sender of "
        "practice 'alluring'",
    ),
    (
        "typo in a practice key",
        replaced("time_zone =", "time_zome ="),
        f"{P}.time_zome: unknown key (allowed: ",
    ),
    (
        "unknown key in age",
        replaced("minimum = 16", "minimun = 16"),
        f"{P}.age.minimun: unknown key (allowed: guardian_required_under, minimum)",
    ),
    (
        "unknown key in retention",
        replaced("sms_logs_years", "sms_log_years"),
        f"{P}.retention.sms_log_years: unknown key (allowed: consent_proof_years, sms_logs_years)",
    ),
    (
        "minimum age too high",
        replaced("minimum = 16", "minimum = 26"),
        f"{P}.age.minimum: must be a whole number from 0 to 25",
    ),
    (
        "minimum age negative",
        replaced("minimum = 16", "minimum = -1"),
        f"{P}.age.minimum: must be a whole number from 0 to 25",
    ),
    (
        "guardian age a boolean",
        replaced("guardian_required_under = 18", "guardian_required_under = true"),
        f"{P}.age.guardian_required_under: must be a whole number from 0 to 25",
    ),
    (
        "minimum age a string",
        replaced("minimum = 16", 'minimum = "16"'),
        f"{P}.age.minimum: must be a whole number from 0 to 25",
    ),
    (
        "retention a float",
        replaced("sms_logs_years = 7", "sms_logs_years = 7.5"),
        f"{P}.retention.sms_logs_years: must be a whole number from 1 to 50",
    ),
    (
        "sms logs retention zero",
        replaced("sms_logs_years = 7", "sms_logs_years = 0"),
        f"{P}.retention.sms_logs_years: must be a whole number from 1 to 50",
    ),
    (
        "consent proof kept under 6 years",
        replaced("consent_proof_years = 7", "consent_proof_years = 5"),
        f"{P}.retention.consent_proof_years: must be a whole number from 6 to 50",
    ),
    (
        "age not a table",
        replaced(
            "[practices.alluring.age]\nminimum = 16\nguardian_required_under = 18\n", ""
        ).replace("name =", "age = 16\nname ="),
        f"{P}.age: must be a table",
    ),
    (
        "unsupported language",
        replaced("name =", 'language = "fr"\nname ='),
        f"{P}.language: must be one of en, es",
    ),
    (
        "blank website",
        replaced("name =", 'website = " "\nname ='),
        f"{P}.website: must be a non-empty string",
    ),
    (
        "frequency not a string",
        replaced("name =", "frequency = 3\nname ="),
        f"{P}.frequency: must be a non-empty string",
    ),
    (
        "upper-case slug",
        BASE.replace("practices.alluring", "practices.Alluring"),
        "practices.Alluring: the slug must be lower-case letters, digits, '-' or '_'",
    ),
    (
        "slug with a dot",
        BASE.replace("practices.alluring", 'practices."all.uring"'),
        "practices.all.uring: the slug must be lower-case",
    ),
    (
        "slug with a trailing newline",
        BASE.replace("practices.alluring", 'practices."alluring\\n"'),
        "practices.alluring\n: the slug must be lower-case",
    ),
    (
        "slug starting with a dash",
        BASE.replace("practices.alluring", "practices.-alluring"),
        "practices.-alluring: the slug must be lower-case",
    ),
    (
        "practice not a table",
        '[practices]\nalluring = "Alluring Plastic Surgery"\n',
        f"{P}: must be a table",
    ),
    (
        "unknown top-level key",
        'gateway = "x"\n' + BASE,
        "gateway: unknown top-level key (expected [practices.*])",
    ),
    ("empty file", "", "practices: at least one [practices.<slug>] table is required"),
    ("only comments", "# nothing yet\n", "practices: at least one"),
    ("empty practices table", "[practices]\n", "practices: at least one"),
    ("practices not a table", 'practices = "alluring"\n', "practices: at least one"),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in BAD_DOCUMENTS],
    ids=[case_id for case_id, _, _ in BAD_DOCUMENTS],
)
def test_bad_practices_file_names_the_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_practices(write(tmp_path, text))
    assert str(excinfo.value).startswith(expected)


def test_base_document_of_the_bad_table_is_valid(tmp_path: Path) -> None:
    # otherwise every row above could fail for the wrong reason
    practices = load_practices(write(tmp_path, BASE))
    assert practices["alluring"].minimum_age == 16
    practices = load_practices(write(tmp_path, BASE + BELLARA.format(sender="+13055550110")))
    assert list(practices) == ["alluring", "bellara"]


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "\nname = [unclosed\n")
    with pytest.raises(ConfigError) as excinfo:
        load_practices(path)
    assert str(excinfo.value).startswith(f"GATEWAY_CONFIG: {path} is not valid TOML: ")


def test_duplicate_toml_key_is_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, replaced("name =", 'name = "Twice"\nname ='))
    with pytest.raises(ConfigError, match=r"^GATEWAY_CONFIG: .* is not valid TOML"):
        load_practices(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as excinfo:
        load_practices(path)
    assert str(excinfo.value) == f"GATEWAY_CONFIG: no such file: {path}"


def test_parse_practices_on_dicts() -> None:
    document = {
        "practices": {
            "a": {"name": "A", "time_zone": "UTC", "help_contact": "x", "senders": {}},
        }
    }
    with pytest.raises(ConfigError, match=r"^practices\.a\.senders: "):
        config.parse_practices(document)
    document["practices"]["a"]["senders"] = {"marketing": "+17865550100"}
    document["practices"]["a"]["age"] = {"minimum": False}
    with pytest.raises(ConfigError, match=r"^practices\.a\.age\.minimum: must be a whole number"):
        config.parse_practices(document)


def test_config_error_is_not_a_gateway_error() -> None:
    # ConfigError stops start-up; no request handler may swallow it as a GatewayError
    from gateway.core.errors import GatewayError

    assert not issubclass(ConfigError, GatewayError)


# --- load_settings ----------------------------------------------------------------------------


def test_defaults_with_an_empty_environment(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    settings = load_settings({}, instance)

    assert settings.environment == "development"
    assert settings.database_url == f"sqlite:///{instance / 'gateway.sqlite3'}"
    assert settings.practices == load_practices(config.EXAMPLE_PRACTICES_FILE)
    assert settings.public_base_url is None
    assert settings.twilio_account_sid is None
    assert settings.twilio_api_base_url is None

    secrets_file = instance / "dev-secrets.json"
    assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
    dev = config.development_secrets(instance)
    assert settings.api_tokens == (dev["api_token"],)
    assert settings.twilio_auth_token == dev["twilio_auth_token"]
    assert len(dev["api_token"]) >= 16
    assert len(dev["twilio_auth_token"]) >= 16

    again = load_settings({}, instance)
    assert again.api_tokens == settings.api_tokens
    assert again.twilio_auth_token == settings.twilio_auth_token


def test_development_secrets_never_readable_by_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the file must be created 0600, not written with the umask's mode and narrowed afterwards
    modes_before_chmod = []
    real_chmod = Path.chmod

    def spy(self: Path, mode: int, **kwargs: object) -> None:
        modes_before_chmod.append(stat.S_IMODE(self.stat().st_mode))
        real_chmod(self, mode, **kwargs)

    monkeypatch.setattr(Path, "chmod", spy)
    umask = os.umask(0o022)
    try:
        config.development_secrets(tmp_path)
    finally:
        os.umask(umask)
    assert all(mode == 0o600 for mode in modes_before_chmod)
    assert stat.S_IMODE((tmp_path / "dev-secrets.json").stat().st_mode) == 0o600


def test_development_secrets_differ_per_instance(tmp_path: Path) -> None:
    one = config.development_secrets(tmp_path / "one")
    two = config.development_secrets(tmp_path / "two")
    assert one["api_token"] != two["api_token"]
    assert one["twilio_auth_token"] != two["twilio_auth_token"]


def test_given_secrets_are_used_and_no_file_written(tmp_path: Path) -> None:
    env = {
        "GATEWAY_API_TOKEN": GOOD_TOKEN,
        "TWILIO_AUTH_TOKEN": "auth-token",
        "GATEWAY_ENCRYPTION_KEYS": PRODUCTION_ENV["GATEWAY_ENCRYPTION_KEYS"],
        "GATEWAY_HASH_KEY": PRODUCTION_ENV["GATEWAY_HASH_KEY"],
        "GATEWAY_SECRET_KEY": PRODUCTION_ENV["GATEWAY_SECRET_KEY"],
    }
    settings = load_settings(env, tmp_path)
    assert settings.api_tokens == (GOOD_TOKEN,)
    assert settings.twilio_auth_token == "auth-token"
    assert not (tmp_path / "dev-secrets.json").exists()


def test_one_missing_secret_comes_from_the_development_file(tmp_path: Path) -> None:
    settings = load_settings({"GATEWAY_API_TOKEN": GOOD_TOKEN}, tmp_path)
    assert settings.api_tokens == (GOOD_TOKEN,)
    assert settings.twilio_auth_token == config.development_secrets(tmp_path)["twilio_auth_token"]


def test_production_with_everything(tmp_path: Path) -> None:
    settings = load_settings(
        {**PRODUCTION_ENV, "TWILIO_ACCOUNT_SID": "  AC" + "1" * 32 + " "}, tmp_path
    )
    assert settings.environment == "production"
    assert settings.api_tokens == (GOOD_TOKEN,)
    assert settings.twilio_auth_token == PRODUCTION_ENV["TWILIO_AUTH_TOKEN"]
    assert settings.public_base_url == "https://gateway.example.com"
    assert settings.twilio_account_sid == "AC" + "1" * 32
    assert not (tmp_path / "dev-secrets.json").exists()


@pytest.mark.parametrize(
    "name",
    [
        "GATEWAY_API_TOKEN",
        "TWILIO_AUTH_TOKEN",
        "PUBLIC_BASE_URL",
        "TWILIO_ACCOUNT_SID",
        "GATEWAY_ENCRYPTION_KEYS",
        "GATEWAY_HASH_KEY",
        "GATEWAY_SECRET_KEY",
    ],
)
@pytest.mark.parametrize("value", [None, "", "  "])
def test_production_requires(tmp_path: Path, name: str, value: str | None) -> None:
    env = dict(PRODUCTION_ENV)
    if value is None:
        del env[name]
    else:
        env[name] = value
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env, tmp_path)
    assert str(excinfo.value).startswith(f"{name}: required when GATEWAY_ENV=production")
    assert not (tmp_path / "dev-secrets.json").exists()


def test_production_requires_a_url_not_just_a_slash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^PUBLIC_BASE_URL: required"):
        load_settings({**PRODUCTION_ENV, "PUBLIC_BASE_URL": "/"}, tmp_path)


def test_production_with_only_commas_for_tokens(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^GATEWAY_API_TOKEN: required"):
        load_settings({**PRODUCTION_ENV, "GATEWAY_API_TOKEN": " , ,"}, tmp_path)


@pytest.mark.parametrize("environment", ["development", "test", "production"])
@pytest.mark.parametrize("tokens", ["short", "x" * 15, f"{GOOD_TOKEN},short"])
def test_short_api_token_rejected(tmp_path: Path, environment: str, tokens: str) -> None:
    env = {**PRODUCTION_ENV, "GATEWAY_ENV": environment, "GATEWAY_API_TOKEN": tokens}
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env, tmp_path)
    assert str(excinfo.value) == "GATEWAY_API_TOKEN: each token needs at least 16 characters"


def test_sixteen_characters_is_enough(tmp_path: Path) -> None:
    settings = load_settings({"GATEWAY_API_TOKEN": "x" * 16}, tmp_path)
    assert settings.api_tokens == ("x" * 16,)


def test_comma_separated_api_tokens(tmp_path: Path) -> None:
    env = {"GATEWAY_API_TOKEN": f" {GOOD_TOKEN} ,, old-token-0123456789 ,"}
    settings = load_settings(env, tmp_path)
    assert settings.api_tokens == (GOOD_TOKEN, "old-token-0123456789")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db:5432/gw", "postgresql+psycopg://u:p@db:5432/gw"),
        (
            "postgresql://u:p@db/gw?sslmode=require",
            "postgresql+psycopg://u:p@db/gw?sslmode=require",
        ),
        ("postgresql+psycopg://u@db/gw", "postgresql+psycopg://u@db/gw"),
        ("sqlite:////var/lib/gateway.sqlite3", "sqlite:////var/lib/gateway.sqlite3"),
        ("sqlite://", "sqlite://"),
    ],
)
def test_database_url(tmp_path: Path, url: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": url}, tmp_path).database_url == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://gateway.example.com/", "https://gateway.example.com"),
        ("https://gateway.example.com", "https://gateway.example.com"),
        ("  http://localhost:5000//  ", "http://localhost:5000"),
        ("https://example.com/sms/gateway/", "https://example.com/sms/gateway"),
        ("", None),
    ],
)
def test_public_base_url(tmp_path: Path, value: str, expected: str | None) -> None:
    assert load_settings({"PUBLIC_BASE_URL": value}, tmp_path).public_base_url == expected


@pytest.mark.parametrize(
    "value",
    ["gateway.example.com", "ftp://gateway.example.com", "https://", "https://exa mple.com", "//x"],
)
def test_public_base_url_must_be_http(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({"PUBLIC_BASE_URL": value}, tmp_path)
    assert str(excinfo.value).startswith("PUBLIC_BASE_URL: not an http(s) URL: ")


def test_twilio_api_base_url(tmp_path: Path) -> None:
    env = {"TWILIO_API_BASE_URL": "http://localhost:4010/"}
    assert load_settings(env, tmp_path).twilio_api_base_url == "http://localhost:4010"
    with pytest.raises(ConfigError, match=r"^TWILIO_API_BASE_URL: not an http\(s\) URL"):
        load_settings({"TWILIO_API_BASE_URL": "localhost:4010"}, tmp_path)


@pytest.mark.parametrize("value", ["prod", "Production", "staging", "dev"])
def test_invalid_gateway_env(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({"GATEWAY_ENV": value}, tmp_path)
    assert str(excinfo.value) == (
        f"GATEWAY_ENV: must be development, production or test, not {value!r}"
    )


@pytest.mark.parametrize(("value", "expected"), [("", "development"), (" test ", "test")])
def test_gateway_env_blank_or_padded(tmp_path: Path, value: str, expected: str) -> None:
    assert load_settings({"GATEWAY_ENV": value}, tmp_path).environment == expected


def test_gateway_config_selects_the_practices_file(tmp_path: Path) -> None:
    settings = load_settings({"GATEWAY_CONFIG": str(TEST_PRACTICES)}, tmp_path)
    assert list(settings.practices) == ["shared", "split"]


def test_gateway_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.toml"
    with pytest.raises(ConfigError, match=r"^GATEWAY_CONFIG: no such file: "):
        load_settings({"GATEWAY_CONFIG": str(path)}, tmp_path)


# --- resolve_sender ---------------------------------------------------------------------------


@pytest.fixture
def settings() -> Settings:
    return Settings(
        database_url="sqlite://",
        practices=load_practices(TEST_PRACTICES),
        api_tokens=(GOOD_TOKEN,),
        twilio_auth_token="auth",
    )


def test_resolve_shared_number_carries_both_categories(settings: Settings) -> None:
    practice, categories = settings.resolve_sender("+17865550100")
    assert practice.slug == "shared"
    assert categories == (T, M)


def test_resolve_split_number_carries_only_its_category(settings: Settings) -> None:
    practice, categories = settings.resolve_sender("+13125550110")
    assert practice.slug == "split"
    assert categories == (T,)


def test_resolve_by_messaging_service(settings: Settings) -> None:
    practice, categories = settings.resolve_sender(None, MG_SPLIT)
    assert (practice.slug, categories) == ("split", (M,))


def test_messaging_service_wins_over_to(settings: Settings) -> None:
    # To is the shared practice's number, but the message came through split's service
    practice, categories = settings.resolve_sender("+17865550100", MG_SPLIT)
    assert (practice.slug, categories) == ("split", (M,))


def test_unknown_messaging_service_falls_back_to_to(settings: Settings) -> None:
    practice, categories = settings.resolve_sender("+13125550110", "MG" + "f" * 32)
    assert (practice.slug, categories) == ("split", (T,))


@pytest.mark.parametrize(
    ("to", "service"),
    [
        ("+19999999999", None),
        ("+19999999999", "MG" + "f" * 32),
        (None, None),
        ("", ""),
        (None, "MG" + "f" * 32),
        ("786-555-0100", None),  # Twilio sends E.164; only the normalised form is ours
    ],
)
def test_unknown_sender(settings: Settings, to: str | None, service: str | None) -> None:
    assert settings.resolve_sender(to, service) is None


def test_resolve_example_practices(tmp_path: Path) -> None:
    settings = load_settings({}, tmp_path)
    assert settings.resolve_sender("+17865550101")[0].slug == "alluring"
    assert settings.resolve_sender("+17865550101")[1] == (M,)
    assert settings.resolve_sender("+13055550110")[0].slug == "bellara"
    assert settings.resolve_sender("+13055550110")[1] == (T,)


# --- start-up ---------------------------------------------------------------------------------


def test_bad_config_stops_create_app(tmp_path: Path) -> None:
    path = write(tmp_path, replaced('"America/New_York"', '"America/New_Yrok"'))
    test_config = {
        "GATEWAY_CONFIG": str(path),
        "GATEWAY_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    with pytest.raises(ConfigError) as excinfo:
        create_app(test_config)
    assert str(excinfo.value).startswith(
        "practices.alluring.time_zone: unknown time zone 'America/New_Yrok'"
    )


def test_missing_config_stops_create_app(tmp_path: Path) -> None:
    test_config = {
        "GATEWAY_CONFIG": str(tmp_path / "missing.toml"),
        "GATEWAY_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    with pytest.raises(ConfigError, match=r"^GATEWAY_CONFIG: no such file"):
        create_app(test_config)


def test_create_app_reads_the_config(tmp_path: Path) -> None:
    from gateway.config import current_settings

    test_config = {
        "GATEWAY_CONFIG": str(TEST_PRACTICES),
        "GATEWAY_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
    }
    app = create_app(test_config)
    with app.app_context():
        assert list(current_settings().practices) == ["shared", "split"]


@pytest.mark.parametrize(
    "content", ["", "{", "[]", '{"api_token": "x"}', '{"api_token": 1, "twilio_auth_token": "y"}']
)
def test_corrupt_development_secrets_stop_start_up_with_a_clear_message(
    tmp_path: Path, content: str
) -> None:
    (tmp_path / "dev-secrets.json").write_text(content)
    with pytest.raises(
        config.ConfigError, match="dev-secrets.json: unreadable development secrets"
    ):
        config.load_settings({}, tmp_path)


def _with(**extra: object) -> dict[str, object]:
    practice = {
        "name": "X", "time_zone": "America/New_York", "help_contact": "+1 786-305-8649",
        "senders": {"transactional": "+17865550100"}, **extra,
    }  # fmt: skip
    return {"practices": {"x": practice}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sending_window": {"transactional": "07:30-20:00"}},
         "practices.x.sending_window.transactional: may not be wider than 08:00-21:00"),
        ({"sending_window": {"marketing": "08:00-21:30"}},
         "practices.x.sending_window.marketing: may not be wider than 08:00-21:00"),
        ({"sending_window": {"transactional": "20:00-09:00"}},
         "practices.x.sending_window.transactional: the start must be before the end"),
        ({"sending_window": {"transactional": "8am-8pm"}},
         "practices.x.sending_window.transactional: must look like"),
        ({"sending_window": {"transactional": "08:00-25:00"}},
         "practices.x.sending_window.transactional: must look like"),
        ({"sending_window": {"promos": "09:00-17:00"}},
         "practices.x.sending_window.promos: unknown category"),
        ({"caps": {"transactional_per_day": 2}},
         "practices.x.caps.transactional_per_day: must be a whole number from 1 to 1"),
        ({"caps": {"marketing_per_day": 5}},
         "practices.x.caps.marketing_per_day: must be a whole number from 1 to 3"),
        ({"caps": {"per_hour": 1}}, "practices.x.caps.per_hour: unknown key"),
        ({"review_alert_hours": 0}, "practices.x.review_alert_hours: must be a whole number"),
        ({"double_opt_in_hours": "a week"},
         "practices.x.double_opt_in_hours: must be a whole number"),
    ],
)  # fmt: skip
def test_policy_settings_are_checked(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_practices(_with(**extra))
    assert str(excinfo.value).startswith(message)


def test_policy_settings_default_to_the_legal_limits() -> None:
    practice = parse_practices(_with())["x"]
    assert practice.windows == {T: (time(8), time(20)), M: (time(8), time(20))}
    assert (practice.transactional_per_day, practice.transactional_per_week) == (1, 3)
    assert practice.marketing_per_day == 3
    assert (practice.review_alert_hours, practice.double_opt_in_hours) == (24, 168)


def test_a_narrower_window_and_stricter_caps_are_kept() -> None:
    extra = {"sending_window": {"marketing": "09:30-17:00"}, "caps": {"marketing_per_day": 1}}
    practice = parse_practices(_with(**extra))["x"]
    assert practice.windows[M] == (time(9, 30), time(17))
    assert practice.windows[T] == (time(8), time(20))
    assert practice.marketing_per_day == 1


def test_an_older_development_file_gains_the_new_secrets_and_keeps_the_old(tmp_path: Path) -> None:
    old = {"api_token": "an-old-api-token-1234", "twilio_auth_token": "old-auth"}
    (tmp_path / "dev-secrets.json").write_text(json.dumps(old))
    settings = load_settings({}, tmp_path)
    assert settings.api_tokens == ("an-old-api-token-1234",)
    assert settings.twilio_auth_token == "old-auth"
    assert len(settings.encryption_keys) == 1
    assert len(settings.hash_key) >= 32
    assert len(settings.secret_key) >= 32
    assert load_settings({}, tmp_path).secret_key == settings.secret_key  # kept
    assert load_settings({}, tmp_path).encryption_keys == settings.encryption_keys  # kept


@pytest.mark.parametrize(
    "key", ["not-base64!", "c2hvcnQ=", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=,x"]
)
def test_encryption_keys_must_be_fernet_keys(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_ENCRYPTION_KEYS: each key must be 32"):
        load_settings({"GATEWAY_ENCRYPTION_KEYS": key}, tmp_path)


def test_a_short_hash_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_HASH_KEY: needs at least 32"):
        load_settings({"GATEWAY_HASH_KEY": "short"}, tmp_path)


def test_a_short_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="GATEWAY_SECRET_KEY: needs at least 32"):
        load_settings({"GATEWAY_SECRET_KEY": "short"}, tmp_path)


def test_the_secret_key_comes_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings({"GATEWAY_SECRET_KEY": " " + "s" * 40 + " "}, tmp_path)
    assert settings.secret_key == "s" * 40


# --- each key declared once: the README's tables, the messages --------------------------------

README = (TESTS.parent / "README.md").read_text(encoding="utf-8")
#: documented variables that Settings does not read (the app factory, gunicorn, the Procfile do)
READ_ELSEWHERE = {
    "GATEWAY_CONFIG", "GATEWAY_INSTANCE_PATH", "PROMETHEUS_MULTIPROC_DIR", "GATEWAY_BIND"
}  # fmt: skip


def readme_table(header: str) -> list[tuple[list[str], str]]:
    """The rows of the README table under ``header``: (the keys of the first column, the last)."""
    lines = README.split(header + "\n", 1)[1].splitlines()[1:]
    rows = []
    for line in itertools.takewhile(lambda text: text.startswith("|"), lines):
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        rows.append((re.findall(r"`([^`]+)`", cells[0]), cells[-1]))
    return rows


def literal(text: str) -> object:
    """A default as the README writes it (`2`, `text`, `false`, `08:00-20:00`) as a value."""
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"\d\d:\d\d-\d\d:\d\d", text):
        return tuple(time(int(t[:2]), int(t[3:])) for t in text.split("-"))
    try:
        return float(text)
    except ValueError:
        return text


def declared_default(kind: type, attribute: str) -> object:
    declared = kind.__dataclass_fields__[attribute]
    if declared.default_factory is not dataclasses.MISSING:
        return declared.default_factory()
    return declared.default


def test_every_variable_is_documented_with_its_default(tmp_path: Path) -> None:
    rows = readme_table("| variable | meaning | default |")
    documented = {name: default for names, default in rows for name in names}
    variables = {k: attribute for k, attribute in schema.keys(Settings).items() if k.isupper()}
    assert set(documented) - set(variables) == READ_ELSEWHERE
    assert set(variables) <= set(documented)
    assert documented["GATEWAY_CONFIG"] == f"`{config.EXAMPLE_PRACTICES_FILE.name}`"

    instance = tmp_path / "instance"
    loaded = load_settings({}, instance)
    development = config.development_secrets(instance).values()
    for name, attribute in variables.items():
        default, value = documented[name], getattr(loaded, attribute)
        if "dev-secrets.json" in default:  # "a random local ... in instance/dev-secrets.json"
            assert set(value if isinstance(value, tuple) else [value]) <= set(development), name
        elif name == "DATABASE_URL":
            assert default == "`sqlite:///instance/gateway.sqlite3`"
            assert value == f"sqlite:///{instance / 'gateway.sqlite3'}"
        elif default.startswith("`"):
            assert value == declared_default(Settings, attribute) == literal(default.strip("`"))
        else:  # "none", "off", "Twilio", "the request's own URL"
            assert value in (None, ()), name
            assert declared_default(Settings, attribute) in (None, ()), name


def test_every_practice_key_is_documented_with_its_default() -> None:
    documented: dict[str, str] = {}
    for names, default in readme_table("| key | meaning | default |"):
        values = re.findall(r"`([^`]+)`", default) if default.startswith("`") else []
        for n, name in enumerate(names):
            documented[name] = values[n if len(values) > 1 else 0] if values else default
    known = schema.keys(Practice)
    for name in known.keys() - {""}:  # "": the slug, the table's own name
        assert name in documented or any(d.startswith(f"{name}.") for d in documented), name

    for name, text in documented.items():
        table, _, category = name.partition(".")
        if name in known:
            default = declared_default(Practice, known[name])
        else:  # one category of a mapping: senders.marketing, sending_window.transactional
            default = declared_default(Practice, known[table])
            if isinstance(default, dict):
                default = default[Category(category)]
        if "required" in text:
            assert default is dataclasses.MISSING, name
        elif text.startswith("none"):
            assert default is None, name
        else:
            assert default == literal(text), name


def test_config_error_shows_under_its_public_name() -> None:
    assert f"{ConfigError.__module__}.{ConfigError.__qualname__}" == "gateway.config.ConfigError"
    assert "gateway.config.ConfigError: practices.alluring.time_zone: unknown time zone" in README


BAD_VARIABLES = [
    ("GATEWAY_DISPATCH_INTERVAL", "soon", "GATEWAY_DISPATCH_INTERVAL: not a number: 'soon'"),
    ("GATEWAY_DISPATCH_INTERVAL", "0.05",
     "GATEWAY_DISPATCH_INTERVAL: must be between 0.1 and 3600"),
    ("GATEWAY_DISPATCH_BATCH", "10001", "GATEWAY_DISPATCH_BATCH: must be between 1 and 10000"),
    ("GATEWAY_DISPATCH_CONCURRENCY", "0",
     "GATEWAY_DISPATCH_CONCURRENCY: must be between 1 and 256"),
    ("GATEWAY_DISPATCH_LEASE", "4", "GATEWAY_DISPATCH_LEASE: must be between 5 and 3600"),
    ("GATEWAY_RECONCILE_AFTER", "nan", "GATEWAY_RECONCILE_AFTER: must be between 1 and 604800"),
    ("GATEWAY_DATABASE_TIMEOUT", " 61 ", "GATEWAY_DATABASE_TIMEOUT: must be between 0.5 and 60"),
    ("GATEWAY_SCHEDULER_METRICS_PORT", "70000",
     "GATEWAY_SCHEDULER_METRICS_PORT: must be between 1 and 65535"),
    ("GATEWAY_LOG_FORMAT", " XML ", "GATEWAY_LOG_FORMAT: must be text or json, not 'xml'"),
    ("GATEWAY_ENV", "Test", "GATEWAY_ENV: must be development, production or test, not 'Test'"),
    ("GATEWAY_METRICS_TOKEN", "short", "GATEWAY_METRICS_TOKEN: needs at least 16 characters"),
    ("GATEWAY_METRICS_ALLOW", "10.0.0.0/8, intranet",
     "GATEWAY_METRICS_ALLOW: not an IP address or network: 'intranet'"),
    ("TWILIO_API_BASE_URL", " localhost:4010/ ",
     "TWILIO_API_BASE_URL: not an http(s) URL: 'localhost:4010'"),
    ("GATEWAY_API_TOKEN", f"alluring+nowhere:{GOOD_TOKEN}",
     "GATEWAY_API_TOKEN: a token is scoped to unknown practice 'nowhere'"),
    ("GATEWAY_API_TOKEN", f"alluring:{'x' * 15}",
     "GATEWAY_API_TOKEN: each token needs at least 16 characters"),
    ("GATEWAY_ENCRYPTION_KEYS", "c2hvcnQ=", "GATEWAY_ENCRYPTION_KEYS: each key must be 32 "
     "url-safe base64-encoded bytes (`python -m gateway.crypto` makes one)"),
    ("GATEWAY_HASH_KEY", "k" * 31, "GATEWAY_HASH_KEY: needs at least 32 characters"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "message"), BAD_VARIABLES)
def test_a_bad_variable_is_named_with_the_reason(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings({name: value}, tmp_path)
    assert str(excinfo.value) == message


@pytest.mark.parametrize(
    ("name", "value", "attribute", "expected"),
    [
        ("GATEWAY_DISPATCH_BATCH", "100.7", "dispatch_batch", 100),  # a fraction is dropped
        ("GATEWAY_SCHEDULER_METRICS_PORT", " 9100 ", "scheduler_metrics_port", 9100),
        ("GATEWAY_DISPATCH_LEASE", "  ", "dispatch_lease", 120.0),  # blank: unset
        ("GATEWAY_LOG_FORMAT", " JSON ", "log_format", "json"),
        ("GATEWAY_METRICS_TOKEN", f" {'m' * 16} ", "metrics_token", "m" * 16),
        ("GATEWAY_METRICS_ALLOW", "10.0.0.1/8, ,::1", "metrics_allow",
         (ip_network("10.0.0.0/8"), ip_network("::1"))),
        ("GATEWAY_ENCRYPTION_KEYS", f" {PRODUCTION_ENV['GATEWAY_ENCRYPTION_KEYS']} ,",
         "encryption_keys", (PRODUCTION_ENV["GATEWAY_ENCRYPTION_KEYS"],)),
        ("DATABASE_URL", " postgres://db/gw ", "database_url", "postgresql+psycopg://db/gw"),
        ("TWILIO_AUTH_TOKEN", " auth ", "twilio_auth_token", "auth"),
    ],
)  # fmt: skip
def test_variables_are_read_as_declared(
    tmp_path: Path, name: str, value: str, attribute: str, expected: object
) -> None:
    assert getattr(load_settings({name: value}, tmp_path), attribute) == expected


def test_a_blank_database_url_is_unset(tmp_path: Path) -> None:
    settings = load_settings({"DATABASE_URL": "  "}, tmp_path)
    assert settings.database_url == f"sqlite:///{tmp_path / 'gateway.sqlite3'}"


def test_token_scopes(tmp_path: Path) -> None:
    other = "another-token-0123456789"
    env = {"GATEWAY_API_TOKEN": f"alluring + bellara:{GOOD_TOKEN}, {other}"}
    settings = load_settings(env, tmp_path)
    assert settings.api_tokens == (GOOD_TOKEN, other)
    assert settings.token_scopes == {GOOD_TOKEN: frozenset({"alluring", "bellara"}), other: None}


@pytest.mark.parametrize("value", [",", " , "])
def test_production_requires_an_encryption_key_not_just_commas(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"^GATEWAY_ENCRYPTION_KEYS: required when"):
        load_settings({**PRODUCTION_ENV, "GATEWAY_ENCRYPTION_KEYS": value}, tmp_path)
    assert not (tmp_path / "dev-secrets.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"events": "https://x.example/h"}, "practices.x.events: must be a table"),
        ({"events": {}}, "practices.x.events.url: required, an http(s) URL"),
        ({"events": {"url": "https://x.example/h", "secrets": "x"}},
         "practices.x.events.secrets: unknown key (allowed: secret, url)"),
        ({"caps": {"per_hour": 1}}, "practices.x.caps.per_hour: unknown key (allowed: "
         "marketing_per_day, transactional_per_day, transactional_per_week)"),
        ({"retention": 7}, "practices.x.retention: must be a table"),
        ({"age": {"oldest": 1, "eldest": 1}}, "practices.x.age.eldest: unknown key"),
        ({"zone": 1, "age": {"eldest": 1}}, "practices.x.zone: unknown key"),
        ({"slug": "x"}, "practices.x.slug: unknown key"),
        ({"minimum_age": 16}, "practices.x.minimum_age: unknown key"),
        ({"sending_window": "08:00-20:00"},
         'practices.x.sending_window: must be a table of category = "HH:MM-HH:MM"'),
        ({"sending_window": {"promos": "09:00-17:00"}},
         "practices.x.sending_window.promos: unknown category (expected transactional, marketing)"),
        ({"rate_limit": 5}, "practices.x.rate_limit: must be a table of category = messages per "
         "second"),
        ({"rate_limit": {"marketing": 0.05}}, "practices.x.rate_limit.marketing: messages per "
         "second, 0 (no limit) or from 0.1 to 10000"),
        ({"confirmations": 1}, "practices.x.confirmations: must be true or false"),
        ({"time_zone": " "}, "practices.x.time_zone: required, a non-empty string"),
        ({"senders": {"transactional": " "}}, "practices.x.senders.transactional: must be an "
         "E.164 number or a Messaging Service SID (MG...)"),
    ],
)  # fmt: skip
def test_a_bad_practice_key_is_named_with_the_reason(
    extra: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_practices(_with(**extra))
    assert str(excinfo.value).startswith(message)


def test_event_settings_are_stripped_as_read() -> None:
    secret = "whsec_" + PRODUCTION_ENV["GATEWAY_ENCRYPTION_KEYS"].replace("-", "+")
    events = {"url": " https://x.example/h ", "secret": secret}
    practice = parse_practices(_with(events=events))["x"]
    assert (practice.events_url, practice.events_secret) == ("https://x.example/h", secret)
    assert secret not in repr(practice)


def test_a_practice_built_in_code_is_not_checked() -> None:
    # what the file may hold is checked when it is read; tests build variations freely
    practice = parse_practices(_with())["x"]
    varied = dataclasses.replace(practice, name=" ", review_alert_hours=0)
    assert (varied.name, varied.review_alert_hours, varied.slug) == (" ", 0, "x")
