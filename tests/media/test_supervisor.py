"""Worker processes: the typed client API across the process boundary, crash restart and
router placement."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from incamera.media.api import TransportState, TransportStateChanged
from incamera.media.errors import MediaError
from incamera.media.supervisor import Supervisor, WorkerRestarted
from incamera.sdp.publish import answer_publish
from incamera.sdp.subscribe import SubscribeSession
from support.aiortc_peer import AiortcPeer
from support.ports import free_udp_port_range


@pytest.fixture
async def supervisor():
    events: list[tuple[int, object]] = []
    base = free_udp_port_range(2)
    sup = Supervisor(
        workers=2,
        port_min=base,
        port_max=base + 1,
        on_event=lambda wid, event: events.append((wid, event)),
    )
    sup.events = events  # type: ignore[attr-defined]
    await sup.start()
    yield sup
    await sup.stop()


async def test_routers_are_spread_over_workers(supervisor: Supervisor) -> None:
    r1, w1 = await supervisor.create_router()
    r2, w2 = await supervisor.create_router()
    assert supervisor.worker_for(r2) is w2
    assert w1.worker_id != w2.worker_id
    assert supervisor.worker_for(r1) is w1
    with pytest.raises(MediaError):
        await w1.create_transport("no-such-router")
    with pytest.raises(MediaError, match="unknown command"):
        await w1._call("datagram_received", b"x", ("127.0.0.1", 1))


async def test_crashed_worker_is_restarted_on_its_port(supervisor: Supervisor) -> None:
    router_id, worker = await supervisor.create_router()
    port, old_pid = worker.port, worker.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    for _ in range(200):  # bounded wait: up to ~20 s
        restarted = [e for _, e in supervisor.events if isinstance(e, WorkerRestarted)]
        if restarted:
            break
        await asyncio.sleep(0.1)
    assert restarted and restarted[0].lost_routers == (router_id,)
    new = supervisor.workers[worker.worker_id]
    assert new.pid != old_pid and new.port == port
    with pytest.raises(MediaError):
        supervisor.worker_for(router_id)
    router_id, worker = await supervisor.create_router()
    assert (await worker.stats()).counters["transports"] == 0


@pytest.mark.interop
async def test_media_through_a_worker_process(supervisor: Supervisor) -> None:
    router_id, worker = await supervisor.create_router()
    pub, sub = AiortcPeer("pub"), AiortcPeer("sub")
    producers: list[str] = []

    async def signal_publish(offer: str) -> str:
        info = await worker.create_transport(router_id)
        answer = answer_publish(offer, info)
        await worker.connect_transport(info.id, answer.remote_dtls)
        for params in answer.producers:
            producers.append(await worker.produce(info.id, params))
        return answer.sdp

    try:
        await pub.publish(signal_publish, video="vp8")
        info = await worker.create_transport(router_id)
        session = SubscribeSession(info)
        for producer_id in producers:
            consumer = await worker.consume(info.id, producer_id)
            session.add(consumer.rtp_parameters, "stream", producer_id)
        ice, dtls = session.apply_answer(await sub.subscribe_offer(session.offer()))
        await worker.connect_transport(info.id, dtls, ice.username_fragment)
        await sub.wait_for(
            lambda p: bool(p.video_tracks()) and p.video_tracks()[0].frames > 10, timeout=30
        )
        states = [e for _, e in supervisor.events if isinstance(e, TransportStateChanged)]
        assert any(e.state is TransportState.CONNECTED for e in states)
        assert await worker.cpu_seconds() > 0
    finally:
        await pub.close()
        await sub.close()
