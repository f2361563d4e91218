"""Batched UDP I/O (recvmmsg/sendmmsg via ctypes) and its portable fallback."""

from __future__ import annotations

import socket
import time

import pytest

from incamera.media.udp_batch import (
    _LIBC,
    RECV_BATCH,
    RECV_SIZE,
    BatchUdp,
    PlainUdp,
    decode_sockaddr,
    encode_sockaddr,
)


def python_recv(sock: socket.socket) -> BatchUdp:
    """BatchUdp with its Python receive loop (the C one, media/_udp.c, is the default)."""
    io = BatchUdp(sock)
    io.compiled_recv = False
    return io


IMPLEMENTATIONS = [PlainUdp] + ([BatchUdp, python_recv] if _LIBC is not None else [])


@pytest.mark.skipif(_LIBC is None, reason="recvmmsg is Linux-only")
def test_the_compiled_receive_loop_is_built() -> None:
    """``make test`` installs a compiler: the C receive loop must be the one in use."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        assert BatchUdp(sock).compiled_recv


@pytest.mark.skipif(_LIBC is None, reason="recvmmsg is Linux-only")
@pytest.mark.parametrize("impl", [BatchUdp, python_recv])
def test_truncated_datagrams_are_counted_and_sources_kept_apart(impl: type) -> None:
    v4, v6 = udp_socket(), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    v6.bind(("::1", 0))
    receiver_sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    receiver_sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    receiver_sock.bind(("::", 0))
    receiver_sock.setblocking(False)
    port = receiver_sock.getsockname()[1]
    try:
        receiver = impl(receiver_sock)
        v6.sendto(b"from six", ("::1", port))
        v4.sendto(b"x" * (RECV_SIZE + 1), ("127.0.0.1", port))  # too big: truncated
        v4.sendto(b"from four", ("127.0.0.1", port))
        got = receive(receiver, 2)
        assert [data for data, _ in got] == [b"from six", b"from four"]
        assert got[0][1] == ("::1", v6.getsockname()[1])
        assert got[1][1] == ("::ffff:127.0.0.1", v4.getsockname()[1])
        assert receiver.errors == 1
    finally:
        v4.close()
        v6.close()
        receiver_sock.close()


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
