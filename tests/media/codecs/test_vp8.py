"""VP8 payload descriptor (RFC 7741 §4.2), payload header P bit (§4.3), picture id rewrite."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.codecs import vp8
from incamera.media.codecs.vp8 import Vp8Descriptor, Vp8Rewriter
from incamera.media.errors import ParseError

# RFC 7741 §4.3: a key frame's payload starts with the 3-byte frame tag (P=0 in bit 0),
# then the start code 9d 01 2a and the 14-bit width/height (here 320x240, little endian).
KEY_FRAME_START = bytes.fromhex("5003009d012a4001f000")
DELTA_FRAME_START = bytes.fromhex("3102")  # P bit (inverse key frame flag) = 1

# X=1 S=1 PID=0 | I L T K | M=1 picture id 0x1234 | TL0PICIDX 0x56 | TID=2 Y=1 KEYIDX=7
FULL_DESCRIPTOR = bytes.fromhex("90 f0 92 34 56 a7")


def test_minimal_descriptor() -> None:
    desc = Vp8Descriptor.parse(b"\x10" + KEY_FRAME_START)
    assert desc == Vp8Descriptor(start_of_partition=True)
    assert vp8.descriptor_size(b"\x10" + KEY_FRAME_START) == 1
    assert bytes(desc) == b"\x10"


def test_full_descriptor_bit_layout() -> None:
    desc = Vp8Descriptor.parse(FULL_DESCRIPTOR + KEY_FRAME_START)
    assert desc.start_of_partition
    assert not desc.non_reference
    assert desc.partition_index == 0
    assert desc.picture_id == 0x1234
    assert desc.long_picture_id
    assert desc.tl0picidx == 0x56
    assert desc.tid == 2
    assert desc.layer_sync
    assert desc.keyidx == 7
    assert bytes(desc) == FULL_DESCRIPTOR
    assert desc.size == 6
    assert vp8.descriptor_size(FULL_DESCRIPTOR + KEY_FRAME_START) == 6


def test_seven_bit_picture_id_and_reserved_bits_ignored() -> None:
    # X=1, R=1 (reserved, must be ignored), N=0, S=1; I=1; M=0 picture id 17.
    data = bytes.fromhex("d0 80 11") + KEY_FRAME_START
    desc = Vp8Descriptor.parse(data)
    assert desc.picture_id == 17
    assert not desc.long_picture_id
    assert desc.tl0picidx is None and desc.tid is None and desc.keyidx is None
    assert bytes(desc) == bytes.fromhex("90 80 11")


def test_non_reference_partition_index_and_key_index_only() -> None:
    # X=1 N=1 S=0 PID=5; K only: TID/Y bits are ignored, KEYIDX=31.
    desc = Vp8Descriptor.parse(bytes.fromhex("a5 10 ff"))
    assert desc.non_reference and not desc.start_of_partition
    assert desc.partition_index == 5
    assert desc.tid is None and not desc.layer_sync
    assert desc.keyidx == 31
    assert bytes(desc) == bytes.fromhex("a5 10 1f")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",  # X=1 without the X byte
        b"\x90\x80",  # I=1 without picture id
        b"\x90\x80\x92",  # M=1 with only one picture id byte
        b"\x90\x40",  # L=1 without TL0PICIDX
        b"\x90\x20",  # T=1 without TID byte
        b"\x90\xf0\x92\x34\x56",  # T/K byte missing
    ],
)
def test_truncated_descriptors_raise(data: bytes) -> None:
    with pytest.raises(ParseError):
        Vp8Descriptor.parse(data)
    with pytest.raises(ParseError):
        vp8.descriptor_size(data)
    with pytest.raises(ParseError):
        vp8.is_keyframe(data)


def test_keyframe_detection() -> None:
    assert vp8.is_keyframe(b"\x10" + KEY_FRAME_START)
    assert vp8.is_keyframe(FULL_DESCRIPTOR + KEY_FRAME_START)
    # Same descriptor, delta frame: P bit set.
    assert not vp8.is_keyframe(FULL_DESCRIPTOR + DELTA_FRAME_START)
    # Not the start of a partition (S=0): a continuation packet of a key frame.
    assert not vp8.is_keyframe(b"\x00" + KEY_FRAME_START)
    # Start of partition 1, not 0.
    assert not vp8.is_keyframe(b"\x11" + KEY_FRAME_START)
    # S=0 packets need no payload header at all.
    assert not vp8.is_keyframe(b"\x00")


def test_start_of_partition_zero_without_payload_header_raises() -> None:
    with pytest.raises(ParseError):
        vp8.is_keyframe(b"\x10")
    with pytest.raises(ParseError):
        vp8.is_keyframe(FULL_DESCRIPTOR)


def test_serialise_rejects_out_of_range_values() -> None:
    with pytest.raises(ValueError):
        bytes(Vp8Descriptor(picture_id=200, long_picture_id=False))
    with pytest.raises(ValueError):
        bytes(Vp8Descriptor(picture_id=1 << 15))
    with pytest.raises(ValueError):
        bytes(Vp8Descriptor(partition_index=8))
    with pytest.raises(ValueError):
        bytes(Vp8Descriptor(tid=4))


def test_rewrite_long_picture_id_in_place() -> None:
    buf = bytearray(b"\x00" * 12 + FULL_DESCRIPTOR + KEY_FRAME_START)
    vp8.rewrite_picture_id(buf, 12, 0x7ABC, 0x01)
    desc = Vp8Descriptor.parse(buf[12:])
    assert desc.picture_id == 0x7ABC and desc.long_picture_id
    assert desc.tl0picidx == 0x01
    assert desc.tid == 2 and desc.layer_sync and desc.keyidx == 7
    assert buf[:12] == b"\x00" * 12
    assert buf[18:] == KEY_FRAME_START


def test_rewrite_keeps_seven_bit_width() -> None:
    buf = bytearray(bytes.fromhex("90 80 11") + KEY_FRAME_START)
    vp8.rewrite_picture_id(buf, 0, 0x1FF, None)
    assert buf[2] == 0x7F
    desc = Vp8Descriptor.parse(buf)
    assert desc.picture_id == 0x7F and not desc.long_picture_id
    assert buf[3:] == KEY_FRAME_START


def test_rewrite_leaves_absent_fields_absent() -> None:
    original = b"\x10" + KEY_FRAME_START
    buf = bytearray(original)
    vp8.rewrite_picture_id(buf, 0, 1234, 99)
    assert bytes(buf) == original
    with pytest.raises(ParseError):
        vp8.rewrite_picture_id(bytearray(b"\x90\x80\x92"), 0, 1, None)


def _packet(picture_id: int, tl0: int, key: bool) -> bytearray:
    desc = Vp8Descriptor(start_of_partition=True, picture_id=picture_id, tl0picidx=tl0, tid=0)
    return bytearray(bytes(desc) + (KEY_FRAME_START if key else DELTA_FRAME_START))


def test_rewriter_keeps_ids_continuous_across_a_layer_switch() -> None:
    rewriter = Vp8Rewriter()
    out: list[tuple[int | None, int | None]] = []
    # Layer A: pictures 100..102 (tl0 7..9), the first one a key frame.
    for i, pid in enumerate((100, 101, 102)):
        buf = _packet(pid, 7 + i, key=i == 0)
        rewriter.rewrite_packet(buf, 0, keyframe=i == 0, switched=i == 0)
        d = Vp8Descriptor.parse(buf)
        out.append((d.picture_id, d.tl0picidx))
    # Switch to layer B at its key frame, picture 32766 (about to wrap), tl0 250.
    for i, pid in enumerate((32766, 32767, 0, 1)):
        key = i == 0
        buf = _packet(pid, (250 + i) % 256, key=key)
        assert vp8.is_keyframe(buf) == key
        rewriter.rewrite_packet(buf, 0, keyframe=key, switched=key)
        d = Vp8Descriptor.parse(buf)
        out.append((d.picture_id, d.tl0picidx))
    # The first consumer packet passes through; then the numbering just goes on.
    assert out == [(100, 7), (101, 8), (102, 9), (103, 10), (104, 11), (105, 12), (106, 13)]


def test_rewriter_gives_all_packets_of_a_frame_the_same_id() -> None:
    rewriter = Vp8Rewriter()
    assert rewriter.rewrite(10, 1, keyframe=True, switched=True) == (10, 1)
    assert rewriter.rewrite(11, 2, keyframe=False, switched=False) == (11, 2)
    # New layer, key frame split over three packets: only the first is flagged "switched".
    assert rewriter.rewrite(500, 40, keyframe=True, switched=True) == (12, 3)
    assert rewriter.rewrite(500, 40, keyframe=True, switched=False) == (12, 3)
    assert rewriter.rewrite(500, 40, keyframe=True, switched=False) == (12, 3)
    assert rewriter.rewrite(501, 41, keyframe=False, switched=False) == (13, 4)


def test_rewriter_refuses_a_switch_on_a_delta_frame() -> None:
    with pytest.raises(ValueError):
        Vp8Rewriter().rewrite(1, 1, keyframe=False, switched=True)


# --- property tests -----------------------------------------------------------------

descriptors = st.builds(
    Vp8Descriptor,
    non_reference=st.booleans(),
    start_of_partition=st.booleans(),
    partition_index=st.integers(0, 7),
    long_picture_id=st.booleans(),
    tl0picidx=st.none() | st.integers(0, 255),
    tid=st.none() | st.integers(0, 3),
    keyidx=st.none() | st.integers(0, 31),
).flatmap(
    lambda d: st.builds(
        lambda pid, y: Vp8Descriptor(
            non_reference=d.non_reference,
            start_of_partition=d.start_of_partition,
            partition_index=d.partition_index,
            picture_id=pid,
            long_picture_id=d.long_picture_id or pid is None,
            tl0picidx=d.tl0picidx,
            tid=d.tid,
            layer_sync=y and d.tid is not None,
            keyidx=d.keyidx,
        ),
        st.none() | st.integers(0, (1 << 15 if d.long_picture_id else 1 << 7) - 1),
        st.booleans(),
    )
)


@given(descriptors, st.binary(max_size=12))
def test_round_trip(desc: Vp8Descriptor, rest: bytes) -> None:
    wire = bytes(desc)
    assert Vp8Descriptor.parse(wire + rest) == desc
    assert vp8.descriptor_size(wire + rest) == len(wire)
    picture_id, long_pid, tl0 = vp8.read_picture_id(wire, 0)
    assert picture_id == desc.picture_id and tl0 == desc.tl0picidx
    if picture_id is not None:
        assert long_pid == desc.long_picture_id


@given(st.binary(max_size=24))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        desc = Vp8Descriptor.parse(data)
    except ParseError:
        with pytest.raises(ParseError):
            vp8.descriptor_size(data)
        return
    size = vp8.descriptor_size(data)
    assert desc.size <= size <= len(data)
    assert Vp8Descriptor.parse(bytes(desc)) == desc
    try:
        vp8.is_keyframe(data)
    except ParseError:
        assert size == len(data)  # only a missing payload header may fail now


@given(st.binary(max_size=24), st.integers(0, (1 << 15) - 1), st.integers(0, 255))
def test_in_place_rewrite_changes_only_the_ids(data: bytes, pid: int, tl0: int) -> None:
    try:
        before = Vp8Descriptor.parse(data)
    except ParseError:
        with pytest.raises(ParseError):
            vp8.rewrite_picture_id(bytearray(data), 0, pid, tl0)
        return
    buf = bytearray(data)
    vp8.rewrite_picture_id(buf, 0, pid, tl0)
    after = Vp8Descriptor.parse(buf)
    size = vp8.descriptor_size(data)
    assert buf[size:] == data[size:]
    expected_pid = None
    if before.picture_id is not None:
        expected_pid = pid if before.long_picture_id else pid & 0x7F
    assert after.picture_id == expected_pid
    assert after.tl0picidx == (tl0 if before.tl0picidx is not None else None)
    assert (after.tid, after.keyidx, after.partition_index) == (
        before.tid,
        before.keyidx,
        before.partition_index,
    )
