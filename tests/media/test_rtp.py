"""RTP packets (RFC 3550 §5.1, RFC 8285) and the in-place forwarding helpers."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media import rtp
from incamera.media.errors import ParseError
from incamera.media.rtp import RtpPacket

# Hand-built: V=2, X=1, CC=1, M=1, PT=96, seq 0x1234, ts 0xDEADBEEF, SSRC 0x01020304,
# CSRC 0x0A0B0C0D, one-byte extension block (2 words): id 1 len 1 (0xAB), id 2 len 2
# (0xCDEF); payload "hi"; P=1 with 2 bytes of padding.
HAND_BUILT = bytes.fromhex(
    "b1 e0 12 34 de ad be ef 01 02 03 04 0a 0b 0c 0d"
    " be de 00 02 10 ab 21 cd ef 00 00 00"
    " 68 69 00 02"
)


def test_parse_hand_built_packet() -> None:
    packet = RtpPacket.parse(HAND_BUILT)
    assert packet.version == 2
    assert packet.marker
    assert packet.payload_type == 96
    assert packet.sequence_number == 0x1234
    assert packet.timestamp == 0xDEADBEEF
    assert packet.ssrc == 0x01020304
    assert packet.csrc == [0x0A0B0C0D]
    assert packet.extension_profile == rtp.ONE_BYTE_PROFILE
    assert packet.extensions == {1: b"\xab", 2: b"\xcd\xef"}
    assert packet.payload == b"hi"
    assert packet.padding and packet.padding_size == 2
    assert bytes(packet) == HAND_BUILT
    assert rtp.header_size(HAND_BUILT) == 28
    assert rtp.find_extension(HAND_BUILT, 2) == (23, 2)
    assert rtp.find_extension(HAND_BUILT, 3) is None


def test_two_byte_form_and_stop_id() -> None:
    # Two-byte form (0x1000, appbits 0): id 1 len 0, padding byte, id 20 len 3.
    data = bytes.fromhex("90 60 00 01 00 00 00 01 00 00 00 02 10 00 00 02 01 00 00 14 03 61 62 63")
    packet = RtpPacket.parse(data)
    assert packet.extension_profile == 0x1000
    assert packet.extensions == {1: b"", 20: b"abc"}
    assert rtp.find_extension(data, 20) == (21, 3)
    assert rtp.find_extension(data, 1) == (18, 0)
    assert bytes(packet) == bytes.fromhex(
        "90 60 00 01 00 00 00 01 00 00 00 02 10 00 00 02 01 00 14 03 61 62 63 00"
    )
    # One-byte form: id 15 stops the walk (RFC 8285 §4.2).
    data = bytes.fromhex("90 60 00 01 00 00 00 01 00 00 00 02 be de 00 01 f0 11 aa bb")
    assert RtpPacket.parse(data).extensions == {}
    assert rtp.find_extension(data, 1) is None


def test_serialiser_picks_the_form() -> None:
    base = RtpPacket(96, 1, 2, 3, b"x")
    one = dataclasses.replace(base, extensions={3: b"abc"})
    assert RtpPacket.parse(bytes(one)).extension_profile == rtp.ONE_BYTE_PROFILE
    for extensions in ({15: b"a"}, {3: b""}, {3: bytes(17)}):
        two = dataclasses.replace(base, extensions=extensions)
        parsed = RtpPacket.parse(bytes(two))
        assert parsed.extension_profile == rtp.TWO_BYTE_PROFILE
        assert parsed.extensions == extensions
    other = dataclasses.replace(base, extension_profile=0x1234, extension_data=b"abcd")
    assert RtpPacket.parse(bytes(other)) == other
    with pytest.raises(ValueError):
        bytes(dataclasses.replace(other, extension_data=b"abc"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes.fromhex("40 60 00 01 00 00 00 01 00 00 00 02"),  # version 1
        bytes.fromhex("81 60 00 01 00 00 00 01 00 00 00 02"),  # CSRC missing
        bytes.fromhex("90 60 00 01 00 00 00 01 00 00 00 02 be de"),  # ext header cut
        bytes.fromhex("90 60 00 01 00 00 00 01 00 00 00 02 be de 00 02 10 ab 00 00"),
        bytes.fromhex("90 60 00 01 00 00 00 01 00 00 00 02 be de 00 01 13 ab 00 00"),
        bytes.fromhex("a0 60 00 01 00 00 00 01 00 00 00 02 00"),  # padding count 0
        bytes.fromhex("a0 60 00 01 00 00 00 01 00 00 00 02 05"),  # padding too long
        bytes.fromhex("a0 60 00 01 00 00 00 01 00 00 00 02"),  # P set, no room
    ],
)
def test_malformed_packets_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        RtpPacket.parse(data)


def test_is_rtcp_demultiplexing() -> None:
    sr = bytes([0x80, 200]) + bytes(26)
    assert rtp.is_rtcp(sr)
    assert rtp.is_rtcp(bytes([0x81, 205, 0, 4]))  # RTPFB
    assert not rtp.is_rtcp(bytes([0x80, 96]))  # RTP, PT 96
    assert not rtp.is_rtcp(bytes([0x80, 0x80 | 96]))  # RTP, PT 96 with marker (224)
    assert not rtp.is_rtcp(bytes([0x80, 0x80 | 0]))  # PCMU with marker (128)
    assert not rtp.is_rtcp(b"\x80")
    assert rtp.is_rtp_or_rtcp(sr)
    assert not rtp.is_rtp_or_rtcp(bytes([0x00, 0x01]))  # STUN
    assert not rtp.is_rtp_or_rtcp(bytes([0x16, 0xFE]))  # DTLS


def test_rewrite_hand_built() -> None:
    buf = bytearray(HAND_BUILT)
    rtp.rewrite(buf, ssrc=0x11111111, seq=0xFFFF, timestamp=7, payload_type=100, marker=False)
    packet = RtpPacket.parse(buf)
    assert (packet.ssrc, packet.sequence_number, packet.timestamp) == (0x11111111, 0xFFFF, 7)
    assert packet.payload_type == 100 and not packet.marker
    assert packet.extensions == {1: b"\xab", 2: b"\xcd\xef"} and packet.payload == b"hi"
    rtp.rewrite(buf, ssrc=1, seq=2, timestamp=3, marker=True)
    assert RtpPacket.parse(buf).payload_type == 100
    assert RtpPacket.parse(buf).marker
    assert rtp.ssrc_of(buf) == 1
    assert rtp.sequence_number_of(buf) == 2
    assert rtp.timestamp_of(buf) == 3
    assert rtp.payload_type_of(buf) == 100
    assert rtp.set_extension_inplace(buf, 2, b"\x01\x02")
    assert not rtp.set_extension_inplace(buf, 2, b"\x01")
    assert not rtp.set_extension_inplace(buf, 9, b"\x01")
    assert RtpPacket.parse(buf).extensions[2] == b"\x01\x02"
    with pytest.raises(ParseError):
        rtp.rewrite(bytearray(11), 1, 2, 3)


# -- properties ---------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
one_byte_extensions = st.dictionaries(
    st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=6
)
two_byte_extensions = st.dictionaries(
    st.integers(1, 255), st.binary(min_size=0, max_size=40), max_size=6
)
other_profiles = st.integers(0, 0xFFFF).filter(
    lambda p: p != rtp.ONE_BYTE_PROFILE and p & 0xFFF0 != 0x1000
)


@st.composite
def packets(draw: st.DrawFn) -> RtpPacket:
    kind = draw(st.sampled_from(["none", "one", "two", "other"]))
    profile: int | None = None
    extensions: dict[int, bytes] = {}
    extension_data = b""
    if kind == "one":
        profile = rtp.ONE_BYTE_PROFILE
        extensions = draw(one_byte_extensions)
    elif kind == "two":
        profile = 0x1000 | draw(st.integers(0, 15))
        extensions = draw(two_byte_extensions)
    elif kind == "other":
        profile = draw(other_profiles)
        extension_data = draw(st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4)))
    return RtpPacket(
        payload_type=draw(st.integers(0, 127)),
        sequence_number=draw(st.integers(0, 0xFFFF)),
        timestamp=draw(u32),
        ssrc=draw(u32),
        payload=draw(st.binary(max_size=64)),
        marker=draw(st.booleans()),
        csrc=draw(st.lists(u32, max_size=15)),
        extension_profile=profile,
        extensions=extensions,
        extension_data=extension_data,
        padding_size=draw(st.integers(0, 255)),
    )


@given(packets())
def test_round_trip(packet: RtpPacket) -> None:
    data = bytes(packet)
    assert RtpPacket.parse(data) == packet
    assert not rtp.is_rtcp(data) or 64 <= packet.payload_type <= 95


@given(packets(), st.data())
def test_fast_helpers_agree_with_the_dataclass(packet: RtpPacket, data: st.DataObject) -> None:
    buf = bytearray(bytes(packet))
    assert rtp.header_size(buf) == len(buf) - len(packet.payload) - packet.padding_size
    assert rtp.ssrc_of(buf) == packet.ssrc
    assert rtp.sequence_number_of(buf) == packet.sequence_number
    assert rtp.timestamp_of(buf) == packet.timestamp
    assert rtp.payload_type_of(buf) == packet.payload_type
    for ext_id in range(256):
        found = rtp.find_extension(memoryview(buf), ext_id)
        if ext_id in packet.extensions:
            assert found is not None
            offset, length = found
            assert bytes(buf[offset : offset + length]) == packet.extensions[ext_id]
        else:
            assert found is None

    ssrc, seq, timestamp = data.draw(u32), data.draw(st.integers(0, 0xFFFF)), data.draw(u32)
    payload_type = data.draw(st.none() | st.integers(0, 127))
    marker = data.draw(st.none() | st.booleans())
    rtp.rewrite(buf, ssrc, seq, timestamp, payload_type, marker)
    expected = dataclasses.replace(
        packet,
        ssrc=ssrc,
        sequence_number=seq,
        timestamp=timestamp,
        payload_type=packet.payload_type if payload_type is None else payload_type,
        marker=packet.marker if marker is None else marker,
    )
    assert RtpPacket.parse(buf) == expected

    if packet.extensions:
        ext_id = data.draw(st.sampled_from(sorted(packet.extensions)))
        size = len(packet.extensions[ext_id])
        before = bytes(buf)
        assert not rtp.set_extension_inplace(buf, ext_id, bytes(size + 1))
        assert bytes(buf) == before
        value = data.draw(st.binary(min_size=size, max_size=size))
        assert rtp.set_extension_inplace(buf, ext_id, value)
        expected.extensions[ext_id] = value
        assert RtpPacket.parse(buf) == expected


def _check_arbitrary(data: bytes) -> None:
    try:
        packet = RtpPacket.parse(data)
    except ParseError:
        parsed = False
    else:
        parsed = True
        assert rtp.header_size(data) == len(data) - len(packet.payload) - packet.padding_size
        again = RtpPacket.parse(bytes(packet))
        assert again == packet
        for ext_id in range(256):
            found = rtp.find_extension(data, ext_id)
            if ext_id in packet.extensions:
                assert found is not None
                assert data[found[0] : found[0] + found[1]] == packet.extensions[ext_id]
            else:
                assert found is None
    for helper in (rtp.header_size, lambda d: rtp.find_extension(d, 1)):
        try:
            helper(data)
        except ParseError:
            assert not parsed


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    _check_arbitrary(data)


@given(
    st.tuples(
        st.integers(0, 0x3F).map(lambda b: 0x80 | b),  # version 2, any P/X/CC
        st.binary(min_size=11, max_size=60),
        st.sampled_from([b"\xbe\xde", b"\x10\x00", b"\x10\x07", b"\x12\x34"]),
        st.integers(0, 8),
        st.binary(max_size=40),
    ).map(lambda t: bytes([t[0] & ~0x0F | 0x10]) + t[1][:11] + t[2] + bytes([0, t[3]]) + t[4])
)
def test_arbitrary_extension_blocks_parse_or_raise(data: bytes) -> None:
    """Version 2 with X set, no CSRC and a real profile: exercises the element walks."""
    _check_arbitrary(data)
