"""End-to-end encryption in real headless Chromium through the real server (issue 4).

- What the SFU forwards is SFrame ciphertext: the test-only media tap (media/tap.py) records
  every forwarded RTP packet; each reassembled frame carries an SFrame header with its
  sender's KID after the clear codec prefix, and nothing decrypts without the group's key.
- A participant the server connects without MLS membership (test hook) receives packets
  but decodes nothing, and the others mark it unverified.
- When somebody leaves, the others move to a new epoch and keep seeing each other.
- Chat is an MLS application message: no WebSocket frame carries its text.
"""

from __future__ import annotations

import asyncio
import os
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from incamera.e2ee.sframe import (
    SFrameContext,
    SFrameDecryptError,
    SFrameHeader,
    StreamContext,
    split_mls_kid,
    unprotect_frame,
)
from incamera.media.codecs.vp8 import Vp8Descriptor, descriptor_size
from incamera.media.rtp import RtpPacket
from incamera.media.tap import read_tap

from .conftest import MeetingPage, MeetingServer, poll

pytestmark = pytest.mark.browser

TIMEOUT = 60.0


async def e2ee(page: MeetingPage) -> dict[str, Any]:
    status: dict[str, Any] = await page.evaluate("() => window.incamera.e2ee()")
    return status


async def in_one_group(pages: list[MeetingPage], names: set[str]) -> list[dict[str, Any]]:
    """Waits until every page is in the same epoch with the same code and ``names`` verified."""

    async def probe() -> list[dict[str, Any]]:
        return [await e2ee(page) for page in pages]

    def agreed(statuses: list[dict[str, Any]]) -> bool:
        first = statuses[0]
        return all(
            s["enabled"]
            and s["epoch"] is not None
            and (s["epoch"], s["securityCode"]) == (first["epoch"], first["securityCode"])
            and {m["name"] for m in s["members"] if m["verified"]} == names
            and len(s["members"]) == len(names)
            for s in statuses
        )

    return await poll(probe, agreed, timeout=TIMEOUT, what=f"one MLS group of {sorted(names)}")


async def decodes(page: MeetingPage, others: list[str]) -> dict[str, dict[str, Any]]:
    """``page`` decodes the others' video and receives their audio, and both keep growing."""
    first = await page.wait_stats(
        lambda s: all(
            n in s and s[n]["videoFramesDecoded"] > 0 and s[n]["audioPacketsReceived"] > 0
            for n in others
        ),
        what=f"video and audio of {others}",
        timeout=TIMEOUT,
    )
    return await page.wait_stats(
        lambda s: all(
            s[n]["videoFramesDecoded"] > first[n]["videoFramesDecoded"]
            and s[n]["audioPacketsReceived"] > first[n]["audioPacketsReceived"]
            for n in others
        ),
        what=f"media of {others} growing",
        timeout=TIMEOUT,
    )


def vp8_frames(packets: list[RtpPacket]) -> list[bytes]:
    """Complete VP8 frames of one SSRC: the packets of one timestamp, in sequence order,
    from a start-of-partition-0 packet to the marker, without gaps."""
    by_ts: dict[int, list[RtpPacket]] = defaultdict(list)
    for packet in packets:
        if packet.payload:
            by_ts[packet.timestamp].append(packet)
    frames = []
    for group in by_ts.values():
        group.sort(key=lambda p: p.sequence_number)
        seqs = [p.sequence_number for p in group]
        if len(set(seqs)) != len(seqs) or seqs[-1] - seqs[0] != len(seqs) - 1:
            continue
        if not group[-1].marker:
            continue
        parts = []
        for index, packet in enumerate(group):
            descriptor = Vp8Descriptor.parse(packet.payload)
            if index == 0 and not (
                descriptor.start_of_partition and descriptor.partition_index == 0
            ):
                break
            parts.append(packet.payload[descriptor_size(packet.payload) :])
        else:
            frames.append(b"".join(parts))
    return frames


