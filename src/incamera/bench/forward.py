"""``incamera bench forward``: how many SRTP packets one SFU worker forwards per CPU-second.

One media worker runs in its own process (as in production, through ``WorkerClient``).
This process is the load generator: ``--publishers`` synthetic peers each publish one VP8
stream at ``--rate`` packets/s, and ``--fanout`` synthetic peers per publisher each consume
it, every one a real ICE + DTLS + SRTP session on 127.0.0.1 (see ``peer.py``).

What is measured, after a warm-up (ICE, DTLS, first key frame at every subscriber, then a
second of steady traffic) that is excluded:

- ``pps_per_core``: RTP packets the subscribers received during the window divided by the
  CPU time (user + system) the worker process spent in the same window. The window ends
  after a drain (at least 0.3 s, longer while packets still arrive, at most 2 s), so
  packets in flight are counted with the CPU spent forwarding them.
- ``forwarded_pps``: the same packets per second of sending (the window without the drain).
- ``p50/p99_latency_ms``: receive time at the subscriber minus send time at the publisher,
  both on this machine's monotonic clock (so it includes loopback and this process's own
  scheduling, which is small next to the SFU's queueing when the worker is saturated).
- ``loss``: the fraction of (packets sent in the window x fan-out) not received by the end
  of the drain. Packets are attributed to the window by their send time, which the
  publisher writes in the RTP timestamp (90 kHz) and the SFU keeps; latency percentiles
  are over the same packets.

The load generator does not SRTP-unprotect every received packet (the RTP header is in
clear); it unprotects every ``SAMPLE_EVERY``-th packet per subscriber and reports
authentication failures, which must be zero.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import select
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from incamera.media import fanout_kernel, rtcp
from incamera.media.errors import ParseError
from incamera.media.process import WorkerClient, WorkerConfig
from incamera.media.srtp import SrtpError, SrtpSession

from .peer import SyntheticPeer, connect_peers
from .vp8_source import Vp8Source, vp8_parameters

GOAL_PPS = 100_000  # forwarded packets per second the default rate offers
WARMUP_TIMEOUT = 30.0  # ICE + DTLS + first key frame at every subscriber
SETTLE = 1.0  # steady traffic after the warm-up, before the window opens
# Receiving after the last send, inside the window: at least DRAIN, then until nothing has
# arrived for DRAIN_QUIET (late packets still count), at most DRAIN_MAX.
DRAIN = 0.3
DRAIN_QUIET = 0.1
DRAIN_MAX = 2.0
SAMPLE_EVERY = 50  # SRTP-unprotect one received packet in this many, per subscriber
KEYFRAME_INTERVAL = 1.0
BURST = 64  # at most this many packets per publisher per loop pass
TIMER_INTERVAL = 0.1  # consent checks and other slow timers
TICKS_PER_SECOND = 90000
LATENCY_CAP = 10 * TICKS_PER_SECOND  # latencies above ten seconds share the last bucket
MASK32 = 0xFFFFFFFF
_unpack_ts = struct.Struct("!I").unpack_from


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float = 10.0
    fanout: int = 10
    publishers: int = 1
    rate: int | None = None  # per publisher; None: GOAL_PPS / (publishers * fanout)
    size: int = 1200
    port: int = 0
    json: bool = False
    pin: bool = True
    kernel: str | None = None  # fan-out kernel of the worker: "c", "python", None: default

    @property
    def effective_rate(self) -> int:
        if self.rate is not None:
            return self.rate
        return max(1, math.ceil(GOAL_PPS / (self.publishers * self.fanout)))


@dataclass(eq=False)
class Publisher:
    peer: SyntheticPeer
    source: Vp8Source
    srtp: SrtpSession | None = None
    sent: int = 0  # in the current phase
    sent_in_window: int = 0
    plis: int = 0
    nacks: int = 0
    rtcp: int = 0


@dataclass(eq=False)
class Subscriber:
    peer: SyntheticPeer
    publisher: Publisher
    srtp: SrtpSession | None = None
    received: int = 0  # RTP packets, whole run
    in_window: int = 0
    rtcp: int = 0
    sampled: int = 0
    sample_failures: dict[str, int] = field(default_factory=dict)


class LoadGenerator:
    """The publishers and subscribers of one run, and the send/receive loop."""

    def __init__(self, publishers: list[Publisher], subscribers: list[Subscriber], rate: int):
        self.publishers = publishers
        self.subscribers = subscribers
        self.rate = rate
        self.histogram = [0] * (LATENCY_CAP + 1)
        self._window: tuple[int, int] | None = None  # (first ts, span) in 90 kHz ticks
        self._poller = select.poll()
        self._by_fd: dict[int, Publisher | Subscriber] = {}
        for endpoint in [*publishers, *subscribers]:
            self._by_fd[endpoint.peer.fileno()] = endpoint
            self._poller.register(endpoint.peer.fileno(), select.POLLIN)
        self._next_keyframe = 0.0
        self.received_before = 0
        self.received_during = 0  # RTP packets read by subscribers during the window

    # -- phases ------------------------------------------------------------------------

    def connect(self, timeout: float) -> None:
        peers = [e.peer for e in [*self.publishers, *self.subscribers]]
        early = connect_peers(peers, timeout)
        for endpoint in [*self.publishers, *self.subscribers]:
            endpoint.srtp = endpoint.peer.srtp
            for datagram in early[endpoint.peer]:
                if isinstance(endpoint, Publisher):
                    self._on_publisher_datagram(endpoint, datagram)

    def warm_up(self, deadline: float) -> None:
        """Send until every subscriber has received a packet, then SETTLE more seconds."""
        started = time.monotonic()
        self._run(
            until=deadline,
            send=True,
            phase_start=started,
            stop=lambda: all(s.received for s in self.subscribers),
        )
        if not all(s.received for s in self.subscribers):
            waiting = sum(1 for s in self.subscribers if not s.received)
            raise TimeoutError(f"{waiting} subscribers received nothing within the warm-up")
        now = time.monotonic()
        self._run(until=now + SETTLE, send=True, phase_start=started)

    def measure(self, seconds: float) -> float:
        """Send for ``seconds`` then drain; returns the send duration actually achieved."""
        start = time.monotonic()
        for publisher in self.publishers:
            publisher.sent = 0
        self.received_before = sum(s.received for s in self.subscribers)
        first_ts = int(start * TICKS_PER_SECOND) & MASK32
        # Until the end is known, the window is open-ended (half the 32-bit range).
        self._window = (first_ts, 0x7FFFFFFF)
        self._run(until=start + seconds, send=True, phase_start=start)
        stop = time.monotonic()
        for publisher in self.publishers:
            publisher.sent_in_window = publisher.sent
        self._window = (first_ts, (int(stop * TICKS_PER_SECOND) - first_ts) & MASK32)
        self._run(until=stop + DRAIN, send=False, phase_start=stop)
        last = [sum(s.received for s in self.subscribers), time.monotonic()]

        def quiet() -> bool:
            now = time.monotonic()
            received = sum(s.received for s in self.subscribers)
            if received != last[0]:
                last[:] = [received, now]
            return now - last[1] >= DRAIN_QUIET

        self._run(until=stop + DRAIN_MAX, send=False, phase_start=stop, stop=quiet)
        self.received_during = sum(s.received for s in self.subscribers) - self.received_before
        return stop - start

    # -- the loop ----------------------------------------------------------------------

    def _run(
        self,
        until: float,
        send: bool,
        phase_start: float,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        rate = self.rate
        interval = 1.0 / rate
        poll = self._poller.poll
        by_fd = self._by_fd
        publishers = self.publishers
        monotonic = time.monotonic
        next_timers = 0.0
        while True:
            now = monotonic()
            if now >= until:
                return
            if now >= next_timers:
                next_timers = now + TIMER_INTERVAL
                self._timers(now)
                if stop is not None and stop():
                    return
            if send:
                # Pacing: whatever is due is sent (up to BURST per pass); then wait for
                # datagrams at least a millisecond, so a fast rate goes out in small bursts
                # rather than with this process spinning against the worker for the CPU.
                elapsed = now - phase_start
                due = int(elapsed * rate) + 1
                behind = False
                for publisher in publishers:
                    backlog = due - publisher.sent
                    if backlog > 0:
                        self._send(publisher, min(backlog, BURST))
                        behind = behind or backlog > BURST
                next_send = phase_start + due * interval
                wait_ms = 0 if behind else max(1, math.ceil((next_send - monotonic()) * 1000))
            else:
                wait_ms = int((min(until, next_timers) - now) * 1000) + 1
            for fd, _ in poll(max(0, min(wait_ms, 50))):
                endpoint = by_fd[fd]
                if isinstance(endpoint, Subscriber):
                    self._receive(endpoint)
                else:
                    self._receive_publisher(endpoint)

    def _timers(self, now: float) -> None:
        for endpoint in [*self.publishers, *self.subscribers]:
            endpoint.peer.poll(now)
        if now >= self._next_keyframe:
            self._next_keyframe = now + KEYFRAME_INTERVAL
            for publisher in self.publishers:
                publisher.source.request_keyframe()

    def _send(self, publisher: Publisher, count: int) -> None:
        srtp = publisher.srtp
        assert srtp is not None
        protect = srtp.protect
        send = publisher.peer.sock.send
        next_packet = publisher.source.next_packet
        monotonic = time.monotonic
        for _ in range(count):
            packet = protect(next_packet(int(monotonic() * TICKS_PER_SECOND)))
            try:
                send(packet)
            except (BlockingIOError, InterruptedError):
                # The socket buffer is full: the packet is not sent and not counted.
                publisher.source.packets -= 1
                break
            publisher.sent += 1

    def _receive(self, sub: Subscriber) -> None:
        """Drain one subscriber's socket: read send times from the clear RTP headers."""
        sock = sub.peer.sock
        recv = sock.recv
        monotonic = time.monotonic
        histogram = self.histogram
        window = self._window
        first_ts, span = window if window is not None else (0, -1)
        received = sub.received
        in_window = sub.in_window
        try:
            while True:
                try:
                    data = recv(2048)
                except (BlockingIOError, InterruptedError):
                    break
                now_ts = int(monotonic() * TICKS_PER_SECOND)
                if not 127 < data[0] < 192:
                    sub.peer.handle(data, now_ts / TICKS_PER_SECOND)  # consent responses
                    continue
                if 191 < data[1] < 224:
                    sub.rtcp += 1  # sender reports from the SFU
                    continue
                received += 1
                ts = _unpack_ts(data, 4)[0]
                if ((ts - first_ts) & MASK32) <= span:
                    in_window += 1
                    delay = (now_ts - ts) & MASK32
                    histogram[delay if delay < LATENCY_CAP else LATENCY_CAP] += 1
                if not received % SAMPLE_EVERY:
                    self._sample(sub, data)
        finally:
            sub.received = received
            sub.in_window = in_window

    def _sample(self, sub: Subscriber, data: bytes) -> None:
        assert sub.srtp is not None
        sub.sampled += 1
        try:
            sub.srtp.unprotect(data)
        except SrtpError as exc:
            sub.sample_failures[exc.reason] = sub.sample_failures.get(exc.reason, 0) + 1

    def _receive_publisher(self, publisher: Publisher) -> None:
        peer = publisher.peer
        for datagram in peer.receive_all(time.monotonic()):
            self._on_publisher_datagram(publisher, datagram)

    def _on_publisher_datagram(self, publisher: Publisher, datagram: bytes) -> None:
        """RTCP from the SFU to a publisher: answer PLI/FIR with a key frame, count NACKs."""
        if publisher.srtp is None or not 191 < datagram[1] < 224:
            return
        try:
            packets = rtcp.parse_compound(publisher.srtp.unprotect_rtcp(datagram))
        except (SrtpError, ParseError):
            return
        publisher.rtcp += 1
        for packet in packets:
            if isinstance(packet, rtcp.PictureLossIndication | rtcp.FullIntraRequest):
                publisher.plis += 1
                publisher.source.request_keyframe()
            elif isinstance(packet, rtcp.GenericNack):
                publisher.nacks += 1

    # -- results -----------------------------------------------------------------------

    def percentile_ms(self, fraction: float) -> float | None:
        total = sum(self.histogram)
        if total == 0:
            return None
        rank = max(1, math.ceil(total * fraction))
        seen = 0
        for ticks, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return round(ticks * 1000 / TICKS_PER_SECOND, 3)
        return None  # pragma: no cover - the loop always reaches the rank

    def close(self) -> None:
        for endpoint in [*self.publishers, *self.subscribers]:
            with contextlib.suppress(OSError):
                endpoint.peer.close()


