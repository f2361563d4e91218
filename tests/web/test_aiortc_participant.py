"""A non-browser participant: aiortc, driven by the Python protocol client, joins three
Chromium pages in one meeting through the real server, as its fourth participant.

The bot speaks ``docs/protocol.md`` through ``SignallingClient`` (hello, publish, answering
subscribe offers) and does its WebRTC with ``AiortcPeer`` (synthetic VP8 640x480 video and an
Opus tone; no simulcast). Both directions must flow: the bot decodes each page's video and
audio, and each page's ``window.incamera.stats()`` shows the bot's video frames decoded and
audio packets received, growing. Deadlines only bound waits.

The meeting is one WITHOUT end-to-end encryption (the server's administrator policy allows
it in these tests): a bot that is no MLS member could not decrypt anything otherwise, and
every page must show that the meeting is not end-to-end encrypted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio

from incamera.signalling.client import SignallingClient
from support.aiortc_peer import AiortcPeer, ReceivedTrack

from .conftest import MeetingPage, MeetingServer, poll

pytestmark = [pytest.mark.browser, pytest.mark.interop]

CHROMIUM_NAMES = ("Ada", "Grace", "Linus")
BOT = "Robo"
TIMEOUT = 60.0


def decoded_by_bot(client: SignallingClient, peer: AiortcPeer) -> dict[tuple[str, str], int]:
    """Frames the bot decoded, by (participant name, source), per the last subscribe offer."""
    result: dict[tuple[str, str], int] = {}
    if peer.recv_pc is None:
        return result
    names = {p.id: p.name for p in client.participants.values()}
    for transceiver in peer.recv_pc.getTransceivers():
        info = client.tracks.get(transceiver.mid or "")
        track = transceiver.receiver.track
        received: ReceivedTrack | None = peer.received.get(track.id) if track else None
        if info is None or received is None or info.participant not in names:
            continue
        result[(names[info.participant], info.source)] = received.frames
    return result


def bot_receives(client: SignallingClient, peer: AiortcPeer, minimum: dict[Any, int]) -> bool:
    got = decoded_by_bot(client, peer)
    return all(
        got.get((name, source), 0) > minimum.get((name, source), 0)
        for name in CHROMIUM_NAMES
        for source in ("camera", "mic")
    )


@pytest_asyncio.fixture
async def bot(meeting_server: MeetingServer) -> AsyncIterator[Callable[[str], Awaitable[Any]]]:
    """Factory: ``await bot(meeting_id)`` joins the meeting as the aiortc participant and
    publishes; returns ``(client, peer)``. Left and closed after the test."""
    made: list[tuple[SignallingClient, AiortcPeer]] = []

    async def join(meeting_id: str) -> tuple[SignallingClient, AiortcPeer]:
        peer = AiortcPeer(BOT)
        client = await SignallingClient.join(
            meeting_server.meeting_url(meeting_id), BOT, on_subscribe=peer.subscribe_offer
        )
        made.append((client, peer))
        await peer.publish(client.publisher())
        return client, peer

    try:
        yield join
    finally:
        for client, peer in made:
            await client.leave()
            await peer.close()


async def test_aiortc_bot_joins_three_chromium_participants(
    meeting_server: MeetingServer,
    open_page: Callable[..., Awaitable[MeetingPage]],
    bot: Callable[[str], Awaitable[tuple[SignallingClient, AiortcPeer]]],
) -> None:
    meeting = await meeting_server.create_meeting(e2ee=False)
    pages = {
        name: await open_page(meeting_server.meeting_url(meeting, name), name)
        for name in CHROMIUM_NAMES
    }
    for page in pages.values():
        await page.wait_joined()
        # An interop meeting without end-to-end encryption is marked as such for everyone.
        assert (await page.evaluate("() => window.incamera.e2ee()"))["enabled"] is False
        badge = await page.evaluate(
            "() => [document.getElementById('e2ee-badge').dataset.state,"
            " document.getElementById('e2ee-text').textContent]"
        )
        assert badge == ["off", "NOT end-to-end encrypted"], badge
    client, peer = await bot(meeting)
    assert {p.name for p in client.participants.values()} == set(CHROMIUM_NAMES)

    # The bot decodes both pages' video and audio, and keeps doing so.
    await peer.wait_for(lambda p: bot_receives(client, p, {}), timeout=TIMEOUT)
    first = decoded_by_bot(client, peer)
    await peer.wait_for(lambda p: bot_receives(client, p, first), timeout=TIMEOUT)
    for name in CHROMIUM_NAMES:
        (video,) = [
            peer.received[t.receiver.track.id]
            for t in peer.recv_pc.getTransceivers()  # type: ignore[union-attr]
            if (info := client.tracks.get(t.mid or "")) is not None
            and info.source == "camera"
            and client.participants[info.participant].name == name
        ]
        assert video.width > 0 and video.height > 0, video

    # Each page decodes the bot's 640x480 video and receives its audio, both growing.
    for name, page in pages.items():
        stats = await page.wait_stats(
            lambda s: (
                BOT in s and s[BOT]["videoFramesDecoded"] > 0 and s[BOT]["audioPacketsReceived"] > 0
            ),
            what="the bot's video and audio",
            timeout=TIMEOUT,
        )
        assert (stats[BOT]["videoWidth"], stats[BOT]["videoHeight"]) == (640, 480), stats
        await page.wait_stats(
            lambda s, before=stats[BOT]: (
                s[BOT]["videoFramesDecoded"] > before["videoFramesDecoded"]
                and s[BOT]["audioPacketsReceived"] > before["audioPacketsReceived"]
            ),
            what=f"{name}: the bot's media growing",
            timeout=TIMEOUT,
        )

    # The bot's chat reaches the pages (the protocol client is a full participant).
    await client.send_chat("beep boop")
    for page in pages.values():
        await poll(
            lambda p=page: _chat_texts(p),
            lambda texts: "beep boop" in texts,
            what=f"{page.name} sees the bot's chat message",
        )


async def _chat_texts(page: MeetingPage) -> list[str]:
    result: list[str] = await page.evaluate(
        "() => window.incamera.state().chat.map((message) => message.text)"
    )
    return result
