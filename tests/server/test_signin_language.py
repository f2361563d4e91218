"""The sign-in pages in German and English through a real uvicorn: every page and step in
German with no English left, the language chosen by ?lang= (and remembered in a cookie),
the cookie or Accept-Language, and English when nothing says otherwise."""

from __future__ import annotations

import base64
import re
import socket
import time
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest
from anyio import to_thread
from starlette.responses import Response

from incamera.config import Settings
from incamera.identity import totp
from incamera.server import page_text
from incamera.server.auth_routes import CookiePolicy, identity_of
from incamera.server.page_text import TEXT

from .conftest import RunningServer
from .test_signin import PASSWORD, create_user, csrf_token, sign_in, submit

GERMAN = "de-DE,de;q=0.9,en;q=0.8"

# Phrases of the English pages that must not be seen on a German one: every English text
# of the table (its parts between placeholders), and a few by hand.
ENGLISH = {
    "Sign in",
    "Sign out",
    "Signed in",
    "Username",
    "Password",
    "password",
    "Second factor",
    "Continue",
    "New password",
    "Please",
    "Wrong",
    "Too many",
    "Try again",
    "try again",
    "not configured",
    "authenticator",
    "Turn on",
    "Language",
}
for _texts in TEXT.values():
    if _texts["en"] != _texts["de"]:
        for _piece in re.split(r"\{\w+\}", _texts["en"]):
            if len(_piece.strip(" .:()")) >= 4:
                ENGLISH.add(_piece.strip(" .:()"))


