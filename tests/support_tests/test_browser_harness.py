"""Self-tests of the Chromium harness: two pages connected directly over loopback, one
publishing and one answering as a receiver, with the test code as the signalling server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from support.browser import NO_SIMULCAST_LAYER_LIMIT, ChromiumHarness, PeerGroup, PeerStats
from support.udp_proxy import LossyUdpProxy, candidate_addresses, rewrite_candidates

pytestmark = pytest.mark.browser


def _videos_decoding(count: int, frames: int = 5) -> Callable[[PeerStats], bool]:
    def check(stats: PeerStats) -> bool:
        videos = stats.inbound_video()
        return len(videos) == count and all(v.frames_decoded >= frames for v in videos)

    return check


@pytest.mark.parametrize("codec", [None, "video/H264"])
async def test_chromium_to_chromium_decodes(chromium: PeerGroup, codec: str | None) -> None:
    alice = await chromium.new_peer("alice")
    bob = await chromium.new_peer("bob")
    await alice.publish(bob.subscribe_offer, video_codec=codec)

    # OpenH264 may start below the capture size while the bandwidth estimate ramps up.
    stats = await bob.wait_for(
        lambda s: _videos_decoding(1)(s) and s.inbound_video()[0].frame_width == 640
    )
    (video,) = stats.inbound_video()
    assert video.frame_height == 480
    assert video.mime_type == (codec or "video/VP8")
    assert video.track_identifier
    assert video.mid is not None
    stats = await bob.wait_for(lambda s: any(a.packets_received > 0 for a in s.inbound_audio()))
    assert stats.inbound_audio()[0].mime_type == "audio/opus"
    assert await bob.remote_element_count() == 2
    rendered = await bob.evaluate(
        "() => [...document.querySelectorAll('#remote video')].map((v) => v.videoWidth)"
    )
    assert rendered == [640]

    sent = await alice.stats()
    assert {o.kind for o in sent.outbound if o.bytes_sent > 0} == {"audio", "video"}
    assert sent.outbound_video()[0].frame_width == 640
    assert sent.inbound == []

    alice_states, bob_states = await alice.connection_states(), await bob.connection_states()
    assert alice_states["recv"] is None and bob_states["send"] is None
    assert alice_states["send"] is not None and bob_states["recv"] is not None
    assert alice_states["send"]["connectionState"] == "connected"
    assert bob_states["recv"]["iceConnectionState"] in ("connected", "completed")


async def test_second_publish_renegotiates_the_receiver(chromium: PeerGroup) -> None:
    alice = await chromium.new_peer("alice")
    bob = await chromium.new_peer("bob")
    answers: list[str] = []

    async def signal(offer: str) -> str:
        answers.append(await bob.subscribe_offer(offer))
        return answers[-1]

    await alice.publish(signal, audio=False)
    await bob.wait_for(_videos_decoding(1))
    # A screen share on the same SEND pc: a re-offer that bob's RECV pc answers again.
    await alice.publish(signal, audio=False, source="screen")
    stats = await bob.wait_for(_videos_decoding(2))

    assert len(answers) == 2
    sizes = sorted((v.frame_width, v.frame_height) for v in stats.inbound_video())
    assert sizes == [(640, 480), (1280, 720)]
    assert await bob.remote_element_count() == 2


def _without_candidates(sdp: str) -> str:
    return "".join(
        line for line in sdp.splitlines(keepends=True) if not line.startswith("a=candidate:")
    )


async def test_lossy_proxy_in_the_media_path_causes_nacks(
    chromium: PeerGroup, udp_proxies: Callable[..., Awaitable[LossyUdpProxy]]
) -> None:
    """alice -> proxy (5% RTP loss towards bob) -> bob.

    bob never learns alice's candidates and only sees the proxy's address in his own
    answer's place, so every packet between them must cross the proxy.
    """
    alice = await chromium.new_peer("alice")
    bob = await chromium.new_peer("bob")
    proxies: list[LossyUdpProxy] = []

    async def signal(offer: str) -> str:
        answer = await bob.subscribe_offer(_without_candidates(offer))
        bob_port = next(p for h, p in candidate_addresses(answer) if h == "127.0.0.1")
        proxy = await udp_proxies(("127.0.0.1", bob_port), loss_to_server=0.05, seed=1)
        proxies.append(proxy)
        lines = answer.splitlines(keepends=True)
        kept = [
            line
            for line in lines
            if not line.startswith("a=candidate:") or f" 127.0.0.1 {bob_port} " in line
        ]
        return rewrite_candidates("".join(kept), proxy.port)

    await alice.publish(signal, audio=False)
    stats = await bob.wait_for(
        lambda s: _videos_decoding(1, frames=20)(s) and s.inbound_video()[0].nack_count > 0
    )
    (proxy,) = proxies
    assert proxy.to_server.dropped > 0
    assert proxy.to_server.forwarded > proxy.to_server.dropped
    assert proxy.to_client.forwarded > 0  # RTCP (and NACKs) back to alice
    assert stats.inbound_video()[0].frame_width == 640
    sent = await alice.wait_for(lambda s: s.outbound_video()[0].retransmitted_packets_sent > 0)
    assert sent.outbound_video()[0].nack_count > 0


@pytest.mark.parametrize("chromium_browser", [NO_SIMULCAST_LAYER_LIMIT], indirect=True)
async def test_simulcast_offer_and_field_trial_browser(
    chromium_browser: ChromiumHarness, chromium: PeerGroup
) -> None:
    assert f"--force-fieldtrials={NO_SIMULCAST_LAYER_LIMIT}" in chromium_browser.args
    alice = await chromium.new_peer("alice")
    bob = await chromium.new_peer("bob")
    offers: list[str] = []

    async def signal(offer: str) -> str:
        offers.append(offer)
        return await bob.subscribe_offer(offer)

    await alice.publish(signal, audio=False, simulcast=True)
    (offer,) = offers
    assert "a=simulcast:send q;h;f" in offer
    for rid in ("q", "h", "f"):
        assert f"a=rid:{rid} send" in offer
    await bob.wait_for(_videos_decoding(1))
    sent = await alice.stats()
    assert {o.rid for o in sent.outbound_video()} == {"q", "h", "f"}
