"""The words of the server-rendered sign-in pages, in English and German, and the choice
between them.

The web app chooses its language in the browser (``web/i18n.js``); these pages are made on
the server, so the server chooses: a ``lang`` query parameter (remembered in the
``incamera_lang`` cookie), else that cookie, else the ``Accept-Language`` header, else
English (``negotiate``).

``TEXT`` holds every sentence the pages show, ``{name}`` marking a value filled in. The
error messages of ``incamera.identity`` (wrong password, throttling, single sign-on
failures ...) are English sentences made there; ``error_text`` recognises them by their
English entry here and answers the entry in the page's language. A message it does not
know is shown as it is in English, and as a general sentence of its kind in German.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from functools import cache
from typing import Final, Literal, TypeGuard, get_args

from incamera.identity.oidc import OidcError
from incamera.identity.passwords import PasswordRejected
from incamera.identity.throttle import Throttled

Lang = Literal["en", "de"]
LANGS: Final[tuple[Lang, ...]] = get_args(Lang)
DEFAULT_LANG: Final[Lang] = "en"
LANGUAGE_NAMES: Final[Mapping[Lang, str]] = {"en": "English", "de": "Deutsch"}
COOKIE: Final = "incamera_lang"
QUERY: Final = "lang"
ACCEPT_LANGUAGE_MAX: Final = 4096  # characters of the header looked at

# key -> {language: text}. Keys starting with "error." are exception messages from
# incamera.identity (matched by their English text, see error_text).
TEXT: Final[Mapping[str, Mapping[Lang, str]]] = {
    # --- page frame ---
    "page.suffix": {"en": "incamera", "de": "incamera"},
    "page.language": {"en": "Language", "de": "Sprache"},
    # --- password form ---
    "signin.title": {"en": "Sign in", "de": "Anmelden"},
    "signin.username": {"en": "Username", "de": "Benutzername"},
    "signin.password": {"en": "Password", "de": "Passwort"},
    "signin.submit": {"en": "Sign in", "de": "Anmelden"},
    "signin.or": {"en": "or", "de": "oder"},
    "signin.sso": {"en": "Sign in with {provider}", "de": "Anmeldung mit {provider}"},
    "signin.sso_default_name": {"en": "single sign-on", "de": "Single Sign-on"},
    # --- second factor at sign-in ---
    "code.title": {"en": "Second factor", "de": "Zweiter Faktor"},
    "code.intro": {
        "en": "Enter the 6-digit code from your authenticator app.",
        "de": "Bitte geben Sie den sechsstelligen Bestätigungscode aus Ihrer "
        "Authentifizierungs-App ein.",
    },
    "code.field": {"en": "Code", "de": "Bestätigungscode"},
    "code.submit": {"en": "Continue", "de": "Weiter"},
    # --- new password (forced change, reset link) ---
    "change.title": {"en": "New password", "de": "Neues Passwort"},
    "change.intro": {
        "en": "Choose a new password (at least {n} characters).",
        "de": "Bitte wählen Sie ein neues Passwort (mindestens {n} Zeichen).",
    },
    "change.new": {"en": "New password", "de": "Neues Passwort"},
    "change.repeat": {"en": "Repeat it", "de": "Neues Passwort wiederholen"},
    "change.submit": {"en": "Set password", "de": "Passwort speichern"},
    "change.refused": {
        "en": "Not changed: {reason}.",
        "de": "Das Passwort wurde nicht geändert. {reason}",
    },
    # --- signed in, sign-out ---
    "signed_in.title": {"en": "Signed in", "de": "Angemeldet"},
    "signed_in.as": {"en": "Signed in as {name}.", "de": "Angemeldet als {name}."},
    "signed_in.meeting": {
        "en": "Start or join a meeting",
        "de": "Besprechung starten oder beitreten",
    },
    "signed_in.second_factor": {"en": "Second factor", "de": "Zweiter Faktor"},
    "signed_in.password": {"en": "Change password", "de": "Passwort ändern"},
    # --- changing one's own password (/signin/password) ---
    "password.title": {"en": "Change password", "de": "Passwort ändern"},
    "password.intro": {
        "en": "Enter your current password, then choose a new one (at least {n} characters). "
        "Your other devices will be signed out.",
        "de": "Bitte geben Sie Ihr aktuelles Passwort ein und wählen Sie dann ein neues "
        "(mindestens {n} Zeichen). Ihre anderen Geräte werden abgemeldet.",
    },
    "password.current": {"en": "Current password", "de": "Aktuelles Passwort"},
    "password.submit": {"en": "Change password", "de": "Passwort ändern"},
    "password.done": {
        "en": "Your password has been changed. Your other devices were signed out.",
        "de": "Ihr Passwort wurde geändert. Ihre anderen Geräte wurden abgemeldet.",
    },
    "password.continue": {"en": "Continue", "de": "Weiter"},
    "password.sso_account": {
        "en": "Single sign-on accounts change their password at their identity provider.",
        "de": "Konten mit Single Sign-on ändern ihr Passwort bei ihrem Identitätsanbieter.",
    },
    "signout.title": {"en": "Sign out", "de": "Abmelden"},
    "signout.submit": {"en": "Sign out", "de": "Abmelden"},
    "signout.refused": {
        "en": "Sign-out refused: please use the button.",
        "de": "Die Abmeldung wurde abgelehnt. Bitte verwenden Sie die Schaltfläche „Abmelden“.",
    },
    # --- TOTP enrolment page ---
    "totp.title": {"en": "Second factor", "de": "Zweiter Faktor"},
    "totp.intro": {
        "en": "Add this key to your authenticator app, then enter the code it shows.",
        "de": "Bitte fügen Sie diesen Schlüssel Ihrer Authentifizierungs-App hinzu und "
        "geben Sie dann den angezeigten Bestätigungscode ein.",
    },
    "totp.key": {"en": "Key:", "de": "Schlüssel:"},
    "totp.open": {"en": "Or open:", "de": "Oder öffnen Sie:"},
    "totp.field": {"en": "Code", "de": "Bestätigungscode"},
    "totp.submit": {"en": "Turn on", "de": "Aktivieren"},
    "totp.on": {"en": "The second factor is on.", "de": "Der zweite Faktor ist aktiviert."},
    "totp.continue": {"en": "Continue", "de": "Weiter"},
    "totp.sso_account": {
        "en": "Single sign-on accounts use the second factor of their provider.",
        "de": "Konten mit Single Sign-on verwenden den zweiten Faktor ihres Identitätsanbieters.",
    },
    # --- messages made here ---
    "form.expired": {
        "en": "Your sign-in form had expired. Please try again.",
        "de": "Ihr Anmeldeformular war abgelaufen. Bitte versuchen Sie es erneut.",
    },
    "form.reset_expired": {
        "en": "The form had expired. Please try again.",
        "de": "Das Formular war abgelaufen. Bitte versuchen Sie es erneut.",
    },
    "form.csrf": {
        "en": "The form was not sent from this page. Please try again.",
        "de": "Das Formular wurde nicht von dieser Seite gesendet. Bitte versuchen Sie es erneut.",
    },
    "form.try_again": {"en": "Please try again.", "de": "Bitte versuchen Sie es erneut."},
    "form.sign_in_again": {
        "en": "Please sign in again.",
        "de": "Bitte melden Sie sich erneut an.",
    },
    "sso.off": {
        "en": "Single sign-on is not configured.",
        "de": "Single Sign-on ist nicht eingerichtet.",
    },
    "sso.not_started": {
        "en": "This sign-in was not started here, or it expired. Try again.",
        "de": "Diese Anmeldung wurde nicht hier begonnen oder ist abgelaufen. "
        "Bitte versuchen Sie es erneut.",
    },
    "throttled.one": {
        "en": "Too many failed sign-in attempts for this account from your network "
        "address. Try again in 1 minute.",
        "de": "Zu viele fehlgeschlagene Anmeldeversuche für dieses Konto von Ihrer "
        "Netzwerkadresse aus. Bitte versuchen Sie es in einer Minute erneut.",
    },
    "throttled.many": {
        "en": "Too many failed sign-in attempts for this account from your network "
        "address. Try again in {n} minutes.",
        "de": "Zu viele fehlgeschlagene Anmeldeversuche für dieses Konto von Ihrer "
        "Netzwerkadresse aus. Bitte versuchen Sie es in {n} Minuten erneut.",
    },
    # --- general sentences for messages error_text does not know ---
    "fallback.account": {
        "en": "The sign-in failed.",
        "de": "Die Anmeldung ist fehlgeschlagen.",
    },
    "fallback.password": {
        "en": "the password does not meet the rules",
        "de": "Das Passwort erfüllt die Anforderungen nicht.",
    },
    "fallback.oidc": {
        "en": "Single sign-on failed.",
        "de": "Die Anmeldung über den Identitätsanbieter ist fehlgeschlagen.",
    },
    # --- incamera.identity.accounts ---
    "error.bad_credentials": {
        "en": "Wrong username or password.",
        "de": "Der Benutzername oder das Passwort ist falsch.",
    },
    "error.disabled": {
        "en": "This account is disabled. Ask your administrator.",
        "de": "Dieses Konto ist deaktiviert. Bitte wenden Sie sich an Ihre Administration.",
    },
    "error.no_totp": {
        "en": "This account has no second factor.",
        "de": "Für dieses Konto ist kein zweiter Faktor eingerichtet.",
    },
    "error.code_used": {
        "en": "Wrong or already used code.",
        "de": "Der Bestätigungscode ist falsch oder wurde bereits verwendet.",
    },
    "error.code_time": {
        "en": "Wrong code: check the time on your device and try again.",
        "de": "Der Bestätigungscode ist falsch. Bitte prüfen Sie die Uhrzeit auf Ihrem Gerät "
        "und versuchen Sie es erneut.",
    },
    "error.reset_link": {
        "en": "This reset link is invalid, used or expired.",
        "de": "Dieser Link zum Zurücksetzen ist ungültig, wurde bereits verwendet oder ist "
        "abgelaufen.",
    },
    "error.current_password": {
        "en": "The current password is not right.",
        "de": "Das aktuelle Passwort ist nicht richtig.",
    },
    "error.totp_unreadable": {
        "en": "The second factor of this account cannot be checked. "
        "Ask your administrator to reset it.",
        "de": "Der zweite Faktor dieses Kontos kann nicht geprüft werden. Bitte lassen Sie "
        "ihn von Ihrer Administration zurücksetzen.",
    },
    "error.no_account": {
        "en": "no such account",
        "de": "Dieses Konto gibt es nicht mehr.",
    },
    # --- incamera.identity.passwords (and the repeat check in auth_routes) ---
    "error.password_short": {
        "en": "the password must have at least {n} characters",
        "de": "Es muss mindestens {n} Zeichen lang sein.",
    },
    "error.password_long": {
        "en": "the password must have at most {n} characters",
        "de": "Es darf höchstens {n} Zeichen lang sein.",
    },
    "error.password_blank": {
        "en": "the password must not be blank",
        "de": "Es darf nicht nur aus Leerzeichen bestehen.",
    },
    "error.password_same": {
        "en": "the new password is the current one",
        "de": "Das neue Passwort ist das bisherige.",
    },
    "error.password_differ": {
        "en": "the two passwords differ",
        "de": "Die beiden Eingaben stimmen nicht überein.",
    },
    # --- incamera.identity.oidc ---
    "error.oidc_issuer": {
        "en": "The identity provider's discovery document names a different issuer "
        "({found}) than configured ({expected}).",
        "de": "Das Discovery-Dokument des Identitätsanbieters nennt einen anderen Aussteller "
        "({found}) als konfiguriert ({expected}).",
    },
    "error.oidc_lacks": {
        "en": "The identity provider's discovery document lacks {field}.",
        "de": "Im Discovery-Dokument des Identitätsanbieters fehlt {field}.",
    },
    "error.oidc_insecure": {
        "en": "The identity provider announced an insecure endpoint: {url}",
        "de": "Der Identitätsanbieter hat eine unsichere Adresse angegeben: {url}",
    },
    "error.oidc_unreachable": {
        "en": "The identity provider cannot be reached ({reason}).",
        "de": "Der Identitätsanbieter ist nicht erreichbar ({reason}).",
    },
    "error.oidc_status": {
        "en": "The identity provider answered {status} for {url}.",
        "de": "Der Identitätsanbieter hat auf {url} mit dem Status {status} geantwortet.",
    },
    "error.oidc_no_json": {
        "en": "The identity provider sent no JSON from {url}.",
        "de": "Der Identitätsanbieter hat unter {url} kein JSON geliefert.",
    },
    "error.oidc_discovery_shape": {
        "en": "The identity provider's discovery document is not an object.",
        "de": "Das Discovery-Dokument des Identitätsanbieters ist kein JSON-Objekt.",
    },
    "error.oidc_keys": {
        "en": "The identity provider's key set cannot be read.",
        "de": "Die Schlüssel des Identitätsanbieters (JWKS) können nicht gelesen werden.",
    },
    "error.oidc_state": {
        "en": "The sign-in response does not belong to this browser session.",
        "de": "Die Antwort des Identitätsanbieters gehört nicht zu dieser Browsersitzung.",
    },
    "error.oidc_slow": {
        "en": "The sign-in took too long. Please start again.",
        "de": "Die Anmeldung hat zu lange gedauert. Bitte beginnen Sie erneut.",
    },
    "error.oidc_refused": {
        "en": "The identity provider refused the sign-in: {reason}",
        "de": "Der Identitätsanbieter hat die Anmeldung abgelehnt: {reason}",
    },
    "error.oidc_no_code": {
        "en": "The identity provider sent no authorization code.",
        "de": "Der Identitätsanbieter hat keinen Autorisierungscode gesendet.",
    },
    "error.oidc_no_id_token": {
        "en": "The identity provider sent no id token.",
        "de": "Der Identitätsanbieter hat kein ID-Token gesendet.",
    },
    "error.oidc_code_refused": {
        "en": "The identity provider refused the authorization code ({reason}).",
        "de": "Der Identitätsanbieter hat den Autorisierungscode abgelehnt ({reason}).",
    },
    "error.oidc_token_invalid": {
        "en": "The identity provider's id token is not valid ({reason}).",
        "de": "Das ID-Token des Identitätsanbieters ist ungültig ({reason}).",
    },
    "error.oidc_azp": {
        "en": "The id token was issued to another client (azp).",
        "de": "Das ID-Token wurde für einen anderen Client ausgestellt (azp).",
    },
    "error.oidc_no_subject": {
        "en": "The id token names no subject.",
        "de": "Das ID-Token nennt kein Subjekt (sub).",
    },
}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def is_lang(value: object) -> TypeGuard[Lang]:
    return isinstance(value, str) and value in LANGS


def text(lang: Lang, key: str, **params: object) -> str:
    """The text for ``key`` in ``lang``, ``{name}`` placeholders filled in from ``params``
    (plain text: the caller escapes it for HTML)."""
    template = TEXT[key][lang]
    return _PLACEHOLDER.sub(
        lambda m: str(params[m[1]]) if m[1] in params else m[0],
        template,
    )


def html_text(lang: Lang, key: str, **markup: str) -> str:
    """The text for ``key`` in ``lang`` as HTML: the text escaped, ``{name}`` replaced by
    ``markup[name]`` as it is (the caller escapes what goes in there)."""
    pieces = _PLACEHOLDER.split(TEXT[key][lang])  # literal, name, literal, ..., literal
    return "".join(
        html.escape(piece) if index % 2 == 0 else markup.get(piece, "{" + piece + "}")
        for index, piece in enumerate(pieces)
    )


def placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


# --- language negotiation -------------------------------------------------------------------

# RFC 9110 section 12.5.4: language-range (RFC 4647) [ weight ], weight = OWS ";" OWS "q=" qvalue
_RANGE = re.compile(r"\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def parse_accept_language(header: str | None) -> Lang:
    """The language an ``Accept-Language`` header prefers among ``LANGS``, or English.

    Each range counts for its primary subtag (``de-AT`` is German); a language gets the
    highest weight of the ranges naming it, ``*`` gives its weight to languages not named,
    ``q=0`` means "not this one". The highest weight wins, the earlier range on a tie.
    Elements that are not well-formed are ignored; a header with nothing usable (or none
    at all) gives English. Never raises."""
    if not header:
        return DEFAULT_LANG
    named: dict[str, tuple[float, int]] = {}  # language -> (weight, position)
    wildcard: tuple[float, int] | None = None
    for position, element in enumerate(header[:ACCEPT_LANGUAGE_MAX].split(",")):
        parsed = _element(element)
        if parsed is None:
            continue
        language_range, weight = parsed
        if language_range == "*":
            if wildcard is None:
                wildcard = (weight, position)
            continue
        primary = language_range.split("-", 1)[0].lower()
        previous = named.get(primary)
        if previous is None or weight > previous[0]:
            named[primary] = (weight, position)
    candidates: list[tuple[float, int, int]] = []  # (-weight, position, index in LANGS)
    for index, lang in enumerate(LANGS):  # English first: "*" alone means English
        weight_position = named.get(lang, wildcard)
        if weight_position is not None and weight_position[0] > 0:
            candidates.append((-weight_position[0], weight_position[1], index))
    if not candidates:
        return DEFAULT_LANG
    return LANGS[min(candidates)[2]]


def _element(element: str) -> tuple[str, float] | None:
    """``de-AT;q=0.9`` -> ("de-AT", 0.9); None when not well-formed (or empty)."""
    language_range, *parameters = (part.strip(" \t") for part in element.split(";"))
    if not _RANGE.fullmatch(language_range):
        return None
    weight = 1.0
    for parameter in parameters:
        name, equals, value = parameter.partition("=")
        if not equals or name.strip(" \t").lower() != "q":
            return None  # Accept-Language has no parameter but the weight
        value = value.strip(" \t")
        if not _QVALUE.fullmatch(value):
            return None
        weight = float(value)
    return language_range, weight


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> Lang:
    """The pages' language: the ``lang`` query parameter, else the ``incamera_lang``
    cookie, else the ``Accept-Language`` header, else English. Unknown values are ignored."""
    for chosen in (query, cookie):
        if is_lang(chosen):
            return chosen
    return parse_accept_language(accept_language)


# --- error messages -------------------------------------------------------------------------


@cache
def _error_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Each English ``error.*`` text as a pattern capturing its placeholders."""
    patterns = []
    for key, texts in TEXT.items():
        if not key.startswith("error."):
            continue
        pieces = _PLACEHOLDER.split(texts["en"])  # literal, name, literal, name, ..., literal
        regex = "".join(
            re.escape(piece) if index % 2 == 0 else f"(?P<{piece}>.+?)"
            for index, piece in enumerate(pieces)
        )
        patterns.append((re.compile(regex, re.DOTALL), key))
    return tuple(patterns)


def known_error(message: str) -> tuple[str, dict[str, str]] | None:
    """The ``TEXT`` key (and the filled-in values) whose English text is ``message``."""
    for pattern, key in _error_patterns():
        match = pattern.fullmatch(message)
        if match:
            return key, match.groupdict()
    return None


def error_text(lang: Lang, error: Exception) -> str:
    """A refused step's exception as a sentence in ``lang``.

    ``Throttled`` is worded here from its wait; other messages are looked up by their
    English text. An unknown message is kept in English (it may say more than the general
    sentence) and replaced by the general sentence of its kind in German."""
    if isinstance(error, Throttled):
        minutes = max(1, math.ceil(error.retry_after / 60))
        return (
            text(lang, "throttled.one") if minutes == 1 else text(lang, "throttled.many", n=minutes)
        )
    message = str(error)
    found = known_error(message)
    if found is not None:
        key, values = found
        return text(lang, key, **values)
    if lang == "en":
        return message
    if isinstance(error, PasswordRejected):
        return text(lang, "fallback.password")
    if isinstance(error, OidcError):
        return text(lang, "fallback.oidc")
    return text(lang, "fallback.account")
