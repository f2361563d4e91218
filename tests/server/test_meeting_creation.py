"""Who may create meetings ([meetings] creators) and how many per hour
([meetings] creations_per_hour), over HTTP against a real server; the landing page's
message in Chromium."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from anyio import to_thread
from playwright.async_api import async_playwright

from incamera.config import Settings
from incamera.server.auth_routes import identity_of
from support.browser import CHROMIUM_FLAGS, find_chromium

from .conftest import RunningServer
from .test_signin import PASSWORD, sign_in


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(meetings={"creators": "accounts", "creations_per_hour": 3})


async def test_only_accounts_create_meetings_and_each_only_so_many(server: RunningServer):
    client = server.client
    refused = await client.post("/api/meetings")
    assert refused.status_code == 403
    assert refused.json()["error"] == "account_required"

    accounts = identity_of(server.app).accounts
    await to_thread.run_sync(lambda: accounts.create("alice", "Alice", PASSWORD))
    assert (await sign_in(client, "alice", PASSWORD)).status_code == 303
    statuses = [(await client.post("/api/meetings")).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = await client.post("/api/meetings")
    assert limited.json()["error"] == "too_many_meetings"
    assert "try again in 60 minute(s)" in limited.json()["detail"]


@pytest.mark.browser
async def test_the_landing_page_asks_to_sign_in_first(server: RunningServer):
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary")
    origin = server.url.replace("127.0.0.1", "localhost")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
        )
        try:
            page = await browser.new_page()
            await page.goto(f"{origin}/")
            await page.get_by_role("button", name="Create meeting").click()
            error = page.locator("#error")
            await error.wait_for(state="visible")
            assert "only signed-in people can create meetings" in await error.text_content()
            assert await page.locator("#created").is_hidden()
        finally:
            await browser.close()


class TestTheEmbeddedDefault:
    @pytest.fixture
    def settings(self, make_settings: Callable[..., Settings]) -> Settings:
        return make_settings(meetings={"creations_per_hour": 2})

    async def test_anyone_creates_meetings_up_to_the_limit_per_address(self, server: RunningServer):
        statuses = [(await server.client.post("/api/meetings")).status_code for _ in range(3)]
        assert statuses == [201, 201, 429]
