"""VP9 payload descriptor (RFC 9628 §4.2), scalability structure (§4.2.1), key frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.codecs import vp9
from incamera.media.codecs.vp9 import (
    Vp9Descriptor,
    Vp9PictureGroupEntry,
    Vp9Rewriter,
    Vp9ScalabilityStructure,
)
from incamera.media.errors import ParseError

# Non-flexible: I=1 L=1 B=1 E=1 | M=1 picture id 0x0102 | TID=1 U=1 SID=2 D=1 | TL0PICIDX 9
NON_FLEXIBLE = bytes.fromhex("ac 81 02 35 09")
# Flexible: I P L F B | M=0 picture id 5 | TID=0 SID=0 | P_DIFF 1 (N=1), P_DIFF 3 (N=0)
FLEXIBLE = bytes.fromhex("f8 05 00 03 06")
# Key picture with SS: I L B V | M=1 pid 0 | TID=0 SID=0 | TL0PICIDX 0 |
# SS: N_S=2 Y=1 G=1, 320x180 640x360 1280x720, N_G=2: (TID0 U0 R1 P_DIFF 2), (TID1 U1 R1 P_DIFF 1)
KEY_WITH_SS = bytes.fromhex("aa 80 00 00 00 58 0140 00b4 0280 0168 0500 02d0 02 04 02 34 01")


def test_non_flexible_bit_layout() -> None:
    desc = Vp9Descriptor.parse(NON_FLEXIBLE + b"frame")
    assert desc.picture_id == 0x0102 and desc.long_picture_id
    assert desc.start_of_frame and desc.end_of_frame
    assert not desc.inter_predicted and not desc.flexible and not desc.not_upper_reference
    assert (desc.tid, desc.switching_up, desc.sid, desc.inter_layer_dependent) == (1, True, 2, True)
    assert desc.spatial_id == 2 and desc.temporal_id == 1
    assert desc.tl0picidx == 9
    assert desc.p_diffs == () and desc.ss is None
    assert bytes(desc) == NON_FLEXIBLE
    assert Vp9Descriptor.parse_with_size(NON_FLEXIBLE + b"frame")[1] == len(NON_FLEXIBLE)


def test_flexible_mode_reference_indices() -> None:
    desc = Vp9Descriptor.parse(FLEXIBLE)
    assert desc.flexible and desc.inter_predicted
    assert desc.picture_id == 5 and not desc.long_picture_id
    assert desc.tid == 0 and desc.sid == 0
    assert desc.tl0picidx is None  # no TL0PICIDX in flexible mode
    assert desc.p_diffs == (1, 3)
    assert bytes(desc) == FLEXIBLE


def test_scalability_structure() -> None:
    desc = Vp9Descriptor.parse(KEY_WITH_SS + b"\x82\x49\x83")
    assert desc.ss == Vp9ScalabilityStructure(
        spatial_layers=3,
        resolutions=((320, 180), (640, 360), (1280, 720)),
        picture_group=(
            Vp9PictureGroupEntry(tid=0, switching_up=False, p_diffs=(2,)),
            Vp9PictureGroupEntry(tid=1, switching_up=True, p_diffs=(1,)),
        ),
    )
    assert bytes(desc) == KEY_WITH_SS


def test_keyframe_detection() -> None:
    assert vp9.is_keyframe(KEY_WITH_SS)
    assert vp9.is_keyframe(bytes.fromhex("08"))  # B=1 P=0, no layer indices
    assert vp9.is_keyframe(bytes.fromhex("88 05"))  # with a picture id, no layer indices
    assert not vp9.is_keyframe(NON_FLEXIBLE)  # spatial layer 2
    assert not vp9.is_keyframe(FLEXIBLE)  # inter-picture predicted
    assert not vp9.is_keyframe(bytes.fromhex("04"))  # not the start of a frame (B=0)
    # SID=1 of a key picture: not where a subscriber can start.
    assert not vp9.is_keyframe(bytes.fromhex("a8 80 00 02 00"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80",  # I=1 without picture id
        b"\x80\x81",  # M=1 with one byte
        b"\xa0\x05",  # L=1 without layer byte
        b"\xa0\x05\x00",  # non-flexible L=1 without TL0PICIDX
        b"\xd0\x05",  # flexible P=1 without P_DIFF
        b"\xd0\x05\x03\x03\x03\x02",  # four P_DIFFs
        b"\xd0\x05\x03",  # N=1 but nothing follows
        b"\x02",  # V=1 without SS
        b"\x02\x10\x01\x40",  # SS resolutions truncated
        b"\x02\x08",  # SS G=1 without N_G
        b"\x02\x08\x01\x08\x01",  # picture group entry with R=2, one P_DIFF
    ],
)
def test_malformed_descriptors_raise(data: bytes) -> None:
    with pytest.raises(ParseError):
        Vp9Descriptor.parse(data)


@pytest.mark.parametrize("data", [b"", b"\x88", b"\x88\x80", b"\xa8", b"\xa8\x80\x01"])
def test_keyframe_detection_of_truncated_descriptors_raises(data: bytes) -> None:
    with pytest.raises(ParseError):
        vp9.is_keyframe(data)


def test_serialise_rejects_inconsistent_descriptors() -> None:
    with pytest.raises(ValueError):
        bytes(Vp9Descriptor(flexible=True, inter_predicted=True))  # P_DIFF missing
    with pytest.raises(ValueError):
        bytes(Vp9Descriptor(tid=0, sid=0))  # non-flexible L=1 without TL0PICIDX
    with pytest.raises(ValueError):
        bytes(Vp9Descriptor(p_diffs=(1,)))
    with pytest.raises(ValueError):
        bytes(Vp9Descriptor(tl0picidx=3))


def test_rewrite_picture_id_and_tl0picidx_in_place() -> None:
    buf = bytearray(b"\xee" * 12 + NON_FLEXIBLE + b"frame")
    vp9.rewrite_picture_id(buf, 12, 0x7FFF, 0x42)
    desc = Vp9Descriptor.parse(buf[12:])
    assert desc.picture_id == 0x7FFF and desc.tl0picidx == 0x42
    assert (desc.tid, desc.sid) == (1, 2)
    assert buf[:12] == b"\xee" * 12 and buf[-5:] == b"frame"


def test_rewrite_keeps_width_and_p_diffs() -> None:
    buf = bytearray(FLEXIBLE)
    vp9.rewrite_picture_id(buf, 0, 300, 7)
    desc = Vp9Descriptor.parse(buf)
    assert desc.picture_id == 300 & 0x7F and not desc.long_picture_id
    assert desc.tl0picidx is None
    assert desc.p_diffs == (1, 3)


def test_rewriter_across_a_switch() -> None:
    rewriter = Vp9Rewriter()
    first = bytearray(NON_FLEXIBLE)  # picture 0x0102, tl0 9
    rewriter.rewrite_packet(first, 0, keyframe=True, switched=True)
    assert vp9.read_picture_id(first, 0) == (0x0102, True, 9)
    other = bytearray(KEY_WITH_SS)  # another stream: picture 0, tl0 0
    rewriter.rewrite_packet(other, 0, keyframe=True, switched=True)
    assert vp9.read_picture_id(other, 0) == (0x0103, True, 10)
    assert Vp9Descriptor.parse(other).ss == Vp9Descriptor.parse(KEY_WITH_SS).ss


# --- property tests -----------------------------------------------------------------


@st.composite
def descriptors(draw: st.DrawFn) -> Vp9Descriptor:
    flexible = draw(st.booleans())
    inter = draw(st.booleans())
    long_pid = draw(st.booleans())
    pid = draw(st.none() | st.integers(0, (1 << 15 if long_pid else 1 << 7) - 1))
    layered = draw(st.booleans())
    ss = draw(
        st.none()
        | st.integers(1, 8).flatmap(
            lambda n: st.builds(
                Vp9ScalabilityStructure,
                spatial_layers=st.just(n),
                resolutions=st.none()
                | st.tuples(*[st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))] * n),
                picture_group=st.none()
                | st.lists(
                    st.builds(
                        Vp9PictureGroupEntry,
                        tid=st.integers(0, 7),
                        switching_up=st.booleans(),
                        p_diffs=st.lists(st.integers(0, 255), max_size=3).map(tuple),
                    ),
                    max_size=4,
                ).map(tuple),
            )
        )
    )
    return Vp9Descriptor(
        inter_predicted=inter,
        flexible=flexible,
        start_of_frame=draw(st.booleans()),
        end_of_frame=draw(st.booleans()),
        not_upper_reference=draw(st.booleans()),
        picture_id=pid,
        long_picture_id=long_pid or pid is None,
        tid=draw(st.integers(0, 7)) if layered else None,
        switching_up=draw(st.booleans()) if layered else False,
        sid=draw(st.integers(0, 7)) if layered else None,
        inter_layer_dependent=draw(st.booleans()) if layered else False,
        tl0picidx=draw(st.integers(0, 255)) if layered and not flexible else None,
        p_diffs=tuple(draw(st.lists(st.integers(0, 127), min_size=1, max_size=3)))
        if flexible and inter
        else (),
        ss=ss,
    )


@given(descriptors(), st.binary(max_size=8))
def test_round_trip(desc: Vp9Descriptor, rest: bytes) -> None:
    wire = bytes(desc)
    parsed, size = Vp9Descriptor.parse_with_size(wire + rest)
    assert parsed == desc
    assert size == len(wire)
    assert vp9.is_keyframe(wire) == (
        desc.start_of_frame and not desc.inter_predicted and desc.spatial_id == 0
    )


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        desc, size = Vp9Descriptor.parse_with_size(data)
    except ParseError:
        return
    assert size <= len(data)
    assert Vp9Descriptor.parse(bytes(desc)) == desc
    assert vp9.is_keyframe(data) == (
        desc.start_of_frame and not desc.inter_predicted and desc.spatial_id == 0
    )


@given(st.binary(max_size=40), st.integers(0, (1 << 15) - 1), st.integers(0, 255))
def test_rewrite_on_arbitrary_bytes(data: bytes, pid: int, tl0: int) -> None:
    buf = bytearray(data)
    try:
        vp9.rewrite_picture_id(buf, 0, pid, tl0)
    except ParseError:
        return
    assert len(buf) == len(data)
    try:
        before = Vp9Descriptor.parse(data)
    except ParseError:
        return  # rewriting validates only up to the fields it writes
    after = Vp9Descriptor.parse(buf)
    if before.picture_id is not None:
        assert after.picture_id == (pid if before.long_picture_id else pid & 0x7F)
    assert after.tl0picidx == (tl0 if before.tl0picidx is not None else None)
    assert (after.tid, after.sid, after.p_diffs, after.ss) == (
        before.tid,
        before.sid,
        before.p_diffs,
        before.ss,
    )
