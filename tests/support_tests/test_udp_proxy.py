"""Self-tests of the lossy UDP proxy, against a UDP echo server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator, Callable
from typing import cast

import pytest
import pytest_asyncio

from support.udp_proxy import (
    Address,
    LossyUdpProxy,
    candidate_addresses,
    is_rtp_or_rtcp,
    rewrite_candidates,
)


class _Recorder(asyncio.DatagramProtocol):
    """Records datagrams; optionally echoes them back to the sender."""

    def __init__(self, echo: bool) -> None:
        self.echo = echo
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received.append(data)
        if self.echo and self.transport is not None:
            self.transport.sendto(data, addr)


async def _endpoint(echo: bool) -> tuple[asyncio.DatagramTransport, _Recorder]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Recorder(echo), local_addr=("127.0.0.1", 0)
    )
    return transport, protocol


@pytest_asyncio.fixture
async def echo_server() -> AsyncIterator[tuple[Address, _Recorder]]:
    transport, recorder = await _endpoint(echo=True)
    yield transport.get_extra_info("sockname"), recorder
    transport.close()


def _rtp_like(seq: int) -> bytes:
    # Version 2, payload type 96, then the sequence number: enough for RFC 7983 demux.
    return struct.pack("!BBH", 0x80, 96, seq) + bytes(16)


async def _until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.002)


async def _run_traffic(
    target: Address, count: int, **kwargs: float | int | bool
) -> tuple[LossyUdpProxy, list[bytes]]:
    """Send ``count`` RTP-like datagrams through a proxy to ``target`` (an echo server),
    in small batches so no socket buffer overflows, and return what came back."""
    client, received = await _endpoint(echo=False)
    try:
        async with LossyUdpProxy(target, **kwargs) as proxy:  # type: ignore[arg-type]
            for start in range(0, count, 25):
                batch = range(start, min(start + 25, count))
                for seq in batch:
                    client.sendto(_rtp_like(seq), proxy.address)
                sent = batch.stop
                await _until(
                    lambda sent=sent: (
                        proxy.to_server.total == sent
                        and proxy.to_client.total == proxy.to_server.forwarded
                        and len(received.received) == proxy.to_client.forwarded
                    ),
                    "proxy did not catch up",
                )
            return proxy, received.received
    finally:
        client.close()


async def test_drops_configured_fraction_each_way_and_forwards_the_rest(
    echo_server: tuple[Address, _Recorder],
) -> None:
    target, echo = echo_server
    count = 2000
    proxy, back = await _run_traffic(
        target, count, loss_to_server=0.10, loss_to_client=0.05, seed=7
    )
    assert proxy.to_server.total == count
    assert len(echo.received) == proxy.to_server.forwarded
    assert len(back) == proxy.to_client.forwarded
    assert proxy.to_client.total == proxy.to_server.forwarded
    # Binomial(2000, 0.10): sd ~13; (1800, 0.05): sd ~9. Bounds are > 4 sd wide.
    assert 140 <= proxy.to_server.dropped <= 260
    assert 50 <= proxy.to_client.dropped <= 130
    assert proxy.ignored == 0


async def test_same_seed_drops_the_same_datagrams(
    echo_server: tuple[Address, _Recorder],
) -> None:
    target, _ = echo_server
    runs = [
        await _run_traffic(target, 400, loss_to_server=0.1, loss_to_client=0.1, seed=s)
        for s in (3, 3, 4)
    ]
    first, again, other = ([struct.unpack("!H", d[2:4])[0] for d in back] for _, back in runs)
    assert first == again
    assert first != other


async def test_zero_loss_forwards_everything(echo_server: tuple[Address, _Recorder]) -> None:
    target, _ = echo_server
    proxy, back = await _run_traffic(target, 300, loss_to_server=0.0, loss_to_client=0.0)
    assert proxy.to_server.dropped == proxy.to_client.dropped == 0
    assert [struct.unpack("!H", d[2:4])[0] for d in back] == list(range(300))


async def test_media_only_spares_stun_and_dtls(echo_server: tuple[Address, _Recorder]) -> None:
    target, echo = echo_server
    client, received = await _endpoint(echo=False)
    try:
        async with LossyUdpProxy(target, loss_to_client=1.0, loss_to_server=1.0) as proxy:
            stun_like = bytes([0x00, 0x01]) + bytes(18)
            dtls_like = bytes([22, 0xFE, 0xFD]) + bytes(10)
            for datagram in (stun_like, dtls_like, _rtp_like(1)):
                client.sendto(datagram, proxy.address)
            await _until(lambda: proxy.to_server.total == 3, "datagrams not seen")
            await _until(lambda: len(received.received) == 2, "echoes not seen")
            assert echo.received == [stun_like, dtls_like]
            assert received.received == [stun_like, dtls_like]
            assert proxy.to_server.dropped == 1
    finally:
        client.close()


async def test_only_the_first_sender_is_served(echo_server: tuple[Address, _Recorder]) -> None:
    target, echo = echo_server
    first, _ = await _endpoint(echo=False)
    intruder, _ = await _endpoint(echo=False)
    try:
        async with LossyUdpProxy(target, loss_to_client=0.0) as proxy:
            first.sendto(_rtp_like(1), proxy.address)
            await _until(lambda: len(echo.received) == 1, "first datagram not forwarded")
            intruder.sendto(_rtp_like(2), proxy.address)
            await _until(lambda: proxy.ignored == 1, "intruder not counted")
            assert proxy.client == first.get_extra_info("sockname")
            assert len(echo.received) == 1
    finally:
        first.close()
        intruder.close()


def test_rejects_loss_outside_unit_interval() -> None:
    with pytest.raises(ValueError):
        LossyUdpProxy(("127.0.0.1", 9), loss_to_client=1.5)


def test_is_rtp_or_rtcp_follows_rfc7983() -> None:
    assert is_rtp_or_rtcp(bytes([128]))
    assert is_rtp_or_rtcp(bytes([191]))
    assert not is_rtp_or_rtcp(bytes([127]))
    assert not is_rtp_or_rtcp(bytes([192]))
    assert not is_rtp_or_rtcp(b"")


SDP = (
    "v=0\r\n"
    "o=- 1 2 IN IP4 127.0.0.1\r\n"
    "a=ice-lite\r\n"
    "m=video 40000 UDP/TLS/RTP/SAVPF 96\r\n"
    "a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
    "a=candidate:2 1 UDP 2130706430 10.0.0.5 40001 typ host generation 0\r\n"
    "a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n"
    "a=mid:0\r\n"
)


def test_rewrite_candidates_moves_udp_candidates_only() -> None:
    out = rewrite_candidates(SDP, 5555)
    assert "a=candidate:1 1 udp 2130706431 127.0.0.1 5555 typ host\r\n" in out
    assert "a=candidate:2 1 UDP 2130706430 10.0.0.5 5555 typ host generation 0\r\n" in out
    assert "a=candidate:3 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n" in out
    assert out.count("\r\n") == SDP.count("\r\n")
    assert "m=video 40000 " in out


def test_rewrite_candidates_filters_by_old_port_and_sets_host() -> None:
    out = rewrite_candidates(SDP, 5555, new_host="127.0.0.1", old_port=40001)
    assert candidate_addresses(out) == [("127.0.0.1", 40000), ("127.0.0.1", 5555)]


def test_candidate_addresses() -> None:
    assert candidate_addresses(SDP) == [("127.0.0.1", 40000), ("10.0.0.5", 40001)]