async def test_the_server_forwards_only_sframe_ciphertext(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    grace = await open_page(meeting_server.meeting_url(meeting, "Grace"), "Grace")
    await ada.wait_joined()
    await grace.wait_joined()
    statuses = await in_one_group([ada, grace], {"Ada", "Grace"})
    await decodes(ada, ["Grace"])
    await decodes(grace, ["Ada"])
    assert await ada.evaluate("() => document.getElementById('e2ee-badge').dataset.state") == "on"

    # Which SSRC is whose, from the senders' own statistics; leaves from the MLS group.
    leaf_of = {m["name"]: m["leaf"] for m in statuses[0]["members"]}
    streams: dict[int, tuple[str, str]] = {}  # ssrc -> (sender name, mime type)
    for page in (ada, grace):
        for row in await page.evaluate("() => window.incamera.sendStats()"):
            if row["mimeType"] and row["packetsSent"] > 0:
                streams[row["ssrc"]] = (page.name, row["mimeType"])
    assert {mime for _, mime in streams.values()} >= {"audio/opus", "video/VP8"}, streams

    await asyncio.sleep(1.0)  # the worker flushes the tap file every tick
    by_ssrc: dict[int, list[RtpPacket]] = defaultdict(list)
    for record in read_tap(meeting_server.tap_path.read_bytes()):
        if record.is_rtx:
            continue
        packet = RtpPacket.parse(record.packet)
        if packet.ssrc in streams:
            by_ssrc[packet.ssrc].append(packet)

    # A key for the right KIDs from a secret that is not the group's: nothing authenticates.
    wrong = SFrameContext()
    checked = {"audio/opus": 0, "video/VP8": 0}
    for ssrc, packets in by_ssrc.items():
        sender, mime = streams[ssrc]
        if mime == "audio/opus":
            frames = [(p.payload, StreamContext.MICROPHONE) for p in packets if len(p.payload) > 1]
            codec, prefix_of = "opus", (lambda frame: 1)
        elif mime == "video/VP8":
            frames = [(f, StreamContext.CAMERA) for f in vp8_frames(packets)]
            codec, prefix_of = "vp8", (lambda frame: 10 if frame[0] & 1 == 0 else 3)
        else:
            continue
        for frame, context in frames:
            header = SFrameHeader.parse(frame[prefix_of(frame) :])
            kid = split_mls_kid(header.kid)
            assert (kid.context, kid.leaf) == (context, leaf_of[sender]), (sender, mime, kid)
            if not wrong.has_key(header.kid):
                wrong.add_receive_key(header.kid, os.urandom(16))
            with pytest.raises(SFrameDecryptError):
                unprotect_frame(wrong, codec, frame)
            checked[mime] += 1
    assert checked["audio/opus"] >= 50 and checked["video/VP8"] >= 20, checked


async def test_a_participant_outside_the_mls_group_decodes_nothing(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    grace = await open_page(meeting_server.meeting_url(meeting, "Grace"), "Grace")
    await ada.wait_joined()
    await grace.wait_joined()
    await in_one_group([ada, grace], {"Ada", "Grace"})
    # The test hook: the server connects Eve but never lets her key package reach a
    # committer, as a server that tried to add a listener on its own would have to.
    eve = await open_page(meeting_server.meeting_url(meeting, "Eve", test_skip_mls="1"), "Eve")
    await eve.wait_joined()

    # Eve gets the packets (the server forwards them) but decodes no frame of anybody.
    stats = await eve.wait_stats(
        lambda s: all(s[n]["audioPacketsReceived"] > 300 for n in ("Ada", "Grace")),
        what="Eve receives packets",
        timeout=TIMEOUT,
    )
    for name in ("Ada", "Grace"):
        assert stats[name]["videoFramesDecoded"] == 0, stats
        assert stats[name]["screenFramesDecoded"] == 0, stats
    assert (await e2ee(eve))["epoch"] is None

    # The others: Eve is listed by the server but is not in the group, so she is marked
    # unverified, and nothing she could send would decode (she has no key to send with).
    for page in (ada, grace):
        marked = await poll(
            lambda p=page: p.evaluate(
                """() => [...document.querySelectorAll('#people-list li')].map(
                    (li) => [li.getAttribute('aria-label'), li.dataset.verified])"""
            ),
            lambda rows: any("Eve" in label and v == "false" for label, v in rows),
            what=f"{page.name} marks Eve unverified",
        )
        assert sum(v == "false" for _, v in marked) == 1, marked
        status = await e2ee(page)
        assert "Eve" not in {m["name"] for m in status["members"]}
        assert (await page.stats())["Eve"]["videoFramesDecoded"] == 0


async def test_after_a_leave_the_others_move_to_a_new_epoch(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting = await meeting_server.create_meeting()
    ada = await open_page(meeting_server.meeting_url(meeting, "Ada"), "Ada")
    await ada.wait_joined()
    grace = await open_page(meeting_server.meeting_url(meeting, "Grace"), "Grace")
    linus = await open_page(meeting_server.meeting_url(meeting, "Linus"), "Linus")
    await grace.wait_joined()
    await linus.wait_joined()
    together = await in_one_group([ada, grace, linus], {"Ada", "Grace", "Linus"})
    epoch, code = together[0]["epoch"], together[0]["securityCode"]
    # Every join was announced to those already in the group.
    announced = {a["name"] for a in (await e2ee(ada))["announced"]}
    assert announced == {"Grace", "Linus"}, announced

    await linus.evaluate("() => window.incamera.leave()")
    after = await in_one_group([ada, grace], {"Ada", "Grace"})
    assert after[0]["epoch"] > epoch
    assert after[0]["securityCode"] != code
    # Media keeps flowing under the new key (a key frame is requested after the switch).
    await decodes(ada, ["Grace"])
    await decodes(grace, ["Ada"])


async def test_chat_travels_as_mls_ciphertext(
    meeting_server: MeetingServer, open_page: Callable[..., Awaitable[MeetingPage]]
) -> None:
    meeting = await meeting_server.create_meeting()
    frames: dict[str, list[str]] = {"sent": [], "received": []}
    ada = await open_page("about:blank", "Ada")
    grace = await open_page("about:blank", "Grace")
    ada.page.on("websocket", lambda ws: ws.on("framesent", lambda f: frames["sent"].append(f)))
    grace.page.on(
        "websocket", lambda ws: ws.on("framereceived", lambda f: frames["received"].append(f))
    )
    await ada.page.goto(meeting_server.meeting_url(meeting, "Ada"))
    await grace.page.goto(meeting_server.meeting_url(meeting, "Grace"))
    await ada.wait_joined()
    await grace.wait_joined()
    await in_one_group([ada, grace], {"Ada", "Grace"})

    secret = "The budget figure is 4711"
    await ada.page.keyboard.press("c")
    await ada.page.locator("#chat-input").fill(secret)
    await ada.page.locator("#chat-input").press("Enter")
    texts = await poll(
        lambda: grace.evaluate("() => window.incamera.state().chat.map((m) => [m.name, m.text])"),
        lambda rows: ["Ada", secret] in rows,
        what="Grace reads Ada's message",
    )
    assert texts.count(["Ada", secret]) == 1
    # What the server got and relayed: an MLS application message, never the text.
    assert any('"mls_message"' in str(f) for f in frames["sent"]), frames["sent"][-5:]
    assert any('"mls_message"' in str(f) for f in frames["received"])
    assert not any("4711" in str(f) for f in frames["sent"] + frames["received"])
