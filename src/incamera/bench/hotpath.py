"""CPU cost of the worker's forwarding path, per packet, in one process.

``python -m incamera.bench.hotpath [--fanout 10] [--packets 20000] [--profile]``

A :class:`~incamera.media.worker.Worker` runs in this process on uvloop; one synthetic
publisher and ``--fanout`` synthetic subscribers connect to it over real ICE/DTLS on
127.0.0.1 (see ``peer.py``). Then pre-protected SRTP packets of the publisher are handed
to the worker's batch handler in ``recvmmsg``-sized batches (what ``Worker._on_readable``
does after each ``recvmmsg``), timed with the process CPU clock, so what is measured is
exactly the worker's per-packet work (unprotect, producer, consumers, protect,
``sendmmsg`` into the kernel) without the event loop's receive system call, the other
process or the machine's other load. Subscriber sockets are drained between batches,
outside the timing. With ``--profile`` the same is run under cProfile and the functions
are listed with their own time per forwarded packet (cProfile's overhead inflates small
Python functions; read the shares, not the absolute figures).

This complements ``incamera bench forward`` (which measures the whole worker process under
real traffic) when looking for where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import time

from incamera.media.udp_batch import RECV_BATCH
from incamera.media.worker import Worker

from .peer import SyntheticPeer, connect_peers_async
from .vp8_source import Vp8Source, vp8_parameters

BATCH = 128  # input packets between two drains of the subscribers' sockets


async def fanout_session(
    fanout: int, ssrc: int = 0x1234
) -> tuple[Worker, SyntheticPeer, list[SyntheticPeer]]:
    """A started worker with one VP8 publisher and ``fanout`` subscribers of its stream, all
    real ICE/DTLS/SRTP peers on 127.0.0.1, connected (also used by tests/media)."""
    worker = Worker(0, "127.0.0.1", 0)
    await worker.start()
    router_id = worker.create_router()
    info = worker.create_transport(router_id)
    publisher = SyntheticPeer(info, name="publisher")
    worker.connect_transport(info.id, publisher.dtls_parameters, publisher.ufrag)
    producer_id = worker.produce(info.id, vp8_parameters(ssrc))
    subscribers = []
    for i in range(fanout):
        info = worker.create_transport(router_id)
        peer = SyntheticPeer(info, name=f"subscriber{i}")
        worker.connect_transport(info.id, peer.dtls_parameters, peer.ufrag)
        worker.consume(info.id, producer_id, mid="0")
        subscribers.append(peer)
    await connect_peers_async([publisher, *subscribers], timeout=20)
    return worker, publisher, subscribers


def _drain(peers: list[SyntheticPeer]) -> int:
    count = 0
    for peer in peers:
        while True:
            try:
                peer.sock.recv(2048)
            except BlockingIOError:
                break
            count += 1
    return count


def _feed(
    worker: Worker,
    packets: list[bytes],
    addr: tuple[str, int],
    subscribers: list[SyntheticPeer],
    profiler: cProfile.Profile | None = None,
) -> tuple[float, int]:
    """Hand ``packets`` to the worker; returns (CPU seconds, packets the subscribers got)."""
    cpu = 0.0
    received = 0
    handle = worker._received_batch
    for start in range(0, len(packets), BATCH):
        batches = [
            [(packet, addr) for packet in packets[i : i + RECV_BATCH]]
            for i in range(start, min(start + BATCH, len(packets)), RECV_BATCH)
        ]
        if profiler is not None:
            profiler.enable()
        before = time.process_time()
        for batch in batches:
            handle(batch)
            worker._flush()  # once per receive batch, as _on_readable does
        cpu += time.process_time() - before
        if profiler is not None:
            profiler.disable()
        received += _drain(subscribers)
    return cpu, received


async def run(fanout: int, count: int, size: int, profile: bool) -> str:
    worker, publisher, subscribers = await fanout_session(fanout)
    try:
        assert publisher.srtp is not None
        source = Vp8Source(0x1234, size)
        ts = 0

        def make(n: int) -> list[bytes]:
            nonlocal ts
            out = []
            for _ in range(n):
                ts += 90
                out.append(publisher.srtp.protect(source.next_packet(ts)))  # type: ignore[union-attr]
            return out

        addr = publisher.local_addr
        # Warm up: the key frame opens every consumer.
        _feed(worker, make(BATCH), addr, subscribers)
        _drain(subscribers)
        lines = []
        cpu, received = _feed(worker, make(count), addr, subscribers)
        forwarded = count * fanout
        lines.append(
            f"fan-out {fanout}, {size}-byte packets, {count:,} in, {forwarded:,} forwarded "
            f"({received:,} read by subscribers), worker counters: "
            f"srtp_auth_failures={worker.counters.srtp_auth_failures} "
            f"internal_errors={worker.counters.internal_errors}"
        )
        lines.append(
            f"CPU {cpu:.3f} s: {cpu / count * 1e6:.2f} µs per input packet, "
            f"{cpu / forwarded * 1e6:.2f} µs per forwarded packet, "
            f"{forwarded / cpu:,.0f} forwarded packets per CPU-second"
        )
        if profile:
            profiler = cProfile.Profile(time.process_time)
            n = min(count, 5000)
            _feed(worker, make(n), addr, subscribers, profiler)
            stream = io.StringIO()
            stats = pstats.Stats(profiler, stream=stream)
            total = stats.total_tt  # type: ignore[attr-defined]
            lines.append(
                f"\ncProfile ({n:,} input packets, {total / (n * fanout) * 1e6:.2f} µs per "
                "forwarded packet under the profiler), own time per forwarded packet:"
            )
            rows = sorted(
                stats.stats.items(),  # type: ignore[attr-defined]
                key=lambda item: item[1][2],
                reverse=True,
            )
            for (filename, line, name), (_cc, calls, tottime, cumtime, _) in rows[:25]:
                where = filename.rsplit("/src/", 1)[-1].rsplit("site-packages/", 1)[-1]
                lines.append(
                    f"  {tottime / (n * fanout) * 1e6:6.2f} µs {100 * tottime / total:5.1f}%"
                    f"  cum {cumtime / (n * fanout) * 1e6:6.2f} µs  calls/in "
                    f"{calls / n:5.1f}  {name} ({where}:{line})"
                )
        return "\n".join(lines)
    finally:
        publisher.close()
        for peer in subscribers:
            peer.close()
        await worker.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m incamera.bench.hotpath")
    parser.add_argument("--fanout", type=int, default=10)
    parser.add_argument("--packets", type=int, default=20000, help="input packets timed")
    parser.add_argument("--size", type=int, default=1200)
    parser.add_argument("--profile", action="store_true", help="add a cProfile breakdown")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    print(runner(run(args.fanout, args.packets, args.size, args.profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
