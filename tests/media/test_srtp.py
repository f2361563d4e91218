"""SRTP/SRTCP sessions over pylibsrtp (RFC 3711, RFC 7714)."""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from incamera.media.srtp import (
    OUTBOUND_REPLAY_WINDOW,
    SrtpError,
    SrtpKeys,
    SrtpProfile,
    SrtpSession,
)


def rtp(sequence: int, ssrc: int = 0x11223344, payload: bytes = b"payload" * 20) -> bytes:
    return struct.pack("!BBHII", 0x80, 96, sequence & 0xFFFF, sequence * 3000, ssrc) + payload


def sender_report(ssrc: int = 0x11223344) -> bytes:
    # RFC 3550 6.4.1 SR without report blocks: length 6 (28 bytes).
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def pair(profile: SrtpProfile) -> tuple[SrtpSession, SrtpSession]:
    length = profile.key_length + profile.salt_length
    a, b = os.urandom(length), os.urandom(length)
    return SrtpSession(SrtpKeys(profile, a, b)), SrtpSession(SrtpKeys(profile, b, a))


@pytest.mark.parametrize(
    ("profile", "tag"),
    [(SrtpProfile.AEAD_AES_128_GCM, 16), (SrtpProfile.AES128_CM_SHA1_80, 10)],
)
def test_rtp_and_rtcp_round_trip_both_ways(profile: SrtpProfile, tag: int) -> None:
    left, right = pair(profile)
    for seq in range(5):
        packet = rtp(seq)
        protected = left.protect(packet)
        assert len(protected) == len(packet) + tag
        assert protected[12:] != packet[12:]  # the payload is encrypted
        assert right.unprotect(protected) == packet
        assert left.unprotect(right.protect(rtp(seq, ssrc=7))) == rtp(seq, ssrc=7)
    report = sender_report()
    assert right.unprotect_rtcp(left.protect_rtcp(report)) == report
    assert left.unprotect_rtcp(right.protect_rtcp(report)) == report


def test_tampering_is_an_auth_error() -> None:
    left, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    protected = bytearray(left.protect(rtp(1)))
    protected[20] ^= 0x01
    with pytest.raises(SrtpError) as info:
        right.unprotect(bytes(protected))
    assert info.value.reason == "auth"
    assert "authentication" in str(info.value)


def test_wrong_key_is_an_auth_error() -> None:
    left, _ = pair(SrtpProfile.AES128_CM_SHA1_80)
    stranger, _ = pair(SrtpProfile.AES128_CM_SHA1_80)
    with pytest.raises(SrtpError) as info:
        stranger.unprotect(left.protect(rtp(1)))
    assert info.value.reason == "auth"
    with pytest.raises(SrtpError) as info:
        stranger.unprotect_rtcp(left.protect_rtcp(sender_report()))
    assert info.value.reason == "auth"


def test_replay_is_a_replay_error() -> None:
    left, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    protected = left.protect(rtp(10))
    right.unprotect(protected)
    with pytest.raises(SrtpError) as info:
        right.unprotect(protected)
    assert info.value.reason == "replay"
    report = left.protect_rtcp(sender_report())
    right.unprotect_rtcp(report)
    with pytest.raises(SrtpError) as info:
        right.unprotect_rtcp(report)
    assert info.value.reason == "replay"


def test_reordering_within_the_replay_window_is_accepted() -> None:
    # The default libsrtp window is 128 packets; ours is larger (1024).
    left, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    protected = [left.protect(rtp(seq)) for seq in range(600)]
    right.unprotect(protected[-1])
    assert right.unprotect(protected[0]) == rtp(0)


def test_a_late_packet_is_sent_within_the_outbound_window_and_refused_beyond() -> None:
    left, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    newest = OUTBOUND_REPLAY_WINDOW + 100
    for seq in range(newest + 1):
        if seq not in (50, 150):  # two packets held back, as a publisher's repair would be
            left.protect(rtp(seq))
    late = left.protect(rtp(150))  # 250 behind the newest: still within 256
    right.unprotect(left.protect(rtp(newest + 1)))
    assert right.unprotect(late) == rtp(150)
    with pytest.raises(SrtpError) as too_late:
        left.protect(rtp(50))  # 350 behind: the subscriber NACKs it, RTX answers instead
    assert too_late.value.reason == "replay"


def test_retransmission_with_the_same_sequence_number_can_be_protected() -> None:
    left, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    first = left.protect(rtp(5))
    again = left.protect(rtp(5))  # allow_repeat_tx: NACK retransmission without RTX
    assert right.unprotect(first) == rtp(5)
    assert first == again


@pytest.mark.parametrize("data", [b"", b"\x80", b"\x80" * 7, b"\x00" * 1500])
def test_malformed_input_is_an_srtp_error(data: bytes) -> None:
    left, right = pair(SrtpProfile.AES128_CM_SHA1_80)
    for operation in (left.protect, right.unprotect, left.protect_rtcp, right.unprotect_rtcp):
        with pytest.raises(SrtpError):
            operation(data)


@settings(max_examples=200)
@given(st.binary(max_size=1600))
def test_arbitrary_bytes_unprotect_or_raise_srtp_error(data: bytes) -> None:
    _, right = pair(SrtpProfile.AEAD_AES_128_GCM)
    for operation in (right.unprotect, right.unprotect_rtcp):
        try:
            operation(data)
        except SrtpError as exc:
            assert exc.reason in ("auth", "replay", "malformed", "other")


def test_key_lengths_are_checked_and_never_printed() -> None:
    with pytest.raises(ValueError):
        SrtpKeys(SrtpProfile.AEAD_AES_128_GCM, b"\x00" * 30, b"\x00" * 28)
    keys = SrtpKeys(SrtpProfile.AEAD_AES_128_GCM, b"\xab" * 28, b"\xcd" * 28)
    assert "abab" not in repr(keys).lower()
    assert "cdcd" not in repr(keys).lower()
    assert SrtpProfile.AEAD_AES_128_GCM.salt_length == 12
    assert SrtpProfile.AES128_CM_SHA1_80.salt_length == 14