async def _setup(
    client: WorkerClient, options: Options
) -> tuple[list[Publisher], list[Subscriber]]:
    router_id = await client.create_router()
    publishers: list[Publisher] = []
    subscribers: list[Subscriber] = []
    for p in range(options.publishers):
        info = await client.create_transport(router_id)
        peer = SyntheticPeer(info, name=f"publisher{p}")
        await client.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
        ssrc = 0x10000000 + p
        producer_id = await client.produce(info.id, vp8_parameters(ssrc))
        publisher = Publisher(peer, Vp8Source(ssrc, options.size))
        publishers.append(publisher)
        for s in range(options.fanout):
            info = await client.create_transport(router_id)
            peer = SyntheticPeer(info, name=f"subscriber{p}.{s}")
            await client.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
            await client.consume(info.id, producer_id, mid="0")
            subscribers.append(Subscriber(peer, publisher))
    return publishers, subscribers


def _pin(worker_pid: int | None) -> tuple[int, int] | None:
    """Give the worker the first CPU and this process (the load generator) another one.

    Without it the scheduler tends to wake the load generator on the CPU of the worker
    that just sent it a packet, and the two then share one core. Returns (worker CPU,
    load generator CPU), or None when there are fewer than two CPUs to choose from.
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
        if worker_pid is None or len(cpus) < 2:
            return None
        os.sched_setaffinity(worker_pid, {cpus[0]})
        os.sched_setaffinity(0, {cpus[1]})
    except OSError:
        return None
    return cpus[0], cpus[1]


async def run(options: Options) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring)."""
    client = WorkerClient(WorkerConfig(0, "127.0.0.1", options.port))
    # The worker process inherits the environment it starts with (fanout_kernel.py).
    saved_kernel = os.environ.get(fanout_kernel.ENV)
    if options.kernel is not None:
        os.environ[fanout_kernel.ENV] = options.kernel
    kernel = fanout_kernel.choice()
    try:
        await client.start()
    finally:
        if saved_kernel is None:
            os.environ.pop(fanout_kernel.ENV, None)
        else:
            os.environ[fanout_kernel.ENV] = saved_kernel
    own_affinity = os.sched_getaffinity(0)
    pinned = _pin(client.pid) if options.pin else None
    generator: LoadGenerator | None = None
    try:
        publishers, subscribers = await _setup(client, options)
        generator = LoadGenerator(publishers, subscribers, options.effective_rate)
        started = time.monotonic()
        generator.connect(WARMUP_TIMEOUT)
        generator.warm_up(started + WARMUP_TIMEOUT)
        stats0 = (await client.stats()).counters
        cpu0, wall0 = await client.cpu_seconds(), time.monotonic()
        own0 = time.process_time()
        sent_for = generator.measure(options.seconds)
        cpu1, wall1 = await client.cpu_seconds(), time.monotonic()
        own1 = time.process_time()
        stats1 = (await client.stats()).counters
        result = _report(
            options,
            generator,
            sent_for,
            cpu1 - cpu0,
            wall1 - wall0,
            own1 - own0,
            stats0,
            stats1,
            client.pid,
        )
        result["pinned_cpus"] = list(pinned) if pinned is not None else None
        result["fanout_kernel"] = kernel
        # Other work on the machine shows here: the figures are only comparable when low.
        result["loadavg_1min"] = round(os.getloadavg()[0], 2)
        return result
    finally:
        if generator is not None:
            generator.close()
        await client.stop()
        if pinned is not None:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(0, own_affinity)


