"""The C fan-out kernel (media/_fanout.c) does exactly what Transport.fan_out does.

Both kernels run the same packets through the same fan-out entries, with the same SRTP
keys, into their own batch I/O (few slots, so flushes happen mid-packet): the datagrams
their sink sockets receive, byte for byte, and every piece of state the kernels write
(NACK history, consumer state, transport-wide send record, counters) must be equal.
"""

from __future__ import annotations

import os
import socket
import struct
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from incamera.media import fanout_kernel
from incamera.media.bandwidth import SENT_HISTORY
from incamera.media.codecs.vp8 import Vp8Rewriter
from incamera.media.consumer import HISTORY, STATE_FIELDS
from incamera.media.counters import Counters
from incamera.media.producer import AUDIO_EXT_HEAD, VIDEO_EXT_BLOCK
from incamera.media.srtp import (
    SRTP_TRAILER,
    SrtpKeys,
    SrtpProfile,
    SrtpSession,
    buffer_pointer,
)
from incamera.media.transport import _TWCC_ELEMENT, Transport
from incamera.media.udp_batch import BatchUdp

SLOTS = 8  # flushes happen every few consumers


def test_the_c_kernel_is_built() -> None:
    """``make test`` installs a compiler and Python's headers: the C kernel must be there
    (a silent fallback to Python would leave it untested and the worker slow)."""
    assert fanout_kernel.available(), "incamera.media._fanout was not built"
    assert os.environ.get(fanout_kernel.ENV, "") != "python"
    assert fanout_kernel.choice() == "c"


@dataclass
class _Consumer:
    """What an entry refers to (the kernels never touch it; the C table keeps it alive)."""

    index: int


@dataclass
class _Side:
    """One kernel's world: batch I/O, a sink for what it sends, counters, entries."""

    io: BatchUdp
    sock: socket.socket
    sink: socket.socket
    counters: Counters
    entries: list[tuple[object, ...]]
    flushes: list[int]

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sink.recv(4096))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()
        self.sink.close()


@dataclass(frozen=True)
class _Spec:
    ssrc: int
    seq_offset: int
    ts_offset: int
    rewrite: bool
    twcc_start: int


def _keys(index: int, profile: SrtpProfile) -> SrtpKeys:
    size = profile.key_length + profile.salt_length
    return SrtpKeys(profile, bytes([index + 1]) * size, bytes([index + 101]) * size)


def _side(specs: list[_Spec], profile: SrtpProfile) -> _Side:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    io = BatchUdp(sock, send_slots=SLOTS)
    dest = io.destination(sink.getsockname())
    entries = []
    for i, spec in enumerate(specs):
        srtp = SrtpSession(_keys(i, profile))
        seq_cell = array("q", [spec.twcc_start])
        entries.append(
            (
                _Consumer(i),
                array("q", [-1]) * HISTORY,
                array("q", [0]) * HISTORY,
                array("q", [0]) * HISTORY,
                array("q", [0]) * STATE_FIELDS,
                array("d", [-1.0]),
                spec.ssrc,
                spec.seq_offset,
                spec.ts_offset,
                Vp8Rewriter() if spec.rewrite else None,
                seq_cell,
                array("q", [-1]) * SENT_HISTORY,
                array("d", [0.0]) * SENT_HISTORY,
                array("q", [0]) * SENT_HISTORY,
                srtp.out_context,
                srtp.out_length,
                dest[0],
                dest[1],
                srtp,
            )
        )
    return _Side(io, sock, sink, Counters(), entries, [])


class _PythonTransport:
    """The parts of a Transport that Transport.fan_out uses (all the worker's)."""

    def __init__(self, side: _Side) -> None:
        self._io = side.io
        self._slot_pointers = [buffer_pointer(a) for a in side.io.addresses]
        self._counters = side.counters
        self._request_flush = lambda: side.flushes.append(side.io.pending)


def _kernels(python: _Side, c: _Side) -> tuple[Callable[..., None], Callable[..., None]]:
    py_kernel = Transport.fan_out.__get__(_PythonTransport(python))
    c_kernel = fanout_kernel.compile_table(
        c.entries,
        c.io,
        c.counters,
        lambda: c.flushes.append(c.io.pending),
        c.io.slot_size - SRTP_TRAILER,
        _TWCC_ELEMENT,
    )
    return py_kernel, c_kernel


@contextmanager
def _sides(specs: list[_Spec], profile: SrtpProfile) -> Iterator[tuple[_Side, _Side]]:
    python, c = _side(specs, profile), _side(specs, profile)
    try:
        yield python, c
    finally:
        python.close()
        c.close()


def _template(video: bool, payload: bytes, marker: bool) -> tuple[bytes, int, int]:
    """A template as Producer.build_template makes it: (bytes, payload offset, ext word)."""
    ext = VIDEO_EXT_BLOCK if video else AUDIO_EXT_HEAD + bytes([0x10, 0x7F, 0, 0, 0])
    head = bytes([0x90, (0x80 if marker else 0) | (96 if video else 111)]) + bytes(10)
    return head + ext + payload, 12 + len(ext), int.from_bytes(ext[:4], "big")


