"""The steady-state fan-out (``Transport.fan_out``) against the reference path
(``Consumer.on_packet`` + ``send_rtp``): a worker with real ICE/DTLS/SRTP subscribers
(``incamera.bench.peer``) must send each of them exactly what a consumer without a
transport (always the reference path) computes from the same packets, across pauses,
reordering, NACKs and closing."""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from incamera.bench.hotpath import fanout_session
from incamera.bench.peer import SyntheticPeer, connect_peers_async
from incamera.bench.vp8_source import Vp8Source, vp8_parameters
from incamera.media import udp_batch
from incamera.media.consumer import Consumer
from incamera.media.producer import Producer, template_payload_offset
from incamera.media.rtp_parameters import Encoding, MediaKind
from incamera.media.worker import Worker

SSRC = 0x1234
FANOUT = 3


class Sink:
    """A reference consumer's output: (seq, timestamp) of each packet."""

    def __init__(self) -> None:
        self.packets: list[tuple[int, int]] = []

    def __call__(self, template, ssrc, seq, ts, now, patch=None) -> None:  # type: ignore[no-untyped-def]
        self.packets.append((seq, ts))


class Setup:
    def __init__(
        self, worker: Worker, publisher: SyntheticPeer, subscribers: list[SyntheticPeer]
    ) -> None:
        self.worker = worker
        self.publisher = publisher
        self.subscribers = subscribers
        self.producer: Producer = next(iter(worker.producers.values()))
        self.consumers: list[Consumer] = [
            next(iter(worker.transports[peer.server.id].consumers.values())) for peer in subscribers
        ]
        self.source = Vp8Source(SSRC, 200)
        self.ts = 0
        self.received: list[list[tuple[int, int, int]]] = [[] for _ in subscribers]

    def make(self, count: int) -> list[bytes]:
        out = []
        for _ in range(count):
            self.ts += 3000
            out.append(self.source.next_packet(self.ts))
        return out

    def feed(self, plain: list[bytes]) -> None:
        assert self.publisher.srtp is not None
        for packet in plain:
            protected = self.publisher.srtp.protect(packet)
            self.worker.datagram_received(protected, self.publisher.local_addr)
        self.worker._flush()

    async def drain(self) -> None:
        await asyncio.sleep(0.05)
        for i, peer in enumerate(self.subscribers):
            assert peer.srtp is not None
            while True:
                try:
                    data = peer.sock.recv(2048)
                except BlockingIOError:
                    break
                if not 127 < data[0] < 192 or 191 < data[1] < 224:
                    continue  # STUN/DTLS, RTCP
                plain = peer.srtp.unprotect(data)
                seq, ts, ssrc = struct.unpack_from("!HII", plain, 2)
                self.received[i].append((seq, ts, ssrc))


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    worker, publisher, subscribers = await fanout_session(FANOUT, SSRC)
    try:
        yield Setup(worker, publisher, subscribers)
    finally:
        publisher.close()
        for peer in subscribers:
            peer.close()
        await worker.close()


def reference(setup: Setup) -> tuple[Consumer, Sink]:
    """A consumer of the same producer without a transport: always ``on_packet``."""
    sink = Sink()
    consumer = Consumer("ref", setup.producer, setup.consumers[0].rtp_parameters, sink)
    setup.producer.consumers.append(consumer)
    setup.producer.invalidate_fanout()
    consumer.choose_target(0.0)
    return consumer, sink


async def test_fan_out_sends_what_on_packet_computes(setup: Setup) -> None:
    ref, sink = reference(setup)
    setup.source.request_keyframe()
    setup.feed(setup.make(50))
    stream = setup.producer.streams[0]
    assert stream.fanout is not None
    fast, slow, kernel = stream.fanout
    assert len(fast) == FANOUT and slow == [ref] and kernel is not None
    await setup.drain()
    for i, consumer in enumerate(setup.consumers):
        got = setup.received[i]
        assert [(seq, ts) for seq, ts, _ in got] == sink.packets
        assert {ssrc for _, _, ssrc in got} == {consumer.ssrc}
        for name in ("packets_sent", "octets_sent", "_last_seq", "_last_ts", "_last_in_seq"):
            assert getattr(consumer, name) == getattr(ref, name), name
        assert consumer._hist_seq == ref._hist_seq
        assert consumer._hist_src == ref._hist_src
        assert consumer._hist_ts == ref._hist_ts
    # Transport-wide sequence numbers: one per packet, per subscriber transport.
    for peer in setup.subscribers:
        transport = setup.worker.transports[peer.server.id]
        assert transport.downlink.seq == len(sink.packets)
    assert setup.worker.counters.rtp_sent == FANOUT * len(sink.packets)


