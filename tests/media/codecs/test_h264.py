"""H.264 payload structures (RFC 6184 §5.6 single NAL, §5.7.1 STAP-A, §5.8 FU-A)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.codecs import h264
from incamera.media.errors import ParseError

# NAL unit header |F|NRI|Type| (RFC 6184 §5.3): NRI=3 for parameter sets and IDR slices.
SPS = bytes.fromhex("67 42c01f d9")
PPS = bytes.fromhex("68 ce3c80")
IDR = bytes.fromhex("65 888400")
SLICE = bytes.fromhex("41 9a0011")  # non-IDR slice, NRI=2
SEI = bytes.fromhex("06 0501")


def stap_a(*nals: bytes) -> bytes:
    """STAP-A (type 24, NRI = max of the units') with 16-bit sizes (RFC 6184 §5.7.1)."""
    out = bytearray((0x78,))
    for nal in nals:
        out += len(nal).to_bytes(2, "big") + nal
    return bytes(out)


def fu_a(nal: bytes, *, start: bool, end: bool, chunk: bytes) -> bytes:
    """One FU-A fragment of ``nal`` (RFC 6184 §5.8): FU indicator, FU header, data."""
    indicator = (nal[0] & 0xE0) | h264.FU_A
    header = (0x80 if start else 0) | (0x40 if end else 0) | (nal[0] & 0x1F)
    return bytes((indicator, header)) + chunk


def test_single_nal_units() -> None:
    assert h264.nal_types(IDR) == [5]
    assert h264.nal_types(SLICE) == [1]
    assert h264.is_keyframe(IDR)
    assert h264.is_keyframe(SPS)
    assert not h264.is_keyframe(PPS)
    assert not h264.is_keyframe(SLICE)
    assert not h264.is_keyframe(SEI)


def test_stap_a() -> None:
    packet = stap_a(SPS, PPS, IDR)
    assert h264.nal_types(packet) == [7, 8, 5]
    assert h264.is_keyframe(packet)
    assert h264.nal_types(stap_a(SEI, SLICE)) == [6, 1]
    assert not h264.is_keyframe(stap_a(SEI, SLICE))
    assert not h264.is_keyframe(stap_a(PPS))


def test_fu_a_only_the_start_fragment_of_an_idr_counts() -> None:
    body = IDR + bytes(range(40))
    first = fu_a(body, start=True, end=False, chunk=body[1:20])
    middle = fu_a(body, start=False, end=False, chunk=body[20:30])
    last = fu_a(body, start=False, end=True, chunk=body[30:])
    assert first[0] == 0x7C and first[1] == 0x85  # NRI 3, type 28; S=1, type 5
    assert [h264.nal_types(p) for p in (first, middle, last)] == [[5], [5], [5]]
    assert h264.is_keyframe(first)
    assert not h264.is_keyframe(middle)
    assert not h264.is_keyframe(last)
    delta = SLICE + bytes(20)
    assert not h264.is_keyframe(fu_a(delta, start=True, end=False, chunk=delta[1:]))


@pytest.mark.parametrize("packet_type", [h264.STAP_B, h264.MTAP16, h264.MTAP24, h264.FU_B])
def test_interleaved_mode_packets_are_not_key_frames(packet_type: int) -> None:
    packet = bytes((0x60 | packet_type, 0x85)) + IDR
    assert h264.nal_types(packet) == [packet_type]
    assert not h264.is_keyframe(packet)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x78",  # STAP-A with no unit
        b"\x78\x00",  # size field cut in half
        b"\x78\x00\x05\x65\x88",  # size 5, two bytes present
        stap_a(SPS) + b"\x00\x10\x65",  # second unit runs past the end
        b"\x78\x00\x00",  # empty NAL unit
        b"\x7c",  # FU-A without FU header
    ],
)
def test_malformed_payloads_raise(data: bytes) -> None:
    with pytest.raises(ParseError):
        h264.nal_types(data)
    with pytest.raises(ParseError):
        h264.is_keyframe(data)


nal_units = st.tuples(st.integers(0, 3), st.integers(1, 23), st.binary(max_size=10)).map(
    lambda t: bytes(((t[0] << 5) | t[1],)) + t[2]
)


@given(st.lists(nal_units, min_size=1, max_size=5))
def test_stap_a_types_match_the_units(nals: list[bytes]) -> None:
    packet = stap_a(*nals)
    types = [n[0] & 0x1F for n in nals]
    assert h264.nal_types(packet) == types
    assert h264.is_keyframe(packet) == any(t in (5, 7) for t in types)


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        types = h264.nal_types(data)
    except ParseError:
        with pytest.raises(ParseError):
            h264.is_keyframe(data)
        return
    assert all(0 <= t <= 31 for t in types) and types
    assert isinstance(h264.is_keyframe(data), bool)