def _state(side: _Side) -> list[object]:
    out: list[object] = [side.counters.as_dict(), side.flushes]
    for entry in side.entries:
        out.append([bytes(a) for a in entry[1:6]] + [bytes(entry[10]), bytes(entry[11])])
        out.append([bytes(entry[12]), bytes(entry[13])])
    return out


_spec = st.builds(
    _Spec,
    ssrc=st.integers(0, 0xFFFFFFFF),
    seq_offset=st.integers(0, 0xFFFF),
    ts_offset=st.integers(0, 0xFFFFFFFF),
    rewrite=st.booleans(),
    twcc_start=st.integers(0, 0xFFFF),
)
# VP8 payload descriptors (RFC 7741) with and without picture ids, and arbitrary bytes.
_vp8_payload = st.one_of(
    st.binary(min_size=1, max_size=1200),
    st.tuples(st.integers(0, 0x7FFF), st.binary(min_size=1, max_size=600)).map(
        lambda t: bytes([0x90, 0x80, 0x80 | (t[0] >> 8), t[0] & 0xFF]) + t[1]
    ),
)


@pytest.mark.skipif(not fanout_kernel.available(), reason="the C kernel is not built")
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(_spec, min_size=1, max_size=6),
    packets=st.lists(
        st.tuples(_vp8_payload, st.booleans(), st.booleans(), st.integers(0, 0xFFFFFFFF)),
        min_size=1,
        max_size=12,
    ),
    first_seq=st.integers(0, 0xFFFF),
    video=st.booleans(),
    gcm=st.booleans(),
)
def test_c_and_python_kernels_agree(
    specs: list[_Spec],
    packets: list[tuple[bytes, bool, bool, int]],
    first_seq: int,
    video: bool,
    gcm: bool,
) -> None:
    profile = SrtpProfile.AEAD_AES_128_GCM if gcm else SrtpProfile.AES128_CM_SHA1_80
    with _sides(specs, profile) as (python, c):
        kernels = _kernels(python, c)
        now = 1000.0
        for n, (payload, keyframe, marker, timestamp) in enumerate(packets):
            template, payload_offset, ext_word = _template(video, payload, marker)
            seq = (first_seq + n) & 0xFFFF
            source = (1 << 16) | seq
            now += 0.001
            for kernel, side in zip(kernels, (python, c), strict=True):
                kernel(
                    side.entries,
                    template,
                    seq,
                    timestamp,
                    source,
                    payload_offset,
                    ext_word,
                    keyframe,
                    now,
                )
        assert python.io.pending == c.io.pending
        python.io.flush()
        c.io.flush()
        sent_python, sent_c = python.received(), c.received()
        assert len(sent_python) == len(packets) * len(specs)
        assert sent_c == sent_python
        assert c.counters.rtp_sent == len(sent_c)
        assert len(c.flushes) == len(packets)  # one flush request per packet
        assert _state(c) == _state(python)
        # What left is SRTP the subscriber can read, with the rewritten header.
        first = SrtpSession(
            SrtpKeys(profile, _keys(0, profile).remote_key_salt, _keys(0, profile).local_key_salt)
        )
        plain = first.unprotect(sent_c[0])
        seq0, _ts, ssrc = struct.unpack_from("!HII", plain, 2)
        assert ssrc == specs[0].ssrc
        assert seq0 == (first_seq + specs[0].seq_offset) & 0xFFFF


@pytest.mark.skipif(not fanout_kernel.available(), reason="the C kernel is not built")
def test_a_template_too_long_for_a_slot_is_refused_and_nothing_is_queued() -> None:
    spec = _Spec(1, 0, 0, False, 0)
    with _sides([spec], SrtpProfile.AEAD_AES_128_GCM) as (_python, c):
        _py_kernel, c_kernel = _kernels(_python, c)
        template, offset, ext_word = _template(True, bytes(c.io.slot_size), False)
        with pytest.raises(ValueError, match="does not fit"):
            c_kernel(c.entries, template, 1, 2, 3, offset, ext_word, False, 1.0)
        assert c.io.pending == 0
        assert c.entries[0][4][3] == 0  # no packet counted


@pytest.mark.skipif(not fanout_kernel.available(), reason="the C kernel is not built")
def test_malformed_entries_are_refused_with_a_type_error() -> None:
    spec = _Spec(1, 0, 0, False, 0)
    with _sides([spec], SrtpProfile.AEAD_AES_128_GCM) as (_python, c):
        good = c.entries[0]
        bad_entries = [
            good[:-1],  # too short
            (good[0], [-1] * HISTORY, *good[2:]),  # a list, not an array
            (good[0], array("i", [0]) * HISTORY, *good[2:]),  # 4-byte items
            (*good[:4], array("q", [0]) * 3, *good[5:]),  # state of the wrong length
            (*good[:1], array("q", [0]) * 1000, *good[2:]),  # not a power of two
        ]
        for entry in bad_entries:
            with pytest.raises((TypeError, ValueError)):
                fanout_kernel.compile_table(
                    [entry], c.io, c.counters, lambda: None, 1000, _TWCC_ELEMENT
                )
