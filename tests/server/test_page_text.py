"""The sign-in pages' words: language negotiation (Accept-Language with weights, the query
parameter and cookie), the English/German table and the translation of the identity
module's error messages."""

from __future__ import annotations

import ast
import inspect
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.identity import accounts, oidc, passwords
from incamera.identity.accounts import AccountDisabled, BadCredentials, NoSuchAccount
from incamera.identity.oidc import OidcError
from incamera.identity.passwords import PasswordRejected, check_new_password
from incamera.identity.throttle import Throttled
from incamera.server.page_text import (
    LANGS,
    TEXT,
    error_text,
    html_text,
    known_error,
    negotiate,
    parse_accept_language,
    placeholders,
    text,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "en"),
        ("", "en"),
        ("de", "de"),
        ("de-DE", "de"),
        ("DE-at", "de"),
        ("de-AT;q=0.9, en;q=0.8", "de"),
        ("de-AT;q=0.9,en;q=0.8", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR, fr;q=0.9, de;q=0.7, en;q=0.5", "de"),
        ("fr-FR, fr;q=0.9", "en"),
        ("en;q=0.2, de;q=0.3", "de"),
        ("de, en", "de"),
        ("en, de", "en"),
        ("de;q=0.5, en;q=0.5", "de"),  # equal weights: the earlier one
        ("en;q=0.5, de;q=0.5", "en"),
        ("en;q=0.5, de, en", "de"),  # equal best weights: German's is named first
        ("en, de;q=0.5, de", "en"),
        ("de;q=0", "en"),  # "not German"
        ("de;q=0, en;q=0", "en"),
        ("de;q=0.000, *", "en"),
        ("en;q=0, *", "de"),  # anything but English
        ("en;q=0, *;q=0.1", "de"),
        ("*", "en"),
        ("fr, *;q=0.5, de;q=0.6", "de"),
        ("de-AT;q=0, de;q=0.7, en;q=0.6", "de"),  # the best weight naming German counts
        ("de ; q=0.9 , en ; q=0.8", "de"),  # optional white space around ";" and ","
        (", , de", "de"),
        # not well-formed elements are ignored
        ("de;q=1.5", "en"),
        ("de;q=abc", "en"),
        ("de;q=", "en"),
        ("de;q=0.9999", "en"),
        ("de;level=1", "en"),
        ("de-", "en"),
        ("de_DE", "en"),
        ("deutsch-und-englisch-zusammen", "en"),
        ("de;q=abc, en;q=0.1", "en"),
        ("xx;q=abc, de;q=0.1", "de"),
        ("%%%,;;;==", "en"),
        ("\u00e4\u00f6\u00fc", "en"),
        ("de\x00", "en"),
    ],
)
def test_accept_language(header: str | None, expected: str):
    assert parse_accept_language(header) == expected


@given(st.text())
def test_any_header_gives_english_or_german(header: str):
    assert parse_accept_language(header) in ("en", "de")


_TAGS = st.sampled_from(["de", "en", "de-AT", "en-GB", "fr", "*", "DE", "x-test", "", "de-"])
_WEIGHTS = st.one_of(
    st.just(""),
    st.sampled_from(["0", "1", "0.5", "0.999", "1.000", "0.", "2", "-1", "abc", "0.1234"]),
    st.text(max_size=5),
).map(lambda q: f";q={q}" if q else "")
_ELEMENTS = st.tuples(_TAGS, _WEIGHTS, st.sampled_from(["", " ", "\t", ";", "=", ","]))


@given(st.lists(_ELEMENTS, max_size=8), st.sampled_from([",", ", ", " ,", ";"]))
def test_header_like_strings_give_english_or_german(
    elements: list[tuple[str, str, str]], separator: str
):
    header = separator.join(tag + weight + noise for tag, weight, noise in elements)
    chosen = parse_accept_language(header)
    assert chosen in ("en", "de")
    if chosen == "de":  # German only when something in the header allows it
        assert "de" in header.lower() or "*" in header


def test_a_very_long_header_is_cut_not_refused():
    assert parse_accept_language("de;q=0.9," + "fr," * 100_000) == "de"
    assert parse_accept_language("fr," * 100_000 + "de") == "en"


