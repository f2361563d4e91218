"""A Worker: one event loop, one UDP port, many routers.

All media of the worker's transports arrives on one UDP socket and is demultiplexed by the
first byte (RFC 7983): STUN goes to the transport named by the ICE username's local ufrag;
DTLS and SRTP/SRTCP go to the transport that owns the remote address (learnt from an
authenticated ICE check). No datagram, however malformed, can raise out of
``datagram_received``: parse errors are counted and dropped, and any other exception is
counted as an internal error so one bad packet never kills the worker.

The worker's methods are the media plane's command API (see ``api.py`` and
``docs/architecture.md``); ``process.py`` exposes them to other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import replace

from . import stun
from .api import (
    ConsumerInfo,
    ConsumerLayersChanged,
    DtlsParameters,
    IceCandidate,
    TransportInfo,
    TransportState,
    TransportStateChanged,
    WorkerStats,
)
from .capabilities import ROUTER_EXTENSIONS, router_codec_for
from .certificate import Certificate
from .consumer import Consumer
from .counters import Counters
from .errors import MediaError, ParseError
from .producer import Producer
from .router import Router
from .rtp_parameters import Encoding, ExtensionUri, MediaKind, RtpParameters
from .srtp import buffer_pointer
from .tap import MediaTap
from .transport import Transport
from .udp_batch import BatchUdp, PlainUdp, open_batch_io

Address = tuple[str, int]

TICK_INTERVAL = 0.02
ALLOCATE_INTERVAL = 0.5
SPEAKER_INTERVAL = 0.3
SOCKET_BUFFER = 8 * 1024 * 1024

# Overload protection: the share of wall time spent handling datagrams.
SHED_ABOVE = 0.85
RESTORE_BELOW = 0.55
RESTORE_AFTER = 3.0  # seconds of calm before one layer is given back

CONSUMER_EXTENSIONS = tuple(
    ext
    for ext in ROUTER_EXTENSIONS
    if ext.uri not in (ExtensionUri.RID, ExtensionUri.REPAIRED_RID, ExtensionUri.ABS_SEND_TIME)
)


def _new_id() -> str:
    return secrets.token_hex(8)


def _random_ssrc(taken: set[int]) -> int:
    while True:
        ssrc = secrets.randbits(32)
        if ssrc and ssrc not in taken:
            taken.add(ssrc)
            return ssrc


class Worker:
    def __init__(
        self,
        worker_id: int = 0,
        listen_ip: str = "127.0.0.1",
        port: int = 0,
        announced_ips: tuple[str, ...] = (),
        emit: Callable[[object], None] | None = None,
        certificate: Certificate | None = None,
        allowed_remote_networks: tuple[str, ...] = (),
        tap_path: str | None = None,
    ) -> None:
        self.worker_id = worker_id
        # Test-only: record every forwarded packet (media/tap.py).
        self.tap = MediaTap(tap_path) if tap_path else None
        # Where peers may connect from (CIDRs; empty: anywhere). A check from elsewhere is
        # dropped without an answer, so the worker never sends to such an address.
        self.allowed_networks = tuple(
            ipaddress.ip_network(net, strict=False) for net in allowed_remote_networks
        )
        self.listen_ip = listen_ip
        self.port = port
        self.announced_ips = announced_ips or (listen_ip,)
        self._emit = emit or (lambda event: None)
        self.certificate = certificate or Certificate.generate()
        self.counters = Counters()
        self.routers: dict[str, Router] = {}
        self.transports: dict[str, Transport] = {}
        self.producers: dict[str, Producer] = {}
        self.consumers: dict[str, Consumer] = {}
        self._by_ufrag: dict[str, Transport] = {}
        self._by_addr: dict[Address, Transport] = {}
        self._ssrcs: set[int] = set()
        self._sock: socket.socket | None = None
        self._io: BatchUdp | PlainUdp | None = None
        self._slot_pointers: list[object] = []
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self.layer_cap = 2
        self._busy = 0.0
        self._busy_window_start = 0.0
        self._calm_since = 0.0
        self.load = 0.0
        self._next_allocate = 0.0
        self._next_speaker = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.listen_ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        sock.bind((self.listen_ip, self.port))
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self._sock = sock
        self._io = open_batch_io(sock)
        if isinstance(self._io, BatchUdp):
            self._io.on_names_reset = self._destinations_reset
        self._slot_pointers = [buffer_pointer(address) for address in self._io.addresses]
        self._loop = loop
        loop.add_reader(sock.fileno(), self._on_readable)
        now = time.monotonic()
        self._busy_window_start = now
        self._calm_since = now
        self._tick_task = asyncio.create_task(self._tick_loop())

    async def close(self) -> None:
        for transport in list(self.transports.values()):
            transport.close()
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        if self._sock is not None and self._loop is not None:
            self._flush()
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self.tap is not None:
            self.tap.close()

    @property
    def address(self) -> Address:
        return (self.listen_ip, self.port)

    # -- datagram path ---------------------------------------------------------------------

    def _on_readable(self) -> None:
        """Read a batch of datagrams, handle each, then send everything they produced in
        as few system calls as possible."""
        io = self._io
        if io is None:
            return
        self._flush_pending = True  # one flush at the end instead of one per datagram
        try:
            batch = io.recv()
            if batch:
                self._received_batch(batch)
        finally:
            self._flush()

    def _received_batch(self, batch: list[tuple[bytes, Address]]) -> None:
        """``datagram_received`` for a whole ``recvmmsg`` batch: the clock is read and the
        busy time measured once per batch, and SRTP from a known address (nearly all of
        the traffic) goes straight to its transport; everything else takes the general
        path. Same counting and the same guarantees: nothing raises out of here."""
        started = time.perf_counter()
        counters = self.counters
        counters.datagrams_received += len(batch)
        by_addr = self._by_addr
        now = time.monotonic()
        for data, addr in batch:
            try:
                if data and 127 < data[0] < 192 and len(data) >= 12:
                    transport = by_addr.get(addr)
                    if transport is not None:
                        transport.on_srtp(data, now)
                        continue
                self._dispatch(data, addr)
            except ParseError:
                counters.rtp_malformed += 1
            except Exception:  # the worker must survive any datagram
                counters.internal_errors += 1
        self._busy += time.perf_counter() - started

    def _destinations_reset(self) -> None:
        """The batch I/O freed its kernel-form addresses: transports and fan-out tables
        that cached one look it up again."""
        for transport in self.transports.values():
            transport.forget_destination()
        for producer in self.producers.values():
            producer.invalidate_fanout()

    def _send(self, data: bytes, addr: Address) -> None:
        if self._io is None:
            return
        self._io.send(data, addr)
        self._request_flush()

    def _request_flush(self) -> None:
        if self._flush_pending:
            return
        if self._loop is not None:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        io = self._io
        if io is not None and io.pending:
            before = io.errors
            io.flush()
            self.counters.send_errors += io.errors - before

    def datagram_received(self, data: bytes, addr: Address) -> None:
        started = time.perf_counter()
        self.counters.datagrams_received += 1
        try:
            self._dispatch(data, addr)
        except ParseError:
            self.counters.rtp_malformed += 1
        except Exception:  # the worker must survive any datagram
            self.counters.internal_errors += 1
        finally:
            self._busy += time.perf_counter() - started

    def _dispatch(self, data: bytes, addr: Address) -> None:
        """Demultiplex one datagram (RFC 7983); ParseError and any other exception are
        the caller's to count."""
        counters = self.counters
        if not data:
            counters.datagrams_unclassified += 1
            return
        first = data[0]
        if 127 < first < 192:  # RTP / RTCP
            transport = self._by_addr.get(addr)
            if transport is None:
                counters.datagrams_unknown_source += 1
            elif len(data) < 12:
                counters.rtp_malformed += 1
            else:
                transport.on_srtp(data, time.monotonic())
        elif first < 4:  # STUN
            self._on_stun(data, addr)
        elif 19 < first < 64:  # DTLS
            transport = self._by_addr.get(addr)
            if transport is None:
                counters.datagrams_unknown_source += 1
            else:
                transport.on_dtls(data, time.monotonic())
        else:
            counters.datagrams_unclassified += 1

    def _on_stun(self, data: bytes, addr: Address) -> None:
        if self.allowed_networks and not self._allowed(addr[0]):
            self.counters.source_refused += 1
            return
        try:
            message = stun.StunMessage.parse(data)
        except ParseError:
            self.counters.stun_malformed += 1
            return
        username = message.username() if message.message_type == stun.BINDING_REQUEST else None
        if username is None:
            self.counters.ice_rejected += 1
            return
        transport = self._by_ufrag.get(username.partition(":")[0])
        if transport is None:
            self.counters.ice_rejected += 1
            return
        if transport.on_stun(message, data, addr, time.monotonic()):
            self._by_addr[addr] = transport

    # -- timers ----------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_INTERVAL)
            try:
                self.tick(time.monotonic())
            except Exception:  # keep the timers alive; counted
                self.counters.internal_errors += 1

    def tick(self, now: float) -> None:
        if self.tap is not None:
            self.tap.flush()
        for transport in list(self.transports.values()):
            transport.tick(now)
        elapsed = now - self._busy_window_start
        if elapsed >= 1.0:
            self.load = self._busy / elapsed
            self._busy = 0.0
            self._busy_window_start = now
            self._adjust_load(now)
        if now >= self._next_allocate:
            self._next_allocate = now + ALLOCATE_INTERVAL
            for transport in self.transports.values():
                if transport.consumers:
                    router = self.routers.get(transport.router_id)
                    if router is not None:
                        router.allocate(transport, now, self.layer_cap)
        if now >= self._next_speaker:
            self._next_speaker = now + SPEAKER_INTERVAL
            for router in self.routers.values():
                router.tick_speaker(now)

    def _adjust_load(self, now: float) -> None:
        """Shed the highest simulcast layers when the worker cannot keep up, and give
        them back one at a time after a calm period."""
        if self.load > SHED_ABOVE and self.layer_cap > 0:
            self.layer_cap -= 1
            self.counters.overload_shed_steps += 1
            self._calm_since = now
            self._next_allocate = now
        elif self.load > RESTORE_BELOW:
            self._calm_since = now
        elif self.layer_cap < 2 and now - self._calm_since > RESTORE_AFTER:
            self.layer_cap += 1
            self._calm_since = now

    # -- commands --------------------------------------------------------------------------

    def create_router(self, router_id: str | None = None) -> str:
        router_id = router_id or _new_id()
        if router_id in self.routers:
            raise MediaError(f"router {router_id} exists")
        self.routers[router_id] = Router(router_id, self._emit)
        return router_id

    def close_router(self, router_id: str) -> None:
        router = self._router(router_id)
        for transport_id in list(router.transports):
            self.close_transport(transport_id)
        del self.routers[router_id]

    def create_transport(self, router_id: str, transport_id: str | None = None) -> TransportInfo:
        router = self._router(router_id)
        transport_id = transport_id or _new_id()
        if transport_id in self.transports:
            raise MediaError(f"transport {transport_id} exists")
        candidates = tuple(
            IceCandidate(
                foundation=str(i + 1),
                priority=(126 << 24) | ((65535 - i) << 8) | 255,  # host, RFC 8445 5.1.2
                ip=ip,
                port=self.port,
            )
            for i, ip in enumerate(self.announced_ips)
        )
        transport = Transport(
            transport_id,
            router_id,
            self.certificate,
            candidates,
            self._send,
            self.counters,
            self._on_transport_state,
            self._require_io(),
            self._slot_pointers,
            self._request_flush,
        )
        transport.tap = self.tap
        self.transports[transport_id] = transport
        router.transports[transport_id] = transport
        self._by_ufrag[transport.ice.ufrag] = transport
        return transport.info()

    def connect_transport(
        self, transport_id: str, dtls_parameters: DtlsParameters, remote_ufrag: str | None = None
    ) -> None:
        self._transport(transport_id).connect(dtls_parameters, remote_ufrag)

    def restart_ice(self, transport_id: str) -> TransportInfo:
        """New ICE credentials for a transport (the client restarts ICE after a network
        change); DTLS and SRTP state are kept."""
        transport = self._transport(transport_id)
        self._by_ufrag.pop(transport.ice.ufrag, None)
        transport.ice.restart()
        self._by_ufrag[transport.ice.ufrag] = transport
        return transport.info()

    def close_transport(self, transport_id: str) -> None:
        transport = self.transports.pop(transport_id, None)
        if transport is None:
            return
        for producer_id in list(transport.producers):
            self.close_producer(producer_id)
        for consumer_id in list(transport.consumers):
            self.close_consumer(consumer_id)
        transport.close()
        self._by_ufrag.pop(transport.ice.ufrag, None)
        for addr in [a for a, t in self._by_addr.items() if t is transport]:
            del self._by_addr[addr]
        router = self.routers.get(transport.router_id)
        if router is not None:
            router.transports.pop(transport_id, None)

    def produce(
        self, transport_id: str, rtp_parameters: RtpParameters, producer_id: str | None = None
    ) -> str:
        transport = self._transport(transport_id)
        router = self._router(transport.router_id)
        producer_id = producer_id or _new_id()
        if producer_id in self.producers:
            raise MediaError(f"producer {producer_id} exists")
        producer = Producer(
            producer_id,
            transport_id,
            rtp_parameters,
            transport.request_keyframe,
            router.on_audio_level if rtp_parameters.kind is MediaKind.AUDIO else None,
        )
        transport.add_producer(producer)
        router.producers[producer_id] = producer
        self.producers[producer_id] = producer
        return producer_id

    def close_producer(self, producer_id: str) -> None:
        producer = self.producers.pop(producer_id, None)
        if producer is None:
            return
        for consumer in list(producer.consumers):
            self.close_consumer(consumer.id)
        producer.close()
        transport = self.transports.get(producer.transport_id)
        if transport is not None:
            transport.remove_producer(producer)
        for router in self.routers.values():
            router.remove_producer(producer)

    def pause_producer(self, producer_id: str, paused: bool = True) -> None:
        producer = self._producer(producer_id)
        was = producer.paused
        producer.paused = paused
        if was and not paused:
            now = time.monotonic()
            for consumer in producer.consumers:
                consumer.resync(now)

    def consume(
        self,
        transport_id: str,
        producer_id: str,
        mid: str = "",
        consumer_id: str | None = None,
        paused: bool = False,
    ) -> ConsumerInfo:
        transport = self._transport(transport_id)
        producer = self._producer(producer_id)
        if (
            transport.router_id not in self.routers
            or producer_id not in self._router(transport.router_id).producers
        ):
            raise MediaError("producer and transport are in different routers")
        router_codec = router_codec_for(producer.codec)
        assert router_codec is not None  # the producer only keeps forwardable codecs
        video = producer.kind is MediaKind.VIDEO
        encoding = Encoding(
            ssrc=_random_ssrc(self._ssrcs),
            rtx_ssrc=_random_ssrc(self._ssrcs) if video else None,
        )
        params = RtpParameters(
            mid=mid,
            kind=producer.kind,
            codecs=(router_codec if video else replace(router_codec, rtx_payload_type=None),),
            header_extensions=CONSUMER_EXTENSIONS,
            encodings=(encoding,),
            cname=producer.rtp_parameters.cname,
        )
        consumer_id = consumer_id or _new_id()
        if consumer_id in self.consumers:
            raise MediaError(f"consumer {consumer_id} exists")
        consumer = Consumer(
            consumer_id,
            producer,
            params,
            transport.send_rtp,
            self._on_layer_change,
            transport=transport,
        )
        consumer.paused = paused
        producer.consumers.append(consumer)
        producer.invalidate_fanout()
        transport.add_consumer(consumer)
        self.consumers[consumer_id] = consumer
        self._router(transport.router_id).consumers[consumer_id] = consumer
        if video:
            consumer.choose_target(time.monotonic())
            consumer.request_keyframe(time.monotonic())
            self._next_allocate = 0.0
        return ConsumerInfo(consumer_id, producer_id, params)

    def close_consumer(self, consumer_id: str) -> None:
        consumer = self.consumers.pop(consumer_id, None)
        if consumer is None:
            return
        consumer.close()
        for transport in self.transports.values():
            if consumer_id in transport.consumers:
                transport.remove_consumer(consumer)
        for router in self.routers.values():
            router.consumers.pop(consumer_id, None)

    def pause_consumer(self, consumer_id: str, paused: bool = True) -> None:
        consumer = self._consumer(consumer_id)
        was = consumer.paused
        consumer.paused = paused
        if was and not paused:
            consumer.resync(time.monotonic())

    def set_preferred_layer(self, consumer_id: str, spatial_layer: int) -> None:
        consumer = self._consumer(consumer_id)
        consumer.set_preferred_layer(spatial_layer)
        consumer.choose_target(time.monotonic())
        self._next_allocate = 0.0

    def set_max_size(self, consumer_id: str, width: int, height: int) -> int:
        """Prefer the smallest layer at least ``width`` x ``height`` (the tile's size)."""
        consumer = self._consumer(consumer_id)
        layer = consumer.layer_for_size(width, height)
        self.set_preferred_layer(consumer_id, layer)
        return layer

    def request_keyframe(self, consumer_id: str) -> None:
        self._consumer(consumer_id).request_keyframe(time.monotonic())

    def stats(self) -> WorkerStats:
        counters = self.counters.as_dict()
        counters["transports"] = len(self.transports)
        counters["producers"] = len(self.producers)
        counters["consumers"] = len(self.consumers)
        counters["layer_cap"] = self.layer_cap
        counters["load_percent"] = int(self.load * 100)
        return WorkerStats(self.worker_id, counters)

    def consumer_stats(self, consumer_id: str) -> dict[str, int | None]:
        c = self._consumer(consumer_id)
        return {
            "packets_sent": c.packets_sent,
            "retransmissions_sent": c.retransmissions_sent,
            "current_layer": c.current_layer,
            "target_layer": c.target_layer,
            "preferred_layer": c.preferred_layer,
            "allowed_layer": c.allowed_layer,
            "keyframe_requests": c.keyframe_requests,
        }

    # -- helpers ---------------------------------------------------------------------------

    def _on_transport_state(self, transport: Transport, state: TransportState, reason: str) -> None:
        self._emit(TransportStateChanged(transport.id, state, reason))

    def _on_layer_change(self, consumer: Consumer, layer: int | None) -> None:
        self._emit(ConsumerLayersChanged(consumer.id, layer))

    def _allowed(self, ip: str) -> bool:
        try:
            address = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)

    def _require_io(self) -> BatchUdp | PlainUdp:
        if self._io is None:
            raise MediaError("the worker is not started")
        return self._io

    def _router(self, router_id: str) -> Router:
        try:
            return self.routers[router_id]
        except KeyError:
            raise MediaError(f"no router {router_id}") from None

    def _transport(self, transport_id: str) -> Transport:
        try:
            return self.transports[transport_id]
        except KeyError:
            raise MediaError(f"no transport {transport_id}") from None

    def _producer(self, producer_id: str) -> Producer:
        try:
            return self.producers[producer_id]
        except KeyError:
            raise MediaError(f"no producer {producer_id}") from None

    def _consumer(self, consumer_id: str) -> Consumer:
        try:
            return self.consumers[consumer_id]
        except KeyError:
            raise MediaError(f"no consumer {consumer_id}") from None
