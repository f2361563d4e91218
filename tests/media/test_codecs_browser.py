"""Every video codec the router forwards, published by headless Chromium through the SFU and
decoded by another Chromium tab: VP8 and H264 are covered elsewhere; VP9 and AV1 here."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from incamera.media.worker import Worker
from support.browser import PeerGroup
from support.sfu import Conference, running_worker

pytestmark = pytest.mark.browser


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    async with running_worker() as w:
        yield w


@pytest.mark.parametrize("mime_type", ["video/VP9", "video/AV1"])
async def test_chromium_codec_through_the_sfu(
    worker: Worker, chromium: PeerGroup, mime_type: str
) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = await chromium.new_peer("alice"), await chromium.new_peer("bob")
    await pub.publish(alice.answer_publish, audio=False, video=True, video_codec=mime_type)
    producer = worker.producers[alice.producer_ids[0]]
    assert producer.codec.mime_type.lower() == mime_type.lower()
    await bob.subscribe(sub.subscribe_offer, alice.producer_ids)

    def decoding(stats) -> bool:  # type: ignore[no-untyped-def]
        videos = stats.inbound_video()
        return bool(videos) and videos[0].frames_decoded > 20

    stats = await sub.wait_for(decoding, timeout=30)
    (video,) = stats.inbound_video()
    assert video.mime_type.lower() == mime_type.lower()
    assert (video.frame_width, video.frame_height) == (640, 480)
    frames = video.frames_decoded
    await sub.wait_for(lambda s: s.inbound_video()[0].frames_decoded > frames + 20, timeout=20)
    counters = worker.stats().counters
    assert counters["internal_errors"] == 0 and counters["srtp_auth_failures"] == 0
