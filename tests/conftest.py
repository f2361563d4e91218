"""Shared fixtures for media tests: headless Chromium, aiortc peers, lossy UDP proxies.

- ``chromium_browser`` (session): one headless Chromium for the whole run, skipped cleanly
  when no Chromium binary exists. Parametrize it indirectly with a field-trial string to get
  a separate browser with those trials, e.g.::

      @pytest.mark.parametrize("chromium_browser", [NO_SIMULCAST_LAYER_LIMIT], indirect=True)

- ``chromium`` (per test): a ``PeerGroup``; ``await chromium.new_peer("alice")`` opens a page,
  and every page it opened is closed after the test.
- ``aiortc_peers`` (per test): a factory ``aiortc_peers("bob") -> AiortcPeer``, closed after.
- ``udp_proxies`` (per test): an async factory ``await udp_proxies(target, ...)`` returning a
  started ``LossyUdpProxy``, closed after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio

from support.aiortc_peer import AiortcPeer
from support.browser import ChromiumHarness, PeerGroup, find_chromium
from support.udp_proxy import Address, LossyUdpProxy


@pytest.fixture(scope="session")
def chromium_browser(request: pytest.FixtureRequest) -> Iterator[ChromiumHarness]:
    pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    if find_chromium() is None:
        pytest.skip("no Chromium binary (/usr/lib/chromium/chromium or /usr/bin/chromium)")
    field_trials: str | None = getattr(request, "param", None)
    harness = ChromiumHarness(field_trials=field_trials)
    harness.start()
    try:
        yield harness
    finally:
        harness.stop()


@pytest_asyncio.fixture
async def chromium(chromium_browser: ChromiumHarness) -> AsyncIterator[PeerGroup]:
    group = chromium_browser.group()
    try:
        yield group
    finally:
        await group.close()


@pytest_asyncio.fixture
async def aiortc_peers() -> AsyncIterator[Callable[[str], AiortcPeer]]:
    peers: list[AiortcPeer] = []

    def make(name: str = "aiortc") -> AiortcPeer:
        peer = AiortcPeer(name)
        peers.append(peer)
        return peer

    try:
        yield make
    finally:
        for peer in peers:
            await peer.close()


@pytest_asyncio.fixture
async def udp_proxies() -> AsyncIterator[Callable[..., Awaitable[LossyUdpProxy]]]:
    proxies: list[LossyUdpProxy] = []

    async def make(target: Address, **kwargs: Any) -> LossyUdpProxy:
        proxy = LossyUdpProxy(target, **kwargs)
        await proxy.start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for proxy in proxies:
            proxy.close()