async def test_pause_reorder_nack_and_close_keep_the_reference_behaviour(setup: Setup) -> None:
    ref, sink = reference(setup)
    setup.source.request_keyframe()
    setup.feed(setup.make(20))
    first, second = setup.consumers[0], setup.consumers[1]

    # Pause one consumer (and the reference alike): the others stay in the fast table.
    first.paused = ref.paused = True
    setup.feed(setup.make(10))
    fast, slow, _ = setup.producer.streams[0].fanout  # type: ignore[misc]
    assert len(fast) == FANOUT - 1 and first in slow
    first.paused = ref.paused = False
    first.resync(1.0)
    ref.resync(1.0)
    setup.feed(setup.make(5))  # no key frame yet: nothing for the resumed ones
    setup.source.request_keyframe()
    setup.feed(setup.make(10))

    # Reordering: a packet held back arrives after two newer ones.
    packets = setup.make(3)
    setup.feed([packets[1], packets[2], packets[0]])
    setup.feed(setup.make(5))
    await setup.drain()
    assert [(s, t) for s, t, _ in setup.received[0]] == sink.packets
    for name in ("packets_sent", "_last_seq", "_last_ts"):
        assert getattr(first, name) == getattr(ref, name), name
    assert len(setup.received[1]) == len(sink.packets) + 15  # never paused nor waiting

    # NACK for a packet sent by the fan-out kernel: answered from the history.
    last = second._last_seq
    assert second.on_nack([last, (last - 3) & 0xFFFF], 1.0) == 2
    assert second.retransmissions_sent == 2

    # Closing: no more packets for it, the others go on.
    setup.worker.close_consumer(second.id)
    before = [len(r) for r in setup.received]
    setup.feed(setup.make(5))
    await setup.drain()
    after = [len(r) for r in setup.received]
    assert after[1] == before[1] + 2  # the two retransmissions only (RTX SSRC)
    assert after[0] == before[0] + 5 and after[2] == before[2] + 5


async def test_cached_destinations_are_dropped_when_the_address_cache_is_emptied(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # BatchUdp frees its kernel-form addresses when its cache is full; the transports'
    # and the fan-out tables' copies must not outlive them.
    setup.source.request_keyframe()
    setup.feed(setup.make(10))
    io = setup.worker._io
    assert isinstance(io, udp_batch.BatchUdp)
    monkeypatch.setattr(udp_batch, "NAME_CACHE_LIMIT", len(io._names) + 2)
    for port in range(1, 4):  # strangers fill the cache: it is emptied once
        io.destination(("127.0.0.2", port))
    assert len(io._names) < udp_batch.NAME_CACHE_LIMIT
    assert setup.producer.streams[0].fanout is None
    setup.feed(setup.make(10))
    await setup.drain()
    assert [len(r) for r in setup.received] == [20] * FANOUT
    assert setup.worker.counters.send_errors == 0


class PictureIdSink(Sink):
    """A reference consumer's output with the VP8 picture id after its patch."""

    def __call__(self, template, ssrc, seq, ts, now, patch=None) -> None:  # type: ignore[no-untyped-def]
        packet = bytearray(template) + bytes(64)  # room as in a send slot
        if patch is not None:
            patch(memoryview(packet))
        self.packets.append((seq, struct.unpack_from("!H", packet, VIDEO_PAYLOAD + 2)[0]))


VIDEO_PAYLOAD = template_payload_offset(MediaKind.VIDEO)


async def test_after_a_layer_switch_picture_ids_are_rewritten_as_on_packet_does() -> None:
    worker = Worker(0, "127.0.0.1", 0)
    await worker.start()
    router_id = worker.create_router()
    info = worker.create_transport(router_id)
    publisher = SyntheticPeer(info, name="publisher")
    worker.connect_transport(info.id, publisher.dtls_parameters, publisher.ufrag)
    ssrcs = (0x1111, 0x2222)
    single = vp8_parameters(ssrcs[0])
    params = replace(single, encodings=tuple(Encoding(ssrc=s) for s in ssrcs))
    producer_id = worker.produce(info.id, params)
    subscribers, ids = [], []
    for i in range(2):
        info = worker.create_transport(router_id)
        peer = SyntheticPeer(info, name=f"subscriber{i}")
        worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
        ids.append(worker.consume(info.id, producer_id, mid="0").id)
        subscribers.append(peer)
    try:
        await connect_peers_async([publisher, *subscribers], timeout=20)
        producer = worker.producers[producer_id]
        sink = PictureIdSink()
        ref = Consumer("ref", producer, worker.consumers[ids[0]].rtp_parameters, sink)
        producer.consumers.append(ref)
        producer.invalidate_fanout()
        sources = [Vp8Source(s, 200) for s in ssrcs]
        ts = 0

        def feed(frames: int) -> None:
            nonlocal ts
            assert publisher.srtp is not None
            for _ in range(frames):
                ts += 3000
                for source in sources:
                    packet = publisher.srtp.protect(source.next_packet(ts))
                    worker.datagram_received(packet, publisher.local_addr)
            worker._flush()

        feed(10)  # layer 0 from its first key frame
        for consumer_id in ids:
            # The bandwidth allocation (the worker's timer) must not hold them back.
            worker.consumers[consumer_id].allowed_layer = 1
            worker.set_preferred_layer(consumer_id, 1)
        ref.set_preferred_layer(1)
        ref.choose_target(time.monotonic())
        feed(3)
        sources[1].request_keyframe()
        feed(10)  # switched to layer 1 on its key frame; picture ids rewritten from there
        consumers = [worker.consumers[i] for i in ids]
        assert all(c.current_layer == 1 and c._vp8_active for c in [*consumers, ref])
        fast, _slow, _ = producer.streams[1].fanout  # type: ignore[misc]
        assert {entry[0] for entry in fast} == set(consumers)
        await asyncio.sleep(0.05)
        for peer in subscribers:
            assert peer.srtp is not None
            got = []
            while True:
                try:
                    data = peer.sock.recv(2048)
                except BlockingIOError:
                    break
                if 127 < data[0] < 192 and not 191 < data[1] < 224:
                    plain = peer.srtp.unprotect(data)
                    seq = struct.unpack_from("!H", plain, 2)[0]
                    got.append((seq, struct.unpack_from("!H", plain, VIDEO_PAYLOAD + 2)[0]))
            assert got == sink.packets
    finally:
        publisher.close()
        for peer in subscribers:
            peer.close()
        await worker.close()
