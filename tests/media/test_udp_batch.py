"""Batched UDP I/O (recvmmsg/sendmmsg via ctypes) and its portable fallback."""

from __future__ import annotations

import socket
import time

import pytest

from incamera.media.udp_batch import (
    _LIBC,
    RECV_BATCH,
    BatchUdp,
    PlainUdp,
    decode_sockaddr,
    encode_sockaddr,
)

IMPLEMENTATIONS = [PlainUdp] + ([BatchUdp] if _LIBC is not None else [])


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


@pytest.mark.parametrize("addr", [("127.0.0.1", 5004), ("::1", 40000), ("10.1.2.3", 1)])
def test_sockaddr_round_trip(addr: tuple[str, int]) -> None:
    assert decode_sockaddr(encode_sockaddr(addr)) == addr


def receive(io: BatchUdp | PlainUdp, count: int) -> list[tuple[bytes, tuple[str, int]]]:
    got: list[tuple[bytes, tuple[str, int]]] = []
    for _ in range(200):  # bounded: at most ~2 s
        got.extend(io.recv())
        if len(got) >= count:
            break
        time.sleep(0.01)
    return got


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_slots_and_plain_sends_arrive_in_order_with_their_sources(impl: type) -> None:
    a, b = udp_socket(), udp_socket()
    try:
        sender, receiver = impl(a), impl(b)
        target = b.getsockname()
        for i in range(150):  # more than one receive batch
            if i % 2:
                sender.send(b"plain-%d" % i, target)
            else:
                slot = sender.reserve()
                payload = b"slot-%d" % i
                sender.views[slot][: len(payload)] = payload
                sender.commit(slot, len(payload), sender.destination(target))
        assert sender.pending
        sender.flush()
        assert sender.pending == 0 and sender.errors == 0
        got = receive(receiver, 150)
        assert len(got) == 150
        assert [d for d, _ in got] == [
            (b"plain-%d" if i % 2 else b"slot-%d") % i for i in range(150)
        ]
        assert {addr for _, addr in got} == {a.getsockname()}
        assert receiver.recv() == []
    finally:
        a.close()
        b.close()


@pytest.mark.skipif(_LIBC is None, reason="sendmmsg is Linux-only")
def test_full_slot_ring_flushes_itself() -> None:
    a, b = udp_socket(), udp_socket()
    try:
        sender = BatchUdp(a, send_slots=8)
        for i in range(20):
            sender.send(bytes([i]) * 10, b.getsockname())
        sender.flush()
        got = receive(BatchUdp(b), 20)
        assert [d[0] for d, _ in got] == list(range(20))
        assert RECV_BATCH >= 20
    finally:
        a.close()
        b.close()