def _report(
    options: Options,
    generator: LoadGenerator,
    sent_for: float,
    worker_cpu: float,
    wall: float,
    own_cpu: float,
    stats0: dict[str, int],
    stats1: dict[str, int],
    worker_pid: int | None,
) -> dict[str, Any]:
    sent = sum(p.sent_in_window for p in generator.publishers)
    expected = sent * options.fanout
    delivered = sum(s.in_window for s in generator.subscribers)  # sent in the window
    forwarded = generator.received_during  # received in the window, whenever sent
    sampled = sum(s.sampled for s in generator.subscribers)
    failures: dict[str, int] = {}
    for sub in generator.subscribers:
        for reason, count in sub.sample_failures.items():
            failures[reason] = failures.get(reason, 0) + count
    srtp = generator.subscribers[0].srtp
    worker = {
        key: stats1.get(key, 0) - stats0.get(key, 0)
        for key in (
            "rtp_received",
            "rtp_sent",
            "rtcp_received",
            "rtcp_sent",
            "srtp_auth_failures",
            "srtp_replays",
            "srtp_other_errors",
            "rtp_malformed",
            "send_errors",
            "internal_errors",
            "nacks_sent",
            "plis_sent",
            "overload_shed_steps",
        )
    }
    worker["load_percent"] = stats1.get("load_percent", 0)
    return {
        "pps_per_core": round(forwarded / worker_cpu) if worker_cpu > 0 else 0,
        "fanout": options.fanout,
        "p50_latency_ms": generator.percentile_ms(0.50),
        "p99_latency_ms": generator.percentile_ms(0.99),
        "loss": round(1 - delivered / expected, 6) if expected else 1.0,
        "forwarded_pps": round(forwarded / sent_for) if sent_for > 0 else 0,
        "worker_cpu_percent": round(100 * worker_cpu / wall, 1) if wall > 0 else 0.0,
        "srtp_profile": str(srtp.profile) if srtp is not None else None,
        "packet_size": options.size,
        "publishers": options.publishers,
        "seconds": round(sent_for, 3),
        "rate_per_publisher": generator.rate,
        "offered_pps": generator.rate * options.publishers * options.fanout,
        "packets_sent": sent,
        "packets_expected": expected,
        "packets_delivered": delivered,
        "packets_received_in_window": forwarded,
        "worker_sent_per_cpu_second": (
            round(worker["rtp_sent"] / worker_cpu) if worker_cpu > 0 else 0
        ),
        "worker_cpu_seconds": round(worker_cpu, 4),
        "window_seconds": round(wall, 3),
        "loadgen_cpu_percent": round(100 * own_cpu / wall, 1) if wall > 0 else 0.0,
        "sampled_unprotects": sampled,
        "sample_auth_failures": failures.get("auth", 0),
        "sample_other_failures": sum(v for k, v in failures.items() if k != "auth"),
        "keyframes_sent": sum(p.source.keyframes for p in generator.publishers),
        "plis_received": sum(p.plis for p in generator.publishers),
        "nacks_received": sum(p.nacks for p in generator.publishers),
        "worker": worker,
        "worker_pid": worker_pid,
    }