def test_negotiation_order():
    assert negotiate(None, None, None) == "en"
    assert negotiate(None, None, "de-AT;q=0.9, en;q=0.8") == "de"
    assert negotiate(None, "en", "de") == "en"  # the cookie beats the header
    assert negotiate("de", "en", "en") == "de"  # the query beats the cookie
    assert negotiate("fr", "de", "en") == "de"  # unknown values are ignored
    assert negotiate("", "xx", "de") == "de"
    assert negotiate("DE", None, None) == "en"  # exactly "de" or "en"


def test_every_text_is_in_both_languages_with_the_same_placeholders():
    for key, texts in TEXT.items():
        assert set(texts) == set(LANGS), key
        assert all(texts[lang].strip() for lang in LANGS), key
        assert placeholders(texts["en"]) == placeholders(texts["de"]), key


def test_text_fills_in_and_html_text_escapes():
    assert text("de", "signin.sso", provider="Dataport") == "Anmeldung mit Dataport"
    assert text("en", "throttled.many", n=7).endswith("Try again in 7 minutes.")
    assert text("de", "throttled.many", n=7).endswith("Bitte versuchen Sie es in 7 Minuten erneut.")
    assert html_text("de", "signed_in.as", name="<b>X</b>") == "Angemeldet als <b>X</b>."
    assert html_text("en", "signin.sso", provider="<i>") == "Sign in with <i>"
    assert "&lt;" in text("en", "signin.sso", provider="<x>").replace("<", "&lt;")


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 119, 120, 600, 899, 900, 3600])
def test_throttling_message_is_the_throttles_own_in_english(seconds: int):
    error = Throttled(retry_after=seconds)
    assert error_text("en", error) == str(error)
    german = error_text("de", error)
    assert german.startswith("Zu viele fehlgeschlagene Anmeldeversuche")
    minutes = max(1, -(-seconds // 60))
    if minutes == 1:
        assert "in einer Minute erneut" in german
    else:
        assert f"in {minutes} Minuten erneut" in german


def _messages_raised(module: object, exception_names: set[str]) -> list[str]:
    """The messages ``module`` raises the named exceptions with, f-string values as "X"."""
    found = []
    for node in ast.walk(ast.parse(inspect.getsource(module))):  # type: ignore[arg-type]
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in exception_names
            and node.args
        ):
            continue
        argument = node.args[0]
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            found.append(argument.value)
        elif isinstance(argument, ast.JoinedStr):
            found.append(
                "".join(
                    str(part.value) if isinstance(part, ast.Constant) else "X"
                    for part in argument.values
                )
            )
    return found


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (oidc, {"OidcError"}),
        (accounts, {"BadCredentials", "PasswordRejected"}),
        (passwords, {"PasswordRejected"}),
    ],
)
def test_every_message_the_sign_in_pages_can_show_is_in_the_table(module: object, names: set[str]):
    """Guards against a new or reworded message in incamera.identity that would show up
    in English on a German page."""
    messages = _messages_raised(module, names)
    assert messages
    for message in messages:
        assert known_error(message) is not None, message


@pytest.mark.parametrize(
    "error",
    [
        BadCredentials(),
        AccountDisabled(),
        NoSuchAccount("no such account"),
        BadCredentials("Wrong or already used code."),
        OidcError("The identity provider refused the sign-in: access_denied"),
        OidcError("The identity provider cannot be reached (ConnectError)."),
        PasswordRejected("the two passwords differ"),
    ],
)
def test_known_messages_stay_english_and_turn_german(error: Exception):
    assert error_text("en", error) == str(error)
    german = error_text("de", error)
    assert german != str(error)
    english_words = re.compile(r"\b(the|The|This|is|or|password|account|sign-in)\b")
    assert not english_words.search(german.replace("access_denied", "")), german


def test_password_rules_are_worded_in_german():
    for candidate, expected in [
        ("short", "Es muss mindestens 10 Zeichen lang sein."),
        (" " * 12, "Es darf nicht nur aus Leerzeichen bestehen."),
        ("x" * 2000, "Es darf höchstens 1024 Zeichen lang sein."),
    ]:
        with pytest.raises(PasswordRejected) as caught:
            check_new_password(candidate)
        assert error_text("de", caught.value) == expected
        assert error_text("en", caught.value) == str(caught.value)


def test_unknown_messages_english_as_they_are_german_in_general_words():
    assert error_text("en", OidcError("Something new.")) == "Something new."
    assert error_text("de", OidcError("Something new.")) == text("de", "fallback.oidc")
    assert error_text("de", PasswordRejected("too pretty")) == text("de", "fallback.password")
    assert error_text("de", BadCredentials("Who knows.")) == text("de", "fallback.account")
