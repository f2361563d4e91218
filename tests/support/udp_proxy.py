"""A lossy UDP relay to put between the SFU and one participant.

``LossyUdpProxy`` listens on 127.0.0.1:<ephemeral>. The first address that sends to it
becomes its one client; datagrams from the client go to ``target`` from the proxy's own
upstream socket, and datagrams arriving there go back to the client. Each direction drops a
seeded pseudo-random fraction, with its own generator, so the same traffic in one direction
loses the same datagrams on every run.

By default only RTP/RTCP datagrams (first byte 128..191, RFC 7983 section 7) are candidates for
loss, so STUN and DTLS handshakes are not slowed by retransmission timers; pass
``media_only=False`` to drop from everything.

To route a subscriber through it, start the proxy towards the SFU's port and rewrite the
server's candidates in the SDP the client sees with ``rewrite_candidates(sdp, proxy.port)``.
An ICE-lite server then sees the proxy's upstream socket as a peer-reflexive address.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import cast

Address = tuple[str, int]


def is_rtp_or_rtcp(datagram: bytes) -> bool:
    """RFC 7983 section 7 demultiplexing: first byte 128..191 is RTP or RTCP."""
    return len(datagram) > 0 and 128 <= datagram[0] <= 191


@dataclass
class DirectionCounters:
    forwarded: int = 0
    dropped: int = 0

    @property
    def total(self) -> int:
        return self.forwarded + self.dropped


class _Side(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self._on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._on_datagram(data, addr)


class LossyUdpProxy:
    """Forwards between one client and ``target``, dropping a seeded fraction each way.

    Use as ``async with LossyUdpProxy(target, loss_to_client=0.05, seed=1) as proxy:``;
    ``proxy.port`` is where the client must send.
    """

    def __init__(
        self,
        target: Address,
        *,
        loss_to_client: float = 0.05,
        loss_to_server: float = 0.0,
        seed: int = 0,
        media_only: bool = True,
    ) -> None:
        for loss in (loss_to_client, loss_to_server):
            if not 0.0 <= loss <= 1.0:
                raise ValueError(f"loss fraction out of range: {loss}")
        self.target = target
        self.loss_to_client = loss_to_client
        self.loss_to_server = loss_to_server
        self.media_only = media_only
        self._rng_to_client = random.Random(f"{seed}:to-client")
        self._rng_to_server = random.Random(f"{seed}:to-server")
        self.to_client = DirectionCounters()
        self.to_server = DirectionCounters()
        self.ignored = 0  # datagrams from neither the client nor the target
        self.client: Address | None = None
        self._listen: asyncio.DatagramTransport | None = None
        self._upstream: asyncio.DatagramTransport | None = None

    @property
    def port(self) -> int:
        if self._listen is None:
            raise RuntimeError("proxy not started")
        return int(self._listen.get_extra_info("sockname")[1])

    @property
    def address(self) -> Address:
        return ("127.0.0.1", self.port)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._listen, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_client), local_addr=("127.0.0.1", 0)
        )
        self._upstream, _ = await loop.create_datagram_endpoint(
            lambda: _Side(self._from_target), local_addr=("127.0.0.1", 0)
        )

    def close(self) -> None:
        for transport in (self._listen, self._upstream):
            if transport is not None:
                transport.close()
        self._listen = self._upstream = None

    async def __aenter__(self) -> LossyUdpProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _drops(self, data: bytes, loss: float, rng: random.Random) -> bool:
        if self.media_only and not is_rtp_or_rtcp(data):
            return False
        return rng.random() < loss

    def _from_client(self, data: bytes, addr: Address) -> None:
        if self.client is None:
            self.client = addr
        elif addr != self.client:
            self.ignored += 1
            return
        if self._drops(data, self.loss_to_server, self._rng_to_server):
            self.to_server.dropped += 1
            return
        self.to_server.forwarded += 1
        if self._upstream is not None:
            self._upstream.sendto(data, self.target)

    def _from_target(self, data: bytes, addr: Address) -> None:
        if addr != self.target or self.client is None:
            self.ignored += 1
            return
        if self._drops(data, self.loss_to_client, self._rng_to_client):
            self.to_client.dropped += 1
            return
        self.to_client.forwarded += 1
        if self._listen is not None:
            self._listen.sendto(data, self.client)


_CANDIDATE = re.compile(
    r"^(a=candidate:\S+ \d+ udp \d+ )(\S+) (\d+)( typ .*)$", re.IGNORECASE | re.MULTILINE
)


def rewrite_candidates(
    sdp: str, new_port: int, *, new_host: str | None = None, old_port: int | None = None
) -> str:
    """Point the UDP ``a=candidate`` lines of ``sdp`` at ``new_port`` (and ``new_host``).

    ``old_port`` limits the rewrite to candidates on that port. Line endings are kept.
    """

    def replace(match: re.Match[str]) -> str:
        prefix, host, port, rest = match.groups()
        if old_port is not None and int(port) != old_port:
            return match.group(0)
        return f"{prefix}{new_host or host} {new_port}{rest}"

    return _CANDIDATE.sub(replace, sdp)


def candidate_addresses(sdp: str) -> list[Address]:
    """The (host, port) of every UDP ``a=candidate`` line in ``sdp``, in order."""
    return [(m.group(2), int(m.group(3))) for m in _CANDIDATE.finditer(sdp)]
