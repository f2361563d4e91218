"""Interop with an independent WebRTC stack: aiortc publishes through the SFU, another aiortc
client subscribes and decodes."""

from __future__ import annotations

import pytest

from incamera.media.worker import Worker
from support.aiortc_peer import AiortcPeer
from support.sfu import Conference

pytestmark = pytest.mark.interop


@pytest.fixture
async def worker():
    w = Worker(listen_ip="127.0.0.1")
    await w.start()
    yield w
    await w.close()


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_aiortc_publish_and_subscribe(worker: Worker, codec: str) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = AiortcPeer("pub"), AiortcPeer("sub")
    try:
        await pub.publish(alice.answer_publish, video=codec, audio=True)
        assert len(alice.producer_ids) == 2
        await bob.subscribe(sub.subscribe_offer, alice.producer_ids)

        def decoding(peer: AiortcPeer) -> bool:
            video = peer.video_tracks()
            audio = [t for t in peer.received.values() if t.kind == "audio"]
            return bool(video and video[0].frames > 10 and audio and audio[0].frames > 10)

        await sub.wait_for(decoding, timeout=30)
        video = sub.video_tracks()[0]
        assert (video.width, video.height) == (640, 480)
        stats = worker.stats().counters
        assert stats["srtp_auth_failures"] == 0
        assert stats["internal_errors"] == 0
    finally:
        await pub.close()
        await sub.close()
