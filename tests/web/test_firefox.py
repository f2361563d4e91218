"""A Firefox ESR participant meets two Chromium ones through the real server, end-to-end
encrypted (MLS + SFrame, the default for every meeting).

Firefox (Selenium + geckodriver, fake camera and mic, see ``support/firefox.py``) opens the
same meeting link with ``#name=...&autojoin=1`` as two Chromium pages. Every participant's
``window.incamera.stats()`` must show the others' video frames decoded and audio packets
received, both growing. Deadlines only bound waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support.firefox import FirefoxPage, LaunchFirefox, firefox  # noqa: F401 (fixture)

from .conftest import MeetingPage, MeetingServer, poll

pytestmark = pytest.mark.browser

CHROMIUM_NAMES = ("Ada", "Grace")
FIREFOX_NAME = "Fox"
ALL = (*CHROMIUM_NAMES, FIREFOX_NAME)
TIMEOUT = 60.0

Stats = dict[str, dict[str, Any]]


def receiving(stats: Stats, names: list[str]) -> bool:
    return all(
        n in stats
        and stats[n]["videoFramesDecoded"] > 0
        and stats[n]["videoWidth"] > 0
        and stats[n]["audioPacketsReceived"] > 0
        for n in names
    )


def grew(before: Stats, names: list[str]) -> Callable[[Stats], bool]:
    keys = ("videoFramesDecoded", "audioPacketsReceived")
    return lambda now: all(now[n][k] > before[n][k] for n in names for k in keys)


async def media_flows(probe: Callable[[], Awaitable[Stats]], me: str, diag: str = "") -> Stats:
    """``me`` decodes everybody else's video and receives their audio, and both keep growing."""
    others = [n for n in ALL if n != me]
    first = await poll(
        probe,
        lambda s: receiving(s, others),
        timeout=TIMEOUT,
        what=f"{me} receives video and audio from {others} {diag}",
    )
    return await poll(
        probe, grew(first, others), timeout=TIMEOUT, what=f"{me}: media from {others} growing"
    )


async def test_firefox_meets_two_chromium_participants(
    meeting_server: MeetingServer,
    open_page: Callable[..., Awaitable[MeetingPage]],
    firefox: LaunchFirefox,  # noqa: F811 (the fixture imported above)
) -> None:
    meeting = await meeting_server.create_meeting()
    chromium = {
        name: await open_page(meeting_server.meeting_url(meeting, name), name)
        for name in CHROMIUM_NAMES
    }
    fox: FirefoxPage = await firefox(meeting_server.meeting_url(meeting, FIREFOX_NAME))
    for page in chromium.values():
        await page.wait_joined()
    await poll(
        fox.state,
        lambda s: s is not None and s["joined"] and s["send"] in ("connected", "completed"),
        timeout=TIMEOUT,
        what="Firefox joined and its send pc connected",
    )

    # Firefox decodes both Chromium participants' video and receives their audio ...
    stats = await media_flows(fox.stats, FIREFOX_NAME)
    for name in CHROMIUM_NAMES:
        size = (stats[name]["videoWidth"], stats[name]["videoHeight"])
        assert size in {(320, 180), (640, 360), (1280, 720), (640, 480)}, stats
    # ... and each Chromium participant decodes Firefox's (and the other one's).
    for name, page in chromium.items():
        stats = await media_flows(page.stats, name, str(page.console[-5:]))
        assert stats[FIREFOX_NAME]["videoWidth"] > 0, stats

    # All three are in one MLS group: same epoch, same security code, everybody verified.
    probes: dict[str, Callable[[], Awaitable[Any]]] = {
        name: (lambda p=page: p.evaluate("() => window.incamera.e2ee()"))
        for name, page in chromium.items()
    }
    probes[FIREFOX_NAME] = lambda: fox.evaluate("return window.incamera.e2ee();")

    async def all_status() -> dict[str, Any]:
        return {name: await probe() for name, probe in probes.items()}

    def agreed(statuses: dict[str, Any]) -> bool:
        first = statuses[FIREFOX_NAME]
        return all(
            s["enabled"]
            and s["epoch"] is not None
            and (s["epoch"], s["securityCode"]) == (first["epoch"], first["securityCode"])
            and sorted(m["name"] for m in s["members"] if m["verified"]) == sorted(ALL)
            for s in statuses.values()
        )

    statuses = await poll(all_status, agreed, timeout=TIMEOUT, what="one MLS group of three")
    code = statuses[FIREFOX_NAME]["securityCode"]
    assert len(code.replace(" ", "")) == 20 and code.replace(" ", "").isdigit(), code
    shown = await chromium["Ada"].evaluate(
        "() => document.getElementById('security-code-value').textContent"
    )
    assert shown == code

    # Ada shares her screen (encrypted too): Grace and Firefox decode it.
    await chromium["Ada"].page.keyboard.press("s")
    await chromium["Grace"].wait_stats(
        lambda s: s["Ada"]["screenFramesDecoded"] > 0, what="Ada's screen decoded", timeout=TIMEOUT
    )
    await poll(
        fox.stats,
        lambda s: "Ada" in s and s["Ada"]["screenFramesDecoded"] > 0,
        timeout=TIMEOUT,
        what="Firefox decodes Ada's screen",
    )


async def test_firefox_profile_contacts_no_third_party_host(
    meeting_server: MeetingServer,
    open_page: Callable[..., Awaitable[MeetingPage]],
    firefox: LaunchFirefox,  # noqa: F811 (the fixture imported above)
) -> None:
    """With every HTTP(S)/SOCKS request of Firefox routed to a recording proxy (only for
    this check; the meeting origin stays direct), a whole join asks for no other host."""
    requests: list[str] = []

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append((await reader.readline()).decode(errors="replace").strip())
        writer.close()

    proxy = await asyncio.start_server(record, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    detector: dict[str, bool | int | str] = {
        "network.proxy.type": 1,
        "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
        "network.proxy.allow_hijacking_localhost": False,
        "network.proxy.socks_remote_dns": True,
    }
    for scheme in ("http", "ssl", "socks"):
        detector[f"network.proxy.{scheme}"] = "127.0.0.1"
        detector[f"network.proxy.{scheme}_port"] = port
    try:
        meeting = await meeting_server.create_meeting()
        ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
        await firefox(meeting_server.meeting_url(meeting, FIREFOX_NAME), detector)
        # Ten seconds of Firefox's audio reach Ada: start-up, join and media all happened.
        await ada.wait_stats(
            lambda s: FIREFOX_NAME in s and s[FIREFOX_NAME]["audioPacketsReceived"] >= 500,
            what="ten seconds of Firefox's audio",
            timeout=TIMEOUT,
        )
    finally:
        proxy.close()
        await proxy.wait_closed()
    assert requests == []
