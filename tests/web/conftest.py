"""Fixtures for the web app tests: a real incamera server and headless Chromium pages.

- ``meeting_server``: the ASGI app (signalling, media worker, web files) served by uvicorn
  on 127.0.0.1 in the test's event loop, with its media worker on a free UDP port.
- ``browser``: Debian's Chromium through Playwright (fake camera, mic and screen), launched
  in the test's event loop; skipped cleanly where Chromium or Playwright is missing.
- ``MeetingPage``: one participant's page with polling helpers around ``window.incamera``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio
import uvicorn

from incamera.config import ENV_PREFIX, load_settings
from incamera.server.app import create_app
from support.browser import CHROMIUM_FLAGS, find_chromium
from support.ports import free_udp_port_range

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "img" / "meeting.png"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith(ENV_PREFIX):
            monkeypatch.delenv(name)


@dataclass
class MeetingServer:
    origin: str  # http://localhost:<port>: a secure context for getUserMedia
    client: httpx.AsyncClient
    tap_path: Path  # the test-only media tap (media/tap.py): every forwarded RTP packet

    async def create_meeting(self, *, e2ee: bool = True) -> str:
        """A meeting; end-to-end encrypted unless ``e2ee=False`` (the server's policy in
        these tests allows unencrypted meetings, for the interop tests)."""
        response = await self.client.post("/api/meetings", json={"e2ee": e2ee})
        assert response.status_code == 201, response.text
        assert response.json()["e2ee"] is e2ee
        return str(response.json()["id"])

    def meeting_url(self, meeting_id: str, name: str | None = None, **extra: str) -> str:
        url = f"{self.origin}/m/{meeting_id}"
        if name is not None:
            fragment = {"name": name, "autojoin": "1", **extra}
            url += "#" + "&".join(f"{k}={quote(v)}" for k, v in fragment.items())
        return url


@pytest_asyncio.fixture
async def meeting_server(tmp_path: Path) -> AsyncIterator[MeetingServer]:
    port = free_udp_port_range(1)
    settings = load_settings(
        None,
        {
            "data_dir": str(tmp_path / "data"),
            "media": {"workers": 1, "port_min": port, "port_max": port},
            "e2ee": {"allow_unencrypted": True},
            "testing": {"hooks": True, "media_tap_path": str(tmp_path / "media.tap")},
        },
    )
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up")
        await asyncio.sleep(0.02)
    http_port = server.servers[0].sockets[0].getsockname()[1]
    origin = f"http://localhost:{http_port}"
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", headers={"host": f"localhost:{http_port}"}
    ) as client:
        try:
            yield MeetingServer(origin=origin, client=client, tap_path=tmp_path / "media.tap")
        finally:
            server.should_exit = True
            await task


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Any]:
    async_api = pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    executable = find_chromium()
    if executable is None:
        pytest.skip("no Chromium binary (apt-get install chromium)")
    async with async_api.async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, args=list(CHROMIUM_FLAGS), headless=True
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def poll(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    what: str = "condition",
) -> T:
    """Await ``probe()`` until ``check`` holds; the deadline only bounds the wait."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await probe()
        if check(value):
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value: {value!r}")
        await asyncio.sleep(interval)


class MeetingPage:
    """One participant: a page in its own browser context."""

    def __init__(self, name: str, context: Any, page: Any) -> None:
        self.name = name
        self.context = context
        self.page = page
        self.console: list[str] = []
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda err: self.console.append(f"pageerror: {err}"))

    @classmethod
    async def open(
        cls,
        browser: Any,
        url: str,
        name: str,
        *,
        viewport: tuple[int, int] = (1280, 720),
        locale: str = "en-US",
    ) -> MeetingPage:
        context = await browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, locale=locale
        )
        page = await context.new_page()
        meeting_page = cls(name, context, page)
        await page.goto(url)
        return meeting_page

    async def evaluate(self, script: str, arg: Any = None) -> Any:
        return await self.page.evaluate(script, arg)

    async def stats(self) -> dict[str, dict[str, Any]]:
        rows = await self.evaluate("() => window.incamera.stats()")
        return {row["name"]: row for row in rows}

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.evaluate("() => window.incamera.state()")
        return result

    async def wait_joined(self, timeout: float = 30.0) -> dict[str, Any]:
        return await poll(
            self.state,
            lambda s: s["joined"] and s["send"] == "connected",
            timeout=timeout,
            what=f"{self.name} joined ({self.console[-10:]})",
        )

    async def wait_stats(
        self, check: Callable[[dict[str, dict[str, Any]]], bool], what: str, timeout: float = 45.0
    ) -> dict[str, dict[str, Any]]:
        return await poll(
            self.stats, check, timeout=timeout, what=f"{self.name}: {what} ({self.console[-10:]})"
        )

    async def tile(self, participant_name: str, source: str = "camera") -> dict[str, Any] | None:
        """The data attributes of the tile showing ``participant_name``'s ``source``."""
        result: dict[str, Any] | None = await self.evaluate(
            """([name, source]) => {
                const who = window.incamera.state().participants.find((p) => p.name === name);
                if (!who) return null;
                const el = document.querySelector(
                    `.tile[data-participant="${who.id}"][data-source="${source}"]`);
                if (!el) return null;
                return {...el.dataset, visible: !el.hidden && el.clientWidth > 0,
                        label: el.getAttribute("aria-label")};
            }""",
            [participant_name, source],
        )
        return result

    async def close(self) -> None:
        await self.context.close()


@pytest_asyncio.fixture
async def open_page(browser: Any) -> AsyncIterator[Callable[..., Awaitable[MeetingPage]]]:
    pages: list[MeetingPage] = []

    async def make(url: str, name: str, **kwargs: Any) -> MeetingPage:
        page = await MeetingPage.open(browser, url, name, **kwargs)
        pages.append(page)
        return page

    try:
        yield make
    finally:
        for page in pages:
            with contextlib.suppress(Exception):  # the page may already be gone
                await page.close()
