"""Offset-based picture id / TL0PICIDX rewriting across simulcast switches."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.codecs.picture_id import PictureIdRewriter


def test_first_packets_pass_through() -> None:
    rewriter = PictureIdRewriter()
    assert rewriter.rewrite(7, 3, keyframe=True, switched=True) == (7, 3)
    assert rewriter.rewrite(8, 3, keyframe=False, switched=False) == (8, 3)
    assert rewriter.last_picture_id == 8 and rewriter.last_tl0picidx == 3


def test_absent_fields_stay_absent() -> None:
    rewriter = PictureIdRewriter()
    assert rewriter.rewrite(None, None, keyframe=True, switched=True) == (None, None)
    assert rewriter.rewrite(5, None, keyframe=False, switched=False) == (5, None)


def test_reordered_packet_does_not_move_the_high_mark() -> None:
    rewriter = PictureIdRewriter()
    rewriter.rewrite(10, 0, keyframe=True, switched=True)
    rewriter.rewrite(12, 0, keyframe=False, switched=False)
    rewriter.rewrite(11, 0, keyframe=False, switched=False)  # late retransmission
    assert rewriter.rewrite(900, 50, keyframe=True, switched=True) == (13, 1)


def test_seven_bit_ids_wrap_at_128() -> None:
    rewriter = PictureIdRewriter()
    assert rewriter.rewrite(126, None, keyframe=True, switched=True, picture_id_bits=7) == (
        126,
        None,
    )
    assert rewriter.rewrite(5, None, keyframe=True, switched=True, picture_id_bits=7) == (
        127,
        None,
    )
    assert rewriter.rewrite(6, None, keyframe=False, switched=False, picture_id_bits=7) == (
        0,
        None,
    )
    assert rewriter.rewrite(90, None, keyframe=True, switched=True, picture_id_bits=7) == (
        1,
        None,
    )
    with pytest.raises(ValueError):
        rewriter.rewrite(1, None, keyframe=True, switched=False, picture_id_bits=8)


# A stream of frames: (layer, packets in the frame); a frame on a new layer is a key frame.
frames = st.lists(st.tuples(st.integers(0, 2), st.integers(1, 3)), min_size=1, max_size=60)


@given(
    frames,
    st.tuples(*[st.integers(0, (1 << 15) - 1)] * 3),
    st.tuples(*[st.integers(0, 255)] * 3),
    st.sampled_from([7, 15]),
)
def test_output_is_continuous_whatever_the_switches(
    stream: list[tuple[int, int]],
    pid_starts: tuple[int, int, int],
    tl0_starts: tuple[int, int, int],
    bits: int,
) -> None:
    modulus = 1 << bits
    next_pid = [p % modulus for p in pid_starts]
    next_tl0 = list(tl0_starts)
    rewriter = PictureIdRewriter()
    current: int | None = None
    outputs: list[tuple[int, int]] = []
    for layer, packets in stream:
        # Every layer keeps counting (its encoder runs whether forwarded or not).
        for other in range(3):
            if other != layer:
                next_pid[other] = (next_pid[other] + 1) % modulus
                next_tl0[other] = (next_tl0[other] + 1) % 256
        switched = layer != current
        current = layer
        frame_out = set()
        for i in range(packets):
            out = rewriter.rewrite(
                next_pid[layer],
                next_tl0[layer],
                keyframe=switched,
                switched=switched and i == 0,
                picture_id_bits=bits,
            )
            frame_out.add(out)
        assert len(frame_out) == 1  # every packet of a frame carries the same ids
        outputs.append(frame_out.pop())
        next_pid[layer] = (next_pid[layer] + 1) % modulus
        next_tl0[layer] = (next_tl0[layer] + 1) % 256
    for (pid_a, tl0_a), (pid_b, tl0_b) in itertools.pairwise(outputs):
        assert pid_b == (pid_a + 1) % modulus
        assert tl0_b == (tl0_a + 1) % 256
