"""Packet loss between the SFU and a subscriber: the subscriber NACKs, the SFU answers from
its retransmission cache with RTX (RFC 4588), and the subscriber keeps decoding.

Loss is injected by a seeded ``LossyUdpProxy`` on the subscriber's path only: the server
candidate in the subscribe offer is rewritten to the proxy's port, so the ICE-lite worker
sees the proxy's upstream socket as the subscriber's (peer-reflexive) address.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from incamera.media.rtp_parameters import MediaKind
from incamera.media.worker import Worker
from support.browser import PeerGroup, PeerStats
from support.sfu import Conference, running_worker
from support.udp_proxy import LossyUdpProxy, candidate_addresses, rewrite_candidates

pytestmark = pytest.mark.browser

LOSS = 0.05


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    async with running_worker() as w:
        yield w


def retransmissions(worker: Worker, consumer_id: str) -> int:
    return worker.consumer_stats(consumer_id)["retransmissions_sent"] or 0


def frames_decoded(stats: PeerStats) -> int:
    videos = stats.inbound_video()
    return videos[0].frames_decoded if videos else 0


async def test_subscriber_keeps_decoding_under_5_percent_loss(
    worker: Worker,
    chromium: PeerGroup,
    udp_proxies: Callable[..., Awaitable[LossyUdpProxy]],
) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = await chromium.new_peer("alice"), await chromium.new_peer("bob")
    await pub.publish(alice.answer_publish, audio=True, video=True)

    proxy = await udp_proxies(worker.address, loss_to_client=LOSS, seed=7)

    answers: list[str] = []

    async def via_proxy(offer: str) -> str:
        assert set(candidate_addresses(offer)) == {worker.address}
        answers.append(await sub.subscribe_offer(rewrite_candidates(offer, proxy.port)))
        return answers[-1]

    await bob.subscribe(via_proxy, alice.producer_ids)
    (consumer_id,) = bob.consumer_ids(MediaKind.VIDEO)
    transport = worker.transports[bob.recv_transport_id or ""]

    # Decoding starts, and the loss is real: the proxy dropped media on the way.
    stats = await sub.wait_for(lambda s: frames_decoded(s) >= 20, timeout=20)
    # The worker talks to the proxy, not to any of Chromium's own candidates.
    assert transport.ice.selected is not None
    assert transport.ice.selected not in candidate_addresses(answers[-1])
    assert proxy.client is not None and proxy.client in candidate_addresses(answers[-1])
    await sub.wait_for(
        lambda s: s.inbound_video()[0].nack_count > 0 and retransmissions(worker, consumer_id) > 0,
        timeout=15,
    )
    assert proxy.to_client.dropped > 0

    # A later window: decoding keeps going while loss continues.
    first = frames_decoded(await sub.stats())
    dropped_before = proxy.to_client.dropped
    stats = await sub.wait_for(lambda s: frames_decoded(s) >= first + 40, timeout=20)
    assert proxy.to_client.dropped > dropped_before

    (video,) = stats.inbound_video()
    assert video.nack_count > 0
    if video.retransmitted_packets_received is not None:
        assert video.retransmitted_packets_received > 0
    assert retransmissions(worker, consumer_id) > 0
    counters = worker.stats().counters
    assert counters["nacks_received"] > 0
    assert counters["retransmissions_sent"] >= retransmissions(worker, consumer_id)
    assert counters["internal_errors"] == 0
    assert counters["srtp_auth_failures"] == 0
    # The loss rate on the subscriber's path is the one we asked for, roughly.
    assert 0.02 < proxy.to_client.dropped / proxy.to_client.total < 0.10
