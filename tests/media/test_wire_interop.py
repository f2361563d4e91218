"""Our STUN, RTP and RTCP wire formats against independent implementations (aioice and
aiortc): what one writes, the other must read the same way."""

from __future__ import annotations

import pytest
from aioice import stun as aioice_stun
from aiortc import rtp as aiortc_rtp
from hypothesis import given
from hypothesis import strategies as st

from incamera.media import rtcp, stun
from incamera.media.rtp import RtpPacket

pytestmark = pytest.mark.interop

KEY = b"remote-ice-password"


def test_aioice_request_parses_and_verifies() -> None:
    request = aioice_stun.Message(
        aioice_stun.Method.BINDING,
        aioice_stun.Class.REQUEST,
        attributes={
            "USERNAME": "local:remote",
            "PRIORITY": 1853824767,
            "ICE-CONTROLLING": 0x0102030405060708,
            "USE-CANDIDATE": None,
        },
    )
    request.add_message_integrity(KEY)
    data = bytes(request)
    assert stun.is_stun(data)
    message = stun.StunMessage.parse(data)
    assert message.message_type == stun.BINDING_REQUEST
    assert message.username() == "local:remote"
    assert message.priority() == 1853824767
    assert message.ice_controlling() == 0x0102030405060708
    assert message.use_candidate()
    assert stun.verify_message_integrity(data, KEY)
    assert not stun.verify_message_integrity(data, b"other")
    assert stun.verify_fingerprint(data)


@pytest.mark.parametrize("address", [("127.0.0.1", 40000), ("::1", 1)])
def test_our_binding_success_parses_in_aioice(address: tuple[str, int]) -> None:
    request = stun.StunMessage(stun.BINDING_REQUEST, bytes(range(12)))
    data = stun.binding_success(request, address, KEY)
    parsed = aioice_stun.parse_message(data)
    assert parsed.message_method == aioice_stun.Method.BINDING
    assert parsed.message_class == aioice_stun.Class.RESPONSE
    assert parsed.transaction_id == bytes(range(12))
    assert parsed.attributes["XOR-MAPPED-ADDRESS"] == address
    assert parsed.check_message_integrity(KEY)
    assert "FINGERPRINT" in parsed.attributes

    error = aioice_stun.parse_message(stun.binding_error(request, 487, "Role Conflict", KEY))
    assert error.message_class == aioice_stun.Class.ERROR
    assert error.attributes["ERROR-CODE"] == (487, "Role Conflict")
    assert error.check_message_integrity(KEY)


def test_rtcp_packets_read_by_aiortc() -> None:
    block = rtcp.ReportBlock(5, 12, -3, 70000, 40, 0x12345678, 655)
    packets: list[rtcp.RtcpPacket] = [
        rtcp.SenderReport(1, 0x83AA7E8000000001, 1000, 10, 12345, [block]),
        rtcp.ReceiverReport(2, [block]),
        rtcp.SourceDescription([rtcp.SdesChunk(1, [(rtcp.SDES_CNAME, b"abc")])]),
        rtcp.GenericNack(1, 2, [65535, 0, 2, 40]),
        rtcp.PictureLossIndication(1, 2),
        rtcp.Remb(1, 1_500_000, [2, 3]),
        rtcp.Bye([1, 2]),
    ]
    theirs = aiortc_rtp.RtcpPacket.parse(rtcp.serialize_compound(packets))
    sr, rr, sdes, nack, pli, remb, bye = theirs
    assert isinstance(sr, aiortc_rtp.RtcpSrPacket)
    assert sr.ssrc == 1
    assert sr.sender_info.ntp_timestamp == 0x83AA7E8000000001
    assert (sr.sender_info.packet_count, sr.sender_info.octet_count) == (10, 12345)
    for report in (sr.reports[0], rr.reports[0]):
        assert (report.ssrc, report.fraction_lost, report.packets_lost) == (5, 12, -3)
        assert (report.highest_sequence, report.jitter, report.lsr, report.dlsr) == (
            70000,
            40,
            0x12345678,
            655,
        )
    assert sdes.chunks[0].ssrc == 1 and sdes.chunks[0].items == [(1, b"abc")]
    assert (nack.fmt, nack.ssrc, nack.media_ssrc) == (1, 1, 2)
    # aiortc does not wrap PID + offset past 65535; we do.
    assert sorted(seq & 0xFFFF for seq in nack.lost) == [0, 2, 40, 65535]
    assert (pli.fmt, pli.ssrc, pli.media_ssrc) == (1, 1, 2)
    assert remb.fmt == 15
    assert aiortc_rtp.unpack_remb_fci(remb.fci) == (1_500_000, [2, 3])
    assert bye.sources == [1, 2]


def test_aiortc_rtcp_read_by_us() -> None:
    info = aiortc_rtp.RtcpReceiverInfo(
        ssrc=5, fraction_lost=1, packets_lost=-7, highest_sequence=9, jitter=3, lsr=4, dlsr=6
    )
    theirs = [
        aiortc_rtp.RtcpSrPacket(
            ssrc=1,
            sender_info=aiortc_rtp.RtcpSenderInfo(
                ntp_timestamp=123456789, rtp_timestamp=5, packet_count=6, octet_count=7
            ),
            reports=[info],
        ),
        aiortc_rtp.RtcpRtpfbPacket(fmt=1, ssrc=1, media_ssrc=2, lost=[10, 12, 30]),
        aiortc_rtp.RtcpPsfbPacket(
            fmt=15, ssrc=1, media_ssrc=0, fci=aiortc_rtp.pack_remb_fci(2_000_000, [2])
        ),
        aiortc_rtp.RtcpByePacket(sources=[1]),
    ]
    ours = rtcp.parse_compound(b"".join(bytes(p) for p in theirs))
    assert ours == [
        rtcp.SenderReport(1, 123456789, 5, 6, 7, [rtcp.ReportBlock(5, 1, -7, 9, 3, 4, 6)]),
        rtcp.GenericNack(1, 2, [10, 12, 30]),
        rtcp.Remb(1, ours[2].bitrate, [2]),
        rtcp.Bye([1]),
    ]
    assert abs(ours[2].bitrate - 2_000_000) < 2_000_000 >> 17


@given(
    st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), min_size=1, max_size=5)
    | st.dictionaries(st.integers(1, 255), st.binary(max_size=20), min_size=1, max_size=5),
    st.binary(max_size=30),
)
def test_rtp_header_extensions_agree_with_aiortc(extensions: dict, payload: bytes) -> None:
    ours = RtpPacket(96, 1, 2, 3, payload, extensions=extensions)
    data = bytes(ours)
    theirs = aiortc_rtp.RtpPacket.parse(data)
    assert theirs.payload == payload
    # aiortc keeps only the extensions it knows: hand it our raw block instead.
    profile, words = int.from_bytes(data[12:14], "big"), int.from_bytes(data[14:16], "big")
    block = data[16 : 16 + 4 * words]
    assert dict(aiortc_rtp.unpack_header_extensions(profile, block)) == extensions
    profile, value = aiortc_rtp.pack_header_extensions(list(extensions.items()))
    raw = bytearray(data[:12])  # our fixed header, X already set
    raw += profile.to_bytes(2, "big") + (len(value) // 4).to_bytes(2, "big") + value + payload
    assert RtpPacket.parse(bytes(raw)).extensions == extensions
