"""Headless Chromium through the SFU: Chromium to Chromium, aiortc to Chromium, Chromium to
aiortc, and simulcast layer switching when the subscriber asks for a smaller size.

The test plays the signalling server (``support.sfu``); media goes through a real in-process
``Worker`` on 127.0.0.1 with ICE-lite, DTLS-SRTP and the real SDP layer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from incamera.media.rtp_parameters import MediaKind
from incamera.media.worker import Worker
from support.aiortc_peer import AiortcPeer
from support.browser import BrowserPeer, PeerGroup, PeerStats
from support.sfu import Conference, running_worker

pytestmark = pytest.mark.browser


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    async with running_worker() as w:
        yield w


def assert_clean(worker: Worker) -> None:
    counters = worker.stats().counters
    assert counters["internal_errors"] == 0, counters
    assert counters["srtp_auth_failures"] == 0, counters


def video_decoding(frames: int, width: int | None = None) -> Callable[[PeerStats], bool]:
    def check(stats: PeerStats) -> bool:
        videos = stats.inbound_video()
        return bool(videos) and all(
            v.frames_decoded >= frames and (width is None or v.frame_width == width) for v in videos
        )

    return check


def audio_flowing(stats: PeerStats) -> bool:
    audio = stats.inbound_audio()
    return bool(audio) and all(a.packets_received > 20 for a in audio)


async def test_chromium_publishes_and_chromium_decodes(worker: Worker, chromium: PeerGroup) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = await chromium.new_peer("alice"), await chromium.new_peer("bob")

    await pub.publish(alice.answer_publish, audio=True, video=True)
    assert {worker.producers[p].kind for p in alice.producer_ids} == {
        MediaKind.AUDIO,
        MediaKind.VIDEO,
    }
    await bob.subscribe(sub.subscribe_offer, alice.producer_ids)

    stats = await sub.wait_for(
        lambda s: video_decoding(10, width=640)(s) and audio_flowing(s), timeout=20
    )
    (video,) = stats.inbound_video()
    assert (video.frame_width, video.frame_height) == (640, 480)
    assert video.mime_type == "video/VP8"
    assert stats.inbound_audio()[0].mime_type == "audio/opus"
    # Still decoding later, not just a first burst.
    await sub.wait_for(video_decoding(video.frames_decoded + 20), timeout=15)
    assert_clean(worker)


@pytest.mark.interop
async def test_aiortc_publishes_and_chromium_decodes(worker: Worker, chromium: PeerGroup) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub = AiortcPeer("alice")
    try:
        await pub.publish(alice.answer_publish, video="vp8", audio=True)
        sub = await chromium.new_peer("bob")
        await bob.subscribe(sub.subscribe_offer, alice.producer_ids)
        stats = await sub.wait_for(
            lambda s: video_decoding(10, width=640)(s) and audio_flowing(s), timeout=20
        )
        (video,) = stats.inbound_video()
        assert (video.frame_width, video.frame_height) == (640, 480)
    finally:
        await pub.close()
    assert_clean(worker)


@pytest.mark.interop
async def test_chromium_publishes_and_aiortc_decodes(worker: Worker, chromium: PeerGroup) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub = await chromium.new_peer("alice")
    await pub.publish(alice.answer_publish, audio=True, video=True)
    sub = AiortcPeer("bob")
    try:
        await bob.subscribe(sub.subscribe_offer, alice.producer_ids)

        def decoding(peer: AiortcPeer) -> bool:
            video = peer.video_tracks()
            audio = [t for t in peer.received.values() if t.kind == "audio"]
            return bool(video and video[0].frames > 10 and audio and audio[0].frames > 10)

        await sub.wait_for(decoding, timeout=30)
        video = sub.video_tracks()[0]
        assert (video.width, video.height) == (640, 480)
    finally:
        await sub.close()
    assert_clean(worker)


# ---------------------------------------------------------------------------------------------
# Simulcast


async def outbound_video_bps(peer: BrowserPeer, seconds: float = 2.0) -> float:
    """The publisher's video send rate (all layers), from two getStats bytesSent samples."""

    def total(stats: PeerStats) -> int:
        return sum(o.bytes_sent for o in stats.outbound_video())

    before = total(await peer.stats())
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.sleep(seconds)
    after = total(await peer.stats())
    return (after - before) * 8 / (loop.time() - started)


def layers_sending(stats: PeerStats) -> dict[str, tuple[int, int]]:
    """rid -> (bytesSent, frameWidth) of each simulcast layer."""
    return {o.rid: (o.bytes_sent, o.frame_width) for o in stats.outbound_video() if o.rid}


# Chromium's fake camera is simple to compress: at 1280x720 its three layers stay just under
# 1 Mbit/s even at their full target bit rates, at 1920x1080 they send about 1.3 Mbit/s.
WIDTH, HEIGHT = 1920, 1080


async def test_simulcast_switches_down_when_subscriber_asks_for_a_smaller_size(
    worker: Worker, chromium: PeerGroup
) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = await chromium.new_peer("alice"), await chromium.new_peer("bob")

    await pub.publish(alice.answer_publish, audio=False, simulcast=True, width=WIDTH, height=HEIGHT)
    (producer_id,) = alice.producer_ids
    assert [s.rid for s in worker.producers[producer_id].streams] == ["q", "h", "f"]

    # The publisher's encoder ramps up to all three layers on our TWCC/REMB feedback...
    sent = await pub.wait_for(
        lambda s: (
            len(layers_sending(s)) == 3
            and all(b > 0 and w > 0 for b, w in layers_sending(s).values())
        ),
        timeout=25,
    )
    widths = sorted(w for _, w in layers_sending(sent).values())
    assert widths == [WIDTH // 4, WIDTH // 2, WIDTH]
    # ... and its send rate, from bytesSent over a few seconds, exceeds 1 Mbit/s.
    rates = [await outbound_video_bps(pub)]
    while rates[-1] <= 1_000_000 and len(rates) < 6:
        rates.append(await outbound_video_bps(pub))
    assert rates[-1] > 1_000_000, f"publisher send rates (bit/s): {rates}"

    await bob.subscribe(sub.subscribe_offer, [producer_id])
    (consumer_id,) = bob.consumer_ids(MediaKind.VIDEO)
    stats = await sub.wait_for(video_decoding(10, width=WIDTH), timeout=20)
    assert stats.inbound_video()[0].frame_height == HEIGHT

    layer = worker.set_max_size(consumer_id, WIDTH // 4, HEIGHT // 4)
    assert layer == 0
    stats = await sub.wait_for(video_decoding(0, width=WIDTH // 4), timeout=15)
    assert stats.inbound_video()[0].frame_height == HEIGHT // 4
    assert worker.consumer_stats(consumer_id)["current_layer"] == 0
    # The stream stays continuous across the switch: decoding goes on at the small size.
    frames = stats.inbound_video()[0].frames_decoded
    await sub.wait_for(video_decoding(frames + 20, width=WIDTH // 4), timeout=15)
    assert_clean(worker)
