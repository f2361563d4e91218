"""Single sign-on end to end: the real app (uvicorn) and a real OpenID Connect provider (npm
oidc-provider under Node), both on 127.0.0.1, driven with httpx like a browser would."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
import pytest_asyncio
import uvicorn
from anyio import to_thread
from playwright.async_api import async_playwright

from incamera.config import load_settings
from incamera.server.app import create_app
from incamera.server.context import ServerContext
from incamera.store.accounts import AccountStore
from support.browser import CHROMIUM_FLAGS, find_chromium
from support.oidc_provider import OidcProvider, ProviderFactory


@dataclass
class SsoSetup:
    origin: str  # http://localhost:<port>
    provider: OidcProvider
    app: Any

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=20)


@pytest_asyncio.fixture
async def sso(tmp_path: Path) -> AsyncIterator[SsoSetup]:
    """The app on http://localhost:<port> with single sign-on at a provider started for it."""
    providers = ProviderFactory()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    origin = f"http://localhost:{port}"
    provider = await to_thread.run_sync(providers.start, [f"{origin}/auth/oidc/callback"])
    settings = load_settings(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "media": {"workers": 1},
            "public_url": origin,
            "oidc": provider.settings(),
        },
    )
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.01)
    try:
        yield SsoSetup(origin=origin, provider=provider, app=app)
    finally:
        server.should_exit = True
        await task
        sock.close()
        providers.stop_all()


async def follow(
    client: httpx.AsyncClient, response: httpx.Response, stop: Callable[[str], bool]
) -> httpx.Response:
    """Follow redirects like a browser until one would lead where ``stop`` says."""
    for _ in range(20):
        if response.status_code not in (302, 303):
            return response
        target = str(response.url.join(response.headers["location"]))
        if stop(target):
            return response
        response = await client.get(target)
    raise AssertionError("redirect loop")


async def provider_login(
    client: httpx.AsyncClient, sso: SsoSetup, username: str, password: str
) -> httpx.Response:
    """From the landing page's "Sign in with ..." link to the provider's answer."""
    signin = await client.get(f"{sso.origin}/signin")
    assert "Sign in with Test IdP" in signin.text
    start = await client.get(f"{sso.origin}/auth/oidc/start")
    assert start.status_code == 303
    authorize = httpx.URL(start.headers["location"])
    query = parse_qs(authorize.query.decode())
    assert str(authorize).startswith(sso.provider.issuer)
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"]
    assert query["state"] and query["nonce"] and query["response_type"] == ["code"]
    form_page = await follow(client, await client.get(authorize), lambda _: False)
    assert form_page.status_code == 200, form_page.text
    action = re.search(r'action="([^"]+)"', form_page.text)
    assert action
    answer = await client.post(
        str(form_page.url.join(action.group(1))),
        data={"login": username, "password": password},
    )
    return await follow(client, answer, lambda url: url.startswith(sso.origin))


async def test_first_sso_sign_in_creates_the_account_and_the_second_reuses_it(sso: SsoSetup):
    for round_ in range(2):
        async with sso.browser() as client:
            to_callback = await provider_login(client, sso, "alice", "alice-password-1")
            callback = str(to_callback.url.join(to_callback.headers["location"]))
            assert callback.startswith(f"{sso.origin}/auth/oidc/callback?code=")
            done = await client.get(callback)
            assert done.status_code == 303 and done.headers["location"] == "/", done.text
            me = (await client.get(f"{sso.origin}/api/me")).json()
            assert me["kind"] == "account", round_
            assert me["method"] == "oidc" and me["issuer"] == sso.provider.issuer
            assert me["display_name"] == "Alice Anders"  # from the userinfo endpoint
            if round_ == 0:
                first_id = me["id"]
            else:
                assert me["id"] == first_id
    store = AccountStore(ServerContext.of(sso.app).database)
    linked = await to_thread.run_sync(store.by_oidc, sso.provider.issuer, "alice")
    assert linked is not None and linked.id == first_id and linked.username is None