class _Visible(HTMLParser):
    """The text a person sees (and hears: aria-label), and the <html lang>."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "html":
            self.lang = values.get("lang")
        for name in ("aria-label", "title", "placeholder"):
            if values.get(name):
                self.parts.append(str(values[name]))

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def visible(page: httpx.Response) -> tuple[str | None, str]:
    parser = _Visible()
    parser.feed(page.text)
    return parser.lang, " ".join(" ".join(parser.parts).split())


def assert_german(page: httpx.Response, *expected: str) -> str:
    lang, seen = visible(page)
    assert lang == "de", page.text
    assert page.text.startswith('<!doctype html>\n<html lang="de">')
    left = sorted(phrase for phrase in ENGLISH if phrase in seen)
    assert left == [], f"English on a German page: {left}\n{seen}"
    for phrase in expected:
        assert phrase in seen, f"{phrase!r} not in {seen!r}"
    return seen


def german(server: RunningServer) -> httpx.AsyncClient:
    server.client.headers["accept-language"] = GERMAN
    return server.client


async def test_password_form_and_its_errors_in_german(server: RunningServer):
    await create_user(server)
    client = german(server)
    page = await client.get("/signin")
    assert page.status_code == 200
    assert_german(page, "Anmelden", "Benutzername", "Passwort", "English", "Deutsch")
    assert "<title>Anmelden · incamera</title>" in page.text
    assert "incamera_lang" not in page.headers.get("set-cookie", "")  # nothing chosen

    wrong = await sign_in(client, "alice", "not the password")
    assert wrong.status_code == 401 and 'id="signin-error"' in wrong.text
    assert_german(wrong, "Der Benutzername oder das Passwort ist falsch.")

    csrf = await submit(client, csrf_token="wrong", step="password", username="a", password="b")
    assert csrf.status_code == 403
    assert_german(csrf, "Das Formular wurde nicht von dieser Seite gesendet.")

    async with httpx.AsyncClient(base_url=server.url, headers=client.headers, timeout=60.0) as bare:
        expired = await submit(bare, csrf_token="x", step="password", username="a", password="b")
        assert expired.status_code == 403
        assert_german(expired, "Ihr Anmeldeformular war abgelaufen.")

    for _ in range(4):
        await sign_in(client, "alice", "guess-guess-guess")
    blocked = await sign_in(client, "alice", PASSWORD)
    assert blocked.status_code == 429
    assert_german(
        blocked,
        "Zu viele fehlgeschlagene Anmeldeversuche",
        "Bitte versuchen Sie es in 15 Minuten erneut.",
    )


async def test_disabled_account_and_sso_off_in_german(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    await to_thread.run_sync(accounts.set_disabled, account_id, True)
    client = german(server)
    refused = await sign_in(client, "alice", PASSWORD)
    assert refused.status_code == 403
    assert_german(refused, "Dieses Konto ist deaktiviert.")
    for path in ("/auth/oidc/start", "/auth/oidc/callback"):
        off = await client.get(path)
        assert off.status_code == 404
        assert_german(off, "Single Sign-on ist nicht eingerichtet.")


async def test_second_factor_step_in_german(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    secret = totp.new_secret()
    step = totp.step_of(time.time())
    await to_thread.run_sync(
        accounts.confirm_totp, account_id, secret, totp.code_at(secret, step * 30)
    )
    client = german(server)
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    code_page = await client.get("/signin")
    assert_german(code_page, "Zweiter Faktor", "Authentifizierungs-App", "Weiter")
    assert "<title>Zweiter Faktor · incamera</title>" in code_page.text
    valid = {totp.code_at(secret, (step + d) * 30) for d in (-1, 0, 1, 2)}
    wrong_code = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    wrong = await submit(client, csrf_token=csrf_token(code_page), step="totp", code=wrong_code)
    assert wrong.status_code == 401
    assert_german(wrong, "Der Bestätigungscode ist falsch oder wurde bereits verwendet.")


async def test_forced_password_change_and_signed_in_page_in_german(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    temporary = await to_thread.run_sync(accounts.admin_reset, account_id, "temporary")
    client = german(server)
    assert (await sign_in(client, "alice", temporary)).status_code == 303
    page = await client.get("/signin")
    assert_german(page, "Neues Passwort", "mindestens 10 Zeichen", "Passwort speichern")
    token = csrf_token(page)
    short = await submit(
        client, csrf_token=token, step="change", new_password="short", new_password2="short"
    )
    assert short.status_code == 400
    assert_german(short, "Das Passwort wurde nicht geändert. Es muss mindestens 10 Zeichen")
    differ = await submit(
        client,
        csrf_token=token,
        step="change",
        new_password="a long new passphrase",
        new_password2="another long passphrase",
    )
    assert differ.status_code == 400
    assert_german(differ, "Die beiden Eingaben stimmen nicht überein.")
    new = "a brand new passphrase"
    done = await submit(
        client, csrf_token=token, step="change", new_password=new, new_password2=new
    )
    assert done.status_code == 303

    signed_in = await client.get("/signin")
    assert 'id="signed-in"' in signed_in.text
    assert_german(signed_in, "Angemeldet als Alice Example", "Abmelden", "Zweiter Faktor")
    refused = await client.post("/signout", data={"csrf_token": "wrong"})
    assert refused.status_code == 403
    assert_german(refused, "Die Abmeldung wurde abgelehnt.")


async def test_reset_link_page_in_german(server: RunningServer):
    account_id = await create_user(server)
    accounts = identity_of(server.app).accounts
    token = await to_thread.run_sync(accounts.admin_reset, account_id, "token")
    client = german(server)
    page = await client.get(f"/signin/reset?token={token}")
    assert_german(page, "Neues Passwort")
    # The language switch keeps the token.
    assert f'href="/signin/reset?token={token}&amp;lang=en"' in page.text
    fields = {
        "csrf_token": csrf_token(page),
        "step": "reset",
        "token": token,
        "new_password": "chosen after the reset",
        "new_password2": "chosen after the reset",
    }
    refused = await client.post("/signin/reset", data={**fields, "csrf_token": "x"})
    assert refused.status_code == 403
    assert_german(refused, "Bitte versuchen Sie es erneut.")
    assert (await client.post("/signin/reset", data=fields)).status_code == 303
    again = await client.post("/signin/reset", data=fields)
    assert again.status_code == 400
    assert_german(again, "Dieser Link zum Zurücksetzen ist ungültig")
    async with httpx.AsyncClient(base_url=server.url, headers=client.headers, timeout=60.0) as bare:
        expired = await bare.post("/signin/reset", data=fields)
        assert expired.status_code == 403
        assert_german(expired, "Das Formular war abgelaufen.")


async def test_totp_enrolment_page_in_german(server: RunningServer):
    await create_user(server)
    client = german(server)
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    page = await client.get("/signin/totp")
    assert page.status_code == 200
    assert_german(page, "Zweiter Faktor", "Schlüssel:", "Aktivieren")
    match = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert match
    secret = base64.b32decode(match.group(1) + "=" * (-len(match.group(1)) % 8))
    token = csrf_token(page)
    refused = await client.post("/signin/totp", data={"code": "123456"})
    assert refused.status_code == 403
    assert_german(refused, "Bitte versuchen Sie es erneut.")
    step = totp.step_of(time.time())
    valid = {totp.code_at(secret, (step + d) * 30) for d in (-1, 0, 1, 2)}
    wrong_code = next(c for c in ("000000", "111111", "222222", "333333") if c not in valid)
    wrong = await client.post("/signin/totp", data={"csrf_token": token, "code": wrong_code})
    assert wrong.status_code == 400
    assert_german(wrong, "Bitte prüfen Sie die Uhrzeit auf Ihrem Gerät")
    good = totp.code_at(secret, time.time())
    done = await client.post("/signin/totp", data={"csrf_token": token, "code": good})
    assert done.status_code == 200 and 'id="totp-on"' in done.text
    assert_german(done, "Der zweite Faktor ist aktiviert.")


def _refused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class TestWithSingleSignOn:
    """Single sign-on configured at a provider that cannot be reached."""

    @pytest.fixture
    def settings(self, make_settings: Callable[..., Settings]) -> Settings:
        oidc: dict[str, Any] = {
            "issuer": f"http://127.0.0.1:{_refused_port()}",
            "client_id": "incamera",
            "client_secret": "secret",
        }
        return make_settings(oidc=oidc)

    async def test_sso_pages_and_errors_in_german(self, server: RunningServer):
        client = german(server)
        page = await client.get("/signin")
        assert_german(page, "oder", "Anmeldung mit Single Sign-on")
        assert 'id="sso"' in page.text
        start = await client.get("/auth/oidc/start")
        assert start.status_code == 502
        assert_german(start, "Der Identitätsanbieter ist nicht erreichbar (ConnectError).")
        async with httpx.AsyncClient(
            base_url=server.url, headers=client.headers, timeout=60.0
        ) as other:
            callback = await other.get("/auth/oidc/callback?code=x&state=y")
            assert callback.status_code == 400
            assert_german(callback, "Diese Anmeldung wurde nicht hier begonnen")

    async def test_sso_account_on_the_totp_page_in_german(self, server: RunningServer):
        identity = identity_of(server.app)
        account = await to_thread.run_sync(
            identity.accounts.sign_in_with_oidc, "http://idp.test", "sub-1", "Olga Oidc"
        )
        session = await to_thread.run_sync(
            lambda: identity.sessions.start(account.id, "oidc", {"issuer": "http://idp.test"})
        )
        client = german(server)
        client.cookies.set("incamera_session", session.id)
        page = await client.get("/signin/totp")
        assert page.status_code == 409
        assert_german(page, "den zweiten Faktor ihres Identitätsanbieters")

    async def test_sso_link_in_english_by_default(self, server: RunningServer):
        page = await server.client.get("/signin")
        assert "Sign in with single sign-on" in page.text and '<html lang="en">' in page.text


# --- choosing the language -------------------------------------------------------------


async def test_english_without_any_choice(server: RunningServer):
    page = await server.client.get("/signin")
    lang, seen = visible(page)
    assert lang == "en"
    assert "<title>Sign in · incamera</title>" in page.text
    assert "Username" in seen and "Password" in seen and "Benutzername" not in seen
    assert 'href="/signin?lang=de"' in page.text and 'href="/signin?lang=en"' in page.text
    assert 'id="lang-en" aria-current="true"' in page.text


@pytest.mark.parametrize(
    ("accept_language", "expected"),
    [
        ("de-AT;q=0.9, en;q=0.8", "de"),
        ("de", "de"),
        ("en-US,en;q=0.9,de;q=0.8", "en"),
        ("fr-FR,fr;q=0.9", "en"),
        ("de;q=0", "en"),
        ("de;q=nonsense", "en"),
        (";;;,,,=", "en"),
    ],
)
async def test_accept_language_chooses(server: RunningServer, accept_language: str, expected: str):
    page = await server.client.get("/signin", headers={"accept-language": accept_language})
    assert page.status_code == 200
    assert visible(page)[0] == expected


async def test_query_parameter_is_remembered_in_a_cookie(server: RunningServer):
    client = server.client
    page = await client.get("/signin?lang=de")
    assert_german(page, "Anmelden")
    assert 'id="lang-de" aria-current="true"' in page.text
    cookies = page.headers.get_list("set-cookie")
    lang_cookie = next(c for c in cookies if c.startswith("incamera_lang="))
    assert lang_cookie.startswith("incamera_lang=de;")
    lowered = lang_cookie.lower()
    assert "samesite=lax" in lowered and "path=/" in lowered
    assert "httponly" not in lowered and "secure" not in lowered  # plain http://localhost
    assert client.cookies.get("incamera_lang") == "de"

    # The next pages (and a failed step's answer) stay German without ?lang=.
    again = await client.get("/signin")
    assert_german(again)
    wrong = await sign_in(client, "nobody", "not the password")
    assert_german(wrong, "Der Benutzername oder das Passwort ist falsch.")

    # ?lang= beats the cookie and the header, and changes the cookie.
    back = await client.get("/signin?lang=en", headers={"accept-language": "de"})
    assert visible(back)[0] == "en" and client.cookies.get("incamera_lang") == "en"
    # The cookie beats Accept-Language.
    english = await client.get("/signin", headers={"accept-language": "de"})
    assert visible(english)[0] == "en"


async def test_unknown_language_values_are_ignored(server: RunningServer):
    page = await server.client.get("/signin?lang=fr", headers={"accept-language": "de"})
    assert visible(page)[0] == "de"
    assert "incamera_lang" not in page.headers.get("set-cookie", "")
    server.client.cookies.set("incamera_lang", "<script>")
    page = await server.client.get("/signin?lang=%22%3E")
    assert visible(page)[0] == "en" and "<script>" not in page.text


async def test_language_switch_after_a_post_leads_to_the_sign_in_page(server: RunningServer):
    refused = await submit(server.client, csrf_token="x", step="password")
    assert 'href="/signin?lang=de"' in refused.text


@pytest.mark.parametrize("secure", [False, True])
def test_language_cookie(secure: bool):
    response = Response()
    CookiePolicy(name="incamera_session", secure=secure).remember_language(response, "de")
    header = response.headers["set-cookie"]
    assert header.startswith(f"{page_text.COOKIE}=de;")
    lowered = header.lower()
    assert "samesite=lax" in lowered and "path=/" in lowered and "max-age=" in lowered
    assert "httponly" not in lowered
    assert ("secure" in lowered) is secure
