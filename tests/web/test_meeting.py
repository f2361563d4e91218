"""Three Chromium participants in one meeting through the real server (signalling + SFU).

Each page joins with ``#name=...&autojoin=1`` (fake camera, mic and screen). The checks read
``window.incamera.stats()`` (decoded frames per remote participant, from the receive pc's
inbound-rtp by mid) and the DOM the person sees. Deadlines only bound waits.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from .conftest import SCREENSHOT, MeetingPage, MeetingServer, poll

pytestmark = pytest.mark.browser

NAMES = ("Ada", "Grace", "Linus")


def others(name: str) -> list[str]:
    return [n for n in NAMES if n != name]


def decoding(stats: dict[str, dict[str, Any]], names: list[str]) -> bool:
    return all(
        n in stats
        and stats[n]["videoFramesDecoded"] > 0
        and stats[n]["videoWidth"] > 0
        and stats[n]["audioPacketsReceived"] > 0
        for n in names
    )


async def frames_increase(page: MeetingPage, names: list[str], key: str) -> None:
    """The count ``key`` of every participant in ``names`` grows between two samples."""
    first = await page.stats()
    await page.wait_stats(
        lambda s: all(s[n][key] > first[n][key] for n in names),
        what=f"{key} of {names} increasing",
    )


async def chat_texts(page: MeetingPage) -> list[str]:
    result: list[str] = await page.evaluate(
        "() => Array.from(document.querySelectorAll('#chat-log li .text'), (el) => el.textContent)"
    )
    return result


async def test_three_people_meet(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting = await meeting_server.create_meeting()
    pages = {}
    for name in NAMES:
        pages[name] = await open_page(meeting_server.meeting_url(meeting, name), name)
    for page in pages.values():
        await page.wait_joined()

    # Everybody decodes the other two's video and receives their audio.
    for name, page in pages.items():
        stats = await page.wait_stats(
            lambda s, n=name: decoding(s, others(n)), what="video and audio from both others"
        )
        for other in others(name):
            width, height = stats[other]["videoWidth"], stats[other]["videoHeight"]
            # A simulcast layer of the 1280x720 camera (or the fake 640x480 one).
            assert (width, height) in {(320, 180), (640, 360), (1280, 720), (640, 480)}, stats
        await frames_increase(page, others(name), "videoFramesDecoded")
        await frames_increase(page, others(name), "audioPacketsReceived")
        for other in others(name):
            tile = await page.tile(other)
            assert tile is not None and tile["visible"], tile

    ada, grace, linus = pages["Ada"], pages["Grace"], pages["Linus"]

    # Grace mutes with the keyboard shortcut, Linus raises his hand with the button.
    await grace.page.keyboard.press("m")
    pressed = "document.getElementById('btn-mic').getAttribute('aria-pressed')"
    assert await grace.evaluate(pressed) == "true"
    await linus.page.get_by_role("button", name="Raise hand (H)").click()
    for page in (ada, linus):
        await poll(
            lambda p=page: p.tile("Grace"),
            lambda tile: tile is not None and tile["audioMuted"] == "true",
            what=f"{page.name} sees Grace muted",
        )
    for page in (ada, grace):
        await poll(
            lambda p=page: p.tile("Linus"),
            lambda tile: tile is not None and tile["hand"] == "true",
            what=f"{page.name} sees Linus's hand",
        )
    # Grace's audio stops reaching the others (the server pauses the muted track).
    muted_at = (await ada.stats())["Grace"]["audioPacketsReceived"]
    await frames_increase(ada, ["Linus"], "audioPacketsReceived")
    await frames_increase(ada, ["Linus"], "audioPacketsReceived")
    assert (await ada.stats())["Grace"]["audioPacketsReceived"] - muted_at < 100

    # The screenshot for the README: three people, one muted, one with a raised hand.
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    await ada.page.screenshot(path=str(SCREENSHOT))

    # Linus turns his camera off: the others see his avatar instead of video.
    await linus.page.keyboard.press("v")
    for page in (ada, grace):
        await poll(
            lambda p=page: p.tile("Linus"),
            lambda tile: tile is not None and tile["videoMuted"] == "true",
            what=f"{page.name} sees Linus's camera off",
        )
        has_video = await page.evaluate(
            """(id) => document.querySelector(
                `.tile[data-participant="${id}"][data-source="camera"]`
            ).classList.contains("has-video")""",
            next(p["id"] for p in (await page.state())["participants"] if p["name"] == "Linus"),
        )
        assert not has_video

    # Ada shares her screen: it reaches both others and is shown large (on the stage).
    await ada.page.keyboard.press("s")
    for page in (grace, linus):
        await page.wait_stats(
            lambda s: s["Ada"]["screenFramesDecoded"] > 0, what="Ada's screen decoded"
        )
        await frames_increase(page, ["Ada"], "screenFramesDecoded")
        on_stage = await page.evaluate(
            "() => document.querySelector('#stage .tile')?.dataset.source ?? null"
        )
        assert on_stage == "screen"
    # Stopping the share removes the screen tile everywhere.
    await ada.page.get_by_role("button", name="Stop sharing (S)").click()
    for page in (grace, linus):
        await poll(
            lambda p=page: p.tile("Ada", "screen"),
            lambda tile: tile is None,
            what=f"{page.name} sees Ada's screen share end",
        )

    # Chat: messages from two people arrive everywhere in one order.
    await ada.page.keyboard.press("c")
    await ada.page.locator("#chat-input").fill("Hello everyone")
    await ada.page.keyboard.press("Enter")
    await grace.page.get_by_role("button", name="Chat (C)").click()
    await grace.page.locator("#chat-input").fill("Hi Ada")
    await grace.page.get_by_role("button", name="Send").click()
    await ada.page.locator("#chat-input").fill("Shall we start?")
    await ada.page.keyboard.press("Enter")
    expected = ["Hello everyone", "Hi Ada", "Shall we start?"]
    for page in pages.values():
        texts = await poll(
            lambda p=page: chat_texts(p),
            lambda texts: len(texts) >= 3,
            what=f"{page.name} has three chat messages",
        )
        state = await page.state()
        seqs = [m["seq"] for m in state["chat"]]
        assert seqs == sorted(seqs)
        # The order is the server's (seq), the same for everybody.
        assert sorted(texts) == sorted(expected)
    orders = [await chat_texts(page) for page in pages.values()]
    assert orders[0] == orders[1] == orders[2]
    assert orders[0].index("Hello everyone") < orders[0].index("Shall we start?")
    # Linus had his chat closed: an unread badge counts the three messages.
    badge = await linus.evaluate("document.getElementById('chat-badge').textContent")
    assert badge == "3"

    # Linus leaves: his tile goes from the others' grids and from their stats.
    await linus.page.get_by_role("button", name="Leave meeting").click()
    await poll(
        lambda: linus.evaluate("document.getElementById('ended').hidden"),
        lambda hidden: hidden is False,
        what="Linus sees the page after leaving",
    )
    for page in (ada, grace):
        await poll(
            lambda p=page: p.tile("Linus"),
            lambda tile: tile is None,
            what=f"{page.name} sees Linus leave",
        )
        stats = await page.stats()
        assert "Linus" not in stats
    await frames_increase(ada, ["Grace"], "videoFramesDecoded")
    for page in pages.values():
        errors = [line for line in page.console if line.startswith("pageerror")]
        assert errors == [], errors