async def test_a_replayed_or_foreign_callback_is_refused(sso: SsoSetup):
    async with sso.browser() as client:
        to_callback = await provider_login(client, sso, "bob", "bob-password-1")
        callback = str(to_callback.url.join(to_callback.headers["location"]))
        # Another browser (no session that started this flow) cannot use the code.
        async with sso.browser() as attacker:
            stolen = await attacker.get(callback)
            assert stolen.status_code == 400 and "not started here" in stolen.text
        # A changed state is refused, and the flow is then used up.
        tampered = callback.replace("state=", "state=x")
        refused = await client.get(tampered)
        assert refused.status_code == 400
        assert "does not belong to this browser session" in refused.text
        again = await client.get(callback)
        assert again.status_code == 400
        assert (await client.get(f"{sso.origin}/api/me")).json()["kind"] == "guest"


async def test_wrong_password_at_the_provider_signs_nobody_in(sso: SsoSetup):
    async with sso.browser() as client:
        page = await provider_login(client, sso, "alice", "wrong")
        assert page.status_code == 200 and "Wrong username or password." in page.text
        assert (await client.get(f"{sso.origin}/api/me")).json()["kind"] == "guest"


async def test_signing_out_ends_the_session_at_the_provider_too(sso: SsoSetup):
    async with sso.browser() as client:
        to_callback = await provider_login(client, sso, "alice", "alice-password-1")
        done = await client.get(str(to_callback.url.join(to_callback.headers["location"])))
        assert done.status_code == 303
        me = (await client.get(f"{sso.origin}/api/me")).json()
        assert me["method"] == "oidc"
        out = await client.post(f"{sso.origin}/signout", data={"csrf_token": me["csrf_token"]})
        assert out.status_code == 303
        target = httpx.URL(out.headers["location"])
        assert str(target).startswith(f"{sso.provider.issuer}/session/end?")
        query = parse_qs(target.query.decode())
        assert query["post_logout_redirect_uri"] == [f"{sso.origin}/"]
        assert query["client_id"] == [sso.provider.client_id]
        assert query["id_token_hint"][0].count(".") == 2  # the id token of the sign-in
        # Signed out here at once; the provider accepts the request (its confirmation page).
        assert (await client.get(f"{sso.origin}/api/me")).json()["kind"] == "guest"
        confirm = await client.get(str(target))
        assert confirm.status_code == 200 and "sign me out" in confirm.text
        # Browsers apply form-action to the sign-out form's redirect: the provider is named.
        csp = (await client.get(f"{sso.origin}/")).headers["content-security-policy"]
        assert f"form-action 'self' {sso.provider.issuer};" in csp


@pytest.mark.browser
async def test_sign_in_with_the_provider_in_chromium(sso: SsoSetup):
    """A person clicks "Sign in", then "Sign in with Test IdP", types their password on the
    provider's page and is back on the landing page, signed in; then signs out."""
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary")
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
        )
        try:
            page = await browser.new_page()
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None,
            )
            await page.goto(f"{sso.origin}/")
            await page.get_by_role("link", name="Sign in").click()
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await page.wait_for_url(f"{sso.provider.issuer}/interaction/**")
            await page.get_by_label("Username").fill("alice")
            await page.get_by_label("Password").fill("alice-password-1")
            await page.get_by_role("button", name="Continue").click()
            await page.wait_for_url(f"{sso.origin}/")
            signed_in = page.locator("#signed-in-as")
            await signed_in.wait_for(state="visible")
            assert await signed_in.text_content() == "Signed in as Alice Anders"
            cookies = await page.context.cookies(sso.origin)
            session = next(c for c in cookies if c["name"] == "incamera_session")
            assert session["httpOnly"] and session["sameSite"] == "Lax"

            # Signing out ends the session at the provider too: its page asks, then sends
            # the browser back to the landing page, signed out.
            await page.get_by_role("button", name="Sign out").click()
            await page.wait_for_url(f"{sso.provider.issuer}/session/end**")
            await page.get_by_role("button", name="Yes, sign me out").click()
            await page.wait_for_url(f"{sso.origin}/")
            await page.get_by_role("link", name="Sign in").wait_for(state="visible")
            # The provider's session is gone: signing in asks for the password again.
            await page.get_by_role("link", name="Sign in").click()
            await page.get_by_role("link", name="Sign in with Test IdP").click()
            await page.wait_for_url(f"{sso.provider.issuer}/interaction/**")
            await page.get_by_label("Password").wait_for(state="visible")
        finally:
            await browser.close()
    assert problems == []
