"""Worker behaviour: DTLS fingerprint check, consent expiry, overload shedding, commands."""

from __future__ import annotations

import asyncio

import pytest

from incamera.media.api import (
    DtlsFingerprint,
    DtlsParameters,
    DtlsRole,
    TransportState,
    TransportStateChanged,
)
from incamera.media.errors import MediaError
from incamera.media.ice import CONSENT_TIMEOUT
from incamera.media.worker import SHED_ABOVE, Worker
from incamera.sdp.publish import answer_publish
from support.aiortc_peer import AiortcPeer
from support.sfu import Conference


@pytest.fixture
async def worker_events():
    events: list[object] = []
    w = Worker(listen_ip="127.0.0.1", emit=events.append)
    await w.start()
    yield w, events
    await w.close()


def states(events: list[object], transport_id: str) -> list[TransportState]:
    return [
        e.state
        for e in events
        if isinstance(e, TransportStateChanged) and e.transport_id == transport_id
    ]


@pytest.mark.interop
async def test_fingerprint_mismatch_fails_the_transport(worker_events) -> None:
    worker, events = worker_events
    router_id = worker.create_router()
    transport_ids: list[str] = []

    async def signal(offer: str) -> str:
        info = worker.create_transport(router_id)
        transport_ids.append(info.id)
        answer = answer_publish(offer, info)
        wrong = DtlsParameters(DtlsRole.CLIENT, (DtlsFingerprint("sha-256", "AB:" * 31 + "CD"),))
        worker.connect_transport(info.id, wrong)
        for params in answer.producers:
            worker.produce(info.id, params)
        return answer.sdp

    peer = AiortcPeer("pub")
    try:
        await peer.publish(signal, video="vp8")
        for _ in range(100):
            if TransportState.FAILED in states(events, transport_ids[0]):
                break
            await asyncio.sleep(0.1)
        assert TransportState.FAILED in states(events, transport_ids[0])
        assert TransportState.CONNECTED not in states(events, transport_ids[0])
        assert worker.transports[transport_ids[0]].srtp is None
    finally:
        await peer.close()


@pytest.mark.interop
async def test_silent_peer_loses_consent_and_media_stops(worker_events) -> None:
    worker, events = worker_events
    conf = Conference(worker)
    alice = conf.participant("alice")
    peer = AiortcPeer("pub")
    try:
        await peer.publish(alice.answer_publish, video="vp8")
        transport_id = alice.send_transport_id
        assert transport_id is not None
        for _ in range(100):
            if TransportState.CONNECTED in states(events, transport_id):
                break
            await asyncio.sleep(0.1)
        transport = worker.transports[transport_id]
        last = transport.ice.last_consent
        worker.tick(last + CONSENT_TIMEOUT + 1)  # as if 31 s passed without a check
        assert states(events, transport_id)[-1] is TransportState.DISCONNECTED
        assert transport.ice.selected is None
    finally:
        await peer.close()


def test_overload_sheds_top_layers_and_restores_them_when_calm() -> None:
    worker = Worker()
    assert worker.layer_cap == 2
    worker.load = SHED_ABOVE + 0.1
    worker._adjust_load(10.0)
    worker._adjust_load(11.0)
    assert worker.layer_cap == 0
    assert worker.counters.overload_shed_steps == 2
    worker._adjust_load(12.0)  # cannot go below the base layer
    assert worker.layer_cap == 0
    worker.load = 0.1
    worker._adjust_load(13.0)
    assert worker.layer_cap == 0  # not calm for long enough yet
    worker._adjust_load(20.0)
    worker._adjust_load(30.0)
    assert worker.layer_cap == 2


def test_commands_reject_unknown_ids_with_a_media_error() -> None:
    worker = Worker()
    with pytest.raises(MediaError):
        worker.create_transport("nope")
    router_id = worker.create_router()
    with pytest.raises(MediaError):
        worker.create_router(router_id)
    with pytest.raises(MediaError):
        worker.consume("nope", "nope")
    with pytest.raises(MediaError):
        worker.set_preferred_layer("nope", 0)
    worker.close_transport("nope")  # closing what is gone is not an error


async def test_checks_from_outside_the_allowed_networks_get_no_answer() -> None:
    import os
    import socket

    from incamera.media import stun

    worker = Worker(listen_ip="127.0.0.1", allowed_remote_networks=("10.0.0.0/8",))
    await worker.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        router_id = worker.create_router()
        info = worker.create_transport(router_id)
        ufrag, password = info.ice_parameters.username_fragment, info.ice_parameters.password
        request = stun.build(
            stun.BINDING_REQUEST,
            os.urandom(12),
            [
                (stun.USERNAME, f"{ufrag}:peer".encode()),
                (stun.ICE_CONTROLLING, os.urandom(8)),
                (stun.USE_CANDIDATE, b""),
            ],
            password.encode(),
        )
        sock.sendto(request, worker.address)
        for _ in range(50):  # bounded: until the worker has read it
            await asyncio.sleep(0.02)
            if worker.counters.datagrams_received:
                break
        await asyncio.sleep(0.1)
        with pytest.raises(BlockingIOError):
            sock.recvfrom(2048)  # 127.0.0.1 is not in 10.0.0.0/8: no answer at all
        assert worker.counters.source_refused == 1
        assert worker.transports[info.id].ice.selected is None
        worker.allowed_networks = ()  # anywhere: the same check is answered
        sock.sendto(request, worker.address)
        data = b""
        for _ in range(50):  # bounded: until the answer is there
            await asyncio.sleep(0.02)
            try:
                data, _ = sock.recvfrom(2048)
                break
            except BlockingIOError:
                continue
        assert stun.StunMessage.parse(data).message_type == stun.BINDING_SUCCESS
    finally:
        sock.close()
        await worker.close()