def _summary(result: dict[str, Any]) -> str:
    w = result["worker"]
    return "\n".join(
        [
            f"incamera bench forward: {result['publishers']} publisher(s) x fan-out "
            f"{result['fanout']}, {result['packet_size']}-byte packets, "
            f"{result['srtp_profile']}, {result['seconds']} s",
            f"  offered          {result['offered_pps']:>10,} packets/s to subscribers "
            f"({result['rate_per_publisher']:,}/s per publisher)",
            f"  forwarded        {result['forwarded_pps']:>10,} packets/s",
            f"  per worker core  {result['pps_per_core']:>10,} packets per CPU-second "
            f"(worker CPU {result['worker_cpu_percent']}%)",
            f"  loss             {result['loss']:>10.4%}",
            f"  latency          p50 {result['p50_latency_ms']} ms, "
            f"p99 {result['p99_latency_ms']} ms",
            f"  SRTP samples     {result['sampled_unprotects']:,} unprotected, "
            f"{result['sample_auth_failures']} auth failures",
            f"  worker counters  rtp in {w['rtp_received']:,}, rtp out {w['rtp_sent']:,}, "
            f"srtp auth failures {w['srtp_auth_failures']}, send errors {w['send_errors']}, "
            f"internal errors {w['internal_errors']}",
            f"  load generator   CPU {result['loadgen_cpu_percent']}%",
            f"  fan-out kernel   {result['fanout_kernel']}",
        ]
    )


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        prog="incamera bench forward",
        description="SFU forwarding rate of one media worker with real ICE/DTLS/SRTP "
        "sessions on 127.0.0.1.",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seconds", type=float, default=10.0, help="measurement window")
    parser.add_argument("--fanout", type=int, default=10, help="subscribers per publisher")
    parser.add_argument("--publishers", type=int, default=1, help="synthetic publishers")
    parser.add_argument(
        "--rate",
        type=int,
        default=None,
        help=f"packets/s per publisher (default: {GOAL_PPS:,} forwarded packets/s in total)",
    )
    parser.add_argument("--size", type=int, default=1200, help="RTP packet size in bytes")
    parser.add_argument("--port", type=int, default=0, help="worker UDP port (default: any)")
    parser.add_argument(
        "--no-pin",
        dest="pin",
        action="store_false",
        help="do not pin the worker and the load generator to separate CPUs",
    )
    parser.add_argument(
        "--kernel",
        choices=("c", "python"),
        default=None,
        help="the worker's fan-out kernel (default: C where it is built)",
    )
    args = parser.parse_args(argv)
    if args.kernel == "c" and not fanout_kernel.available():
        parser.error("--kernel c: the C fan-out kernel is not built")
    if args.seconds <= 0 or args.fanout < 1 or args.publishers < 1:
        parser.error("--seconds, --fanout and --publishers must be positive")
    if args.rate is not None and args.rate < 1:
        parser.error("--rate must be positive")
    if not 64 <= args.size <= 1300:
        parser.error("--size must be 64..1300 (libsrtp refuses larger packets)")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be 0..65535")
    return Options(
        seconds=args.seconds,
        fanout=args.fanout,
        publishers=args.publishers,
        rate=args.rate,
        size=args.size,
        port=args.port,
        json=args.json,
        pin=args.pin,
        kernel=args.kernel,
    )


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    try:
        result = asyncio.run(run(options))
    except (TimeoutError, ConnectionError) as exc:
        print(f"incamera bench forward: {exc}", file=sys.stderr)
        return 1
    if options.json:
        print(json.dumps(result))
    else:
        print(_summary(result))
    sys.stdout.flush()
    return 0
