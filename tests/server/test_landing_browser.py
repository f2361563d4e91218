"""The landing page in headless Chromium: the strict CSP holds and "Create meeting" works."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import async_playwright

from support.browser import CHROMIUM_FLAGS, find_chromium

from .conftest import RunningServer

pytestmark = pytest.mark.browser

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(event.violatedDirective);
});
"""
INJECT_INLINE_HANDLER = """
() => document.body.insertAdjacentHTML(
  "beforeend", '<img src="/favicon.svg" onload="window.__injectedRan = 1">')
"""


async def test_create_meeting_from_the_landing_page(server: RunningServer):
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary")
    origin = server.url.replace("127.0.0.1", "localhost")
    problems: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
        )
        try:
            page = await browser.new_page()

            def on_console(message: Any) -> None:
                if message.type in ("error", "warning"):
                    problems.append(f"console {message.type}: {message.text}")

            page.on("console", on_console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            await page.add_init_script(RECORD_VIOLATIONS)
            await page.goto(f"{origin}/")
            await page.get_by_role("button", name="Create meeting").click()
            link = page.locator("#join-url")
            await link.wait_for(state="visible")
            join_url = await link.input_value()
            moderator_url = await page.locator("#moderator-url").input_value()
            assert moderator_url.startswith(join_url + "#mod=")  # the creator's own link
            assert await page.locator("#open").get_attribute("href") == moderator_url
            assert await page.evaluate("window.__cspViolations") == []

            # German on request, remembered like the meeting page's choice.
            await page.locator("#lang-select").select_option("de")
            await page.get_by_role("button", name="Besprechung erstellen").wait_for()
            assert await page.evaluate("document.documentElement.lang") == "de"
            assert "lang=de" in (await page.locator("#signin-link").get_attribute("href") or "")

            # The policy is enforced: an injected inline handler is refused and reported.
            await page.evaluate(INJECT_INLINE_HANDLER)
            await page.wait_for_function("window.__cspViolations.length > 0")
            assert await page.evaluate("window.__injectedRan") is None
            violations = await page.evaluate("window.__cspViolations")
            assert all(v.startswith("script-src") for v in violations), violations
        finally:
            await browser.close()

    match = re.fullmatch(r"http://localhost:8080/m/([A-Za-z0-9_-]{22,})", join_url)
    assert match, join_url
    response = await server.client.get(f"/api/meetings/{match.group(1)}")
    assert response.status_code == 200
    # The only complaints are about the deliberately injected handler.
    assert all("Content Security Policy" in p for p in problems), problems
