"""Self-tests of the aiortc participant: aiortc <-> aiortc and aiortc <-> Chromium on loopback,
with the test code as the signalling server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from support.aiortc_peer import AiortcPeer
from support.browser import PeerGroup, PeerStats
from support.udp_proxy import candidate_addresses

pytestmark = pytest.mark.interop

MIME = {"vp8": "video/VP8", "h264": "video/H264"}


def _decoding(peer: AiortcPeer) -> bool:
    videos = peer.video_tracks()
    audios = [t for t in peer.received.values() if t.kind == "audio"]
    return bool(videos and audios) and all(t.frames >= 5 for t in videos + audios)


@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_aiortc_to_aiortc_over_loopback(
    aiortc_peers: Callable[[str], AiortcPeer], codec: str
) -> None:
    sender, receiver = aiortc_peers("sender"), aiortc_peers("receiver")
    seen: dict[str, str] = {}

    async def signal(offer: str) -> str:
        seen["offer"] = offer
        seen["answer"] = await receiver.subscribe_offer(offer)
        return seen["answer"]

    await sender.publish(signal, video=codec)  # type: ignore[arg-type]
    await receiver.wait_for(_decoding)

    # Only loopback candidates on both sides: the aioice patch took effect.
    for sdp in seen.values():
        hosts = {host for host, _ in candidate_addresses(sdp)}
        assert hosts == {"127.0.0.1"}
    offer_video = seen["offer"].split("m=video", 1)[1]
    assert MIME[codec].split("/")[1] in offer_video
    assert ("VP8" in offer_video) == (codec == "vp8")
    (video,) = receiver.video_tracks()
    assert (video.width, video.height) == (640, 480)
    states = sender.connection_states()
    assert states["send"] is not None
    assert states["send"]["connectionState"] == "connected"
    assert states["recv"] is None


@pytest.mark.browser
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_aiortc_publisher_to_chromium_receiver(
    aiortc_peers: Callable[[str], AiortcPeer], chromium: PeerGroup, codec: str
) -> None:
    sender = aiortc_peers("sender")
    receiver = await chromium.new_peer("receiver")
    await sender.publish(receiver.subscribe_offer, video=codec)  # type: ignore[arg-type]

    def decoded(stats: PeerStats) -> bool:
        videos, audios = stats.inbound_video(), stats.inbound_audio()
        return (
            bool(videos and audios)
            and videos[0].frames_decoded >= 5
            and audios[0].packets_received > 0
        )

    stats = await receiver.wait_for(decoded)
    (video,) = stats.inbound_video()
    assert (video.frame_width, video.frame_height) == (640, 480)
    assert video.mime_type == MIME[codec]
    assert await receiver.remote_element_count() == 2


@pytest.mark.browser
async def test_chromium_publisher_to_aiortc_receiver(
    aiortc_peers: Callable[[str], AiortcPeer], chromium: PeerGroup
) -> None:
    sender = await chromium.new_peer("sender")
    receiver = aiortc_peers("receiver")
    await sender.publish(receiver.subscribe_offer)
    await receiver.wait_for(_decoding)
    (video,) = receiver.video_tracks()
    assert (video.width, video.height) == (640, 480)
    stats = await sender.stats()
    assert {s.kind for s in stats.outbound if s.bytes_sent > 0} == {"audio", "video"}
