"""Packet loss between a publisher and the SFU: the SFU NACKs upstream once for all its
subscribers (RFC 4585), the publisher retransmits, and subscribers keep decoding."""

from __future__ import annotations

import pytest

from incamera.media.worker import Worker
from support.aiortc_peer import AiortcPeer
from support.sfu import Conference
from support.udp_proxy import LossyUdpProxy, rewrite_candidates

pytestmark = pytest.mark.interop


@pytest.fixture
async def worker():
    w = Worker(listen_ip="127.0.0.1")
    await w.start()
    yield w
    await w.close()


async def test_publisher_loss_is_repaired_by_upstream_nacks(worker: Worker) -> None:
    conf = Conference(worker)
    alice, bob = conf.participant("alice"), conf.participant("bob")
    pub, sub = AiortcPeer("pub"), AiortcPeer("sub")
    async with LossyUdpProxy(
        worker.address, loss_to_client=0.0, loss_to_server=0.05, seed=7
    ) as proxy:

        async def via_proxy(offer: str) -> str:
            return rewrite_candidates(await alice.answer_publish(offer), proxy.port)

        try:
            await pub.publish(via_proxy, video="vp8", audio=False)
            await bob.subscribe(sub.subscribe_offer, alice.producer_ids)
            await sub.wait_for(
                lambda p: bool(p.video_tracks()) and p.video_tracks()[0].frames > 20, timeout=30
            )
            frames = sub.video_tracks()[0].frames
            await sub.wait_for(lambda p: p.video_tracks()[0].frames > frames + 30, timeout=30)
            assert proxy.to_server.dropped > 0
            assert worker.counters.nacks_sent > 0
            producer = worker.producers[alice.producer_ids[0]]
            assert sum(s.nacks.recovered for s in producer.streams) > 0
        finally:
            await pub.close()
            await sub.close()
