"""AV1 aggregation header (AV1 RTP spec §4.4) and OBU elements (§4.5)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.codecs import av1
from incamera.media.codecs.av1 import Av1AggregationHeader
from incamera.media.errors import ParseError

# OBU headers |0|type(4)|X|S|0| (AV1 spec §5.3.1): sequence header (1), frame (6).
SEQUENCE_HEADER_OBU = bytes((1 << 3,)) + bytes.fromhex("000000")
FRAME_OBU = bytes((6 << 3,)) + bytes.fromhex("10203040")


def test_header_bit_layout() -> None:
    # Z=0 Y=1 W=2 N=1: 0b0110_1000
    header = Av1AggregationHeader.parse(b"\x68")
    assert header == Av1AggregationHeader(
        continuation=False, will_continue=True, obu_count=2, new_sequence=True
    )
    assert bytes(header) == b"\x68"
    assert Av1AggregationHeader.parse(b"\x80") == Av1AggregationHeader(continuation=True)


def test_keyframe_is_the_n_bit() -> None:
    key = b"\x28" + bytes((len(SEQUENCE_HEADER_OBU),)) + SEQUENCE_HEADER_OBU + FRAME_OBU
    assert av1.is_keyframe(key)  # W=2, N=1
    assert not av1.is_keyframe(b"\x10" + FRAME_OBU)  # W=1, N=0
    assert not av1.is_keyframe(b"\xc0" + FRAME_OBU)  # Z=1 Y=1: middle fragment
    with pytest.raises(ParseError):
        av1.is_keyframe(b"")


def test_obu_elements_with_count() -> None:
    key = b"\x28" + bytes((len(SEQUENCE_HEADER_OBU),)) + SEQUENCE_HEADER_OBU + FRAME_OBU
    elements = av1.obu_elements(key)
    assert [bytes(e) for e in elements] == [SEQUENCE_HEADER_OBU, FRAME_OBU]
    assert [av1.obu_type(e) for e in elements] == [1, 6]


def test_obu_elements_length_prefixed() -> None:
    big = bytes((6 << 3,)) + bytes(200)  # 201 bytes: LEB128 length c9 01
    packet = b"\x00" + bytes((len(SEQUENCE_HEADER_OBU),)) + SEQUENCE_HEADER_OBU + b"\xc9\x01" + big
    assert [bytes(e) for e in av1.obu_elements(packet)] == [SEQUENCE_HEADER_OBU, big]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x10",  # W=1 but no element
        b"\x20\x05\x01\x02",  # W=2: first element's length runs past the end
        b"\x20\x01\x08",  # W=2 but only one element
        b"\x00\x85",  # LEB128 length truncated
        b"\x00" + b"\xff" * 9,  # LEB128 longer than 8 bytes
    ],
)
def test_malformed_elements_raise(data: bytes) -> None:
    with pytest.raises(ParseError):
        av1.obu_elements(data)


@given(st.booleans(), st.booleans(), st.integers(0, 3), st.booleans())
def test_header_round_trip(z: bool, y: bool, w: int, n: bool) -> None:
    header = Av1AggregationHeader(z, y, w, n)
    assert Av1AggregationHeader.parse(bytes(header)) == header
    assert av1.is_keyframe(bytes(header)) == n


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        elements = av1.obu_elements(data)
    except ParseError:
        return
    assert sum(len(e) for e in elements) < len(data)
    header = Av1AggregationHeader.parse(data)
    assert bytes(header)[0] == data[0] & 0xF8
