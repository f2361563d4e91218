"""RTCP (RFC 3550 §6, RFC 4585, RFC 5104, REMB, transport-cc): bit layouts by hand and
round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media import rtcp
from incamera.media.errors import ParseError
from incamera.media.rtcp import (
    Bye,
    FullIntraRequest,
    GenericNack,
    PictureLossIndication,
    ReceiverReport,
    Remb,
    ReportBlock,
    RtcpUnknown,
    SdesChunk,
    SenderReport,
    SourceDescription,
    TransportCcFeedback,
)


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


SENDER = "11 22 33 44"
MEDIA = "55 66 77 88"


# -- hand-built bit layouts ---------------------------------------------------------------


def test_generic_nack_layout() -> None:
    """RFC 4585 §6.2.1: PID=100, BLP=0x0005 means 100, 101 and 103 are lost."""
    data = h(f"81 cd 00 03 {SENDER} {MEDIA} 00 64 00 05")
    nack = GenericNack.parse(data)
    assert nack == GenericNack(0x11223344, 0x55667788, [100, 101, 103])
    assert nack.entries() == [(100, 0x0005)]
    assert bytes(nack) == data


def test_generic_nack_wraps_and_keeps_order() -> None:
    nack = GenericNack(1, 2, [65534, 65535, 0, 1, 17, 3])
    assert nack.entries() == [(65534, 0b111), (17, 0), (3, 0)]  # 17 is 19 past 65534
    assert GenericNack.parse(bytes(nack)).lost == [65534, 65535, 0, 1, 17, 3]


def test_pli_and_fir_layout() -> None:
    pli = h(f"81 ce 00 02 {SENDER} {MEDIA}")
    assert PictureLossIndication.parse(pli) == PictureLossIndication(0x11223344, 0x55667788)
    assert bytes(PictureLossIndication(0x11223344, 0x55667788)) == pli
    fir = h(f"84 ce 00 04 {SENDER} 00 00 00 00 {MEDIA} 2a 00 00 00")
    parsed = FullIntraRequest.parse(fir)
    assert parsed == FullIntraRequest(0x11223344, [(0x55667788, 42)])
    assert bytes(parsed) == fir


def test_remb_layout() -> None:
    # 1,000,000 bit/s = 250000 << 2: exponent 2, mantissa 250000 (0x3D090).
    data = h(f"8f ce 00 05 {SENDER} 00 00 00 00 52 45 4d 42 01 0b d0 90 {MEDIA}")
    remb = Remb.parse(data)
    assert remb == Remb(0x11223344, 1_000_000, [0x55667788])
    assert bytes(Remb(0x11223344, 1_000_000, [0x55667788])) == data
    # Rounds down to what an 18-bit mantissa carries.
    assert Remb.parse(bytes(Remb(1, (1 << 20) + 3))).bitrate == 1 << 20


def test_sender_report_layout() -> None:
    data = h(
        f"81 c8 00 0c {SENDER}"
        " 83 aa 7e 80 00 00 00 01"  # NTP
        " 00 00 03 e8 00 00 00 0a 00 00 04 00"  # RTP ts 1000, 10 packets, 1024 octets
        f" {MEDIA} 40 ff ff fe 00 01 00 05 00 00 00 07 12 34 56 78 00 01 00 00"
    )
    sr = SenderReport.parse(data)
    assert sr.ssrc == 0x11223344
    assert sr.ntp_timestamp == 0x83AA7E8000000001
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (1000, 10, 1024)
    assert sr.reports == [ReportBlock(0x55667788, 0x40, -2, 0x00010005, 7, 0x12345678, 0x00010000)]
    assert bytes(sr) == data


def test_receiver_report_sdes_bye_layout() -> None:
    rr = h(f"80 c9 00 01 {SENDER}")
    assert ReceiverReport.parse(rr) == ReceiverReport(0x11223344)
    sdes = h(f"81 ca 00 03 {SENDER} 01 04 61 62 63 64 00 00")
    parsed = SourceDescription.parse(sdes)
    assert parsed.chunks == [SdesChunk(0x11223344, [(rtcp.SDES_CNAME, b"abcd")])]
    assert parsed.chunks[0].cname == "abcd"
    assert bytes(parsed) == sdes
    # An item list that ends exactly on a word boundary still needs a null word.
    sdes = h(f"81 ca 00 03 {SENDER} 01 02 61 62 00 00 00 00")
    assert bytes(SourceDescription.parse(sdes)) == sdes
    bye = h(f"81 cb 00 03 {SENDER} 04 63 69 61 6f 00 00 00")
    assert Bye.parse(bye) == Bye([0x11223344], "ciao")
    assert bytes(Bye([0x11223344], "ciao")) == bye


def test_transport_cc_layout() -> None:
    # Base 5, 3 packets, reference time 1 (64 ms), feedback count 7, a run-length chunk of
    # three "small delta" (T=0, S=01, length 3), deltas 4, 8, 12 ticks, padded with P=1.
    data = h(f"af cd 00 06 {SENDER} {MEDIA} 00 05 00 03 00 00 01 07 20 03 04 08 0c 00 00 03")
    feedback = TransportCcFeedback.parse(data)
    assert feedback.fb_pkt_count == 7
    assert feedback.reference_time == 1
    assert feedback.base_sequence == 5
    assert feedback.packets == [(5, 65_000), (6, 67_000), (7, 70_000)]
    assert bytes(feedback) == data
    # One-bit vector (T=1, S=0): received, lost, received; a large (negative) delta is
    # only possible with a two-bit vector (T=1, S=1): small, large.
    one_bit = h(f"8f cd 00 06 {SENDER} {MEDIA} ff ff 00 03 00 00 00 00 a8 00 01 02 00 00 00 00")
    assert TransportCcFeedback.parse(one_bit).packets == [(65535, 250), (0, None), (1, 750)]
    two_bit = h(f"8f cd 00 06 {SENDER} {MEDIA} 00 00 00 02 00 00 02 00 d8 00 05 ff fe 00 00 00")
    assert TransportCcFeedback.parse(two_bit).packets == [(0, 129_250), (1, 128_750)]


def test_transport_cc_builder() -> None:
    packets: list[tuple[int, int | None]] = [(100, 1_000_000), (103, 1_000_250), (104, None)]
    feedback = TransportCcFeedback(1, 2, 9, packets)
    parsed = TransportCcFeedback.parse(bytes(feedback))
    assert parsed.reference_time == 1_000_000 // 64_000
    assert parsed.packets == [
        (100, 1_000_000),
        (101, None),
        (102, None),
        (103, 1_000_250),
        (104, None),
    ]
    # Arrival times are quantised down to 250 µs.
    assert TransportCcFeedback.parse(bytes(TransportCcFeedback(1, 2, 0, [(1, 1249)]))).packets == [
        (1, 1000)
    ]
    # Long runs become run-length chunks.
    many = [(i, 64_000 + 250 * i) for i in range(2000)]
    data = bytes(TransportCcFeedback(1, 2, 0, many))
    assert len(data) < 20 + 2 * 4 + 2000 + 4
    assert TransportCcFeedback.parse(data).packets == many
    with pytest.raises(ValueError):
        bytes(TransportCcFeedback(1, 2, 0, []))
    with pytest.raises(ValueError):
        bytes(TransportCcFeedback(1, 2, 0, [(5, 0), (4, 0)]))
    with pytest.raises(ValueError):  # 8.2 s between two packets
        bytes(TransportCcFeedback(1, 2, 0, [(5, 0), (6, 8_200_000)]))


def test_transport_cc_reference_time_wraps() -> None:
    period = (1 << 24) * 64_000
    late = [(1, period + 64_000), (2, period + 64_250)]
    parsed = TransportCcFeedback.parse(bytes(TransportCcFeedback(1, 2, 0, late)))
    assert parsed.reference_time == 1
    assert [t for _, t in parsed.packets] == [64_000, 64_250]


def test_compound_with_padding_and_unknown_packets() -> None:
    data = h(
        f"80 c9 00 01 {SENDER}"  # RR
        f" 80 cc 00 02 {SENDER} 6e 61 6d 65"  # APP "name"
        f" 81 cf 00 02 {SENDER} 01 02 03 04"  # XR, kept raw
        f" a1 cb 00 02 {SENDER} 00 00 00 04"  # BYE with 4 bytes of padding
    )
    packets = rtcp.parse_compound(data)
    assert packets == [
        ReceiverReport(0x11223344),
        RtcpUnknown(rtcp.APP, 0, h(f"{SENDER} 6e 61 6d 65")),
        RtcpUnknown(rtcp.XR, 1, h(f"{SENDER} 01 02 03 04")),
        Bye([0x11223344]),
    ]
    assert rtcp.serialize_compound(packets) == data[:-12] + h(f"81 cb 00 01 {SENDER}")
    # A PSFB application-layer message that is not REMB stays raw.
    afb = h(f"8f ce 00 03 {SENDER} 00 00 00 00 41 42 43 44")
    assert rtcp.parse_compound(afb) == [RtcpUnknown(rtcp.PSFB, 15, afb[4:])]


def test_unaligned_unknown_body_is_padded() -> None:
    packet = RtcpUnknown(rtcp.APP, 3, b"abcde")
    data = bytes(packet)
    assert len(data) == 12 and data[0] & 0x20 and data[-1] == 3
    assert rtcp.parse_compound(data) == [packet]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        h("80 c9 00"),
        h(f"40 c9 00 01 {SENDER}"),  # version 1
        h(f"80 c9 00 02 {SENDER}"),  # length overruns
        h(f"a0 c9 00 01 {SENDER[:-2]} 00"),  # padding count 0
        h(f"a0 c9 00 01 {SENDER[:-2]} 09"),  # padding longer than the packet
        h("a0 c9 00 00"),  # padding bit on an empty packet
        h(f"81 c9 00 01 {SENDER}"),  # RC=1 without a report block
        h("80 c8 00 01 00 00 00 01"),  # SR without sender info
        h(f"81 ca 00 02 {SENDER} 01 05 61 62"),  # SDES item overruns
        h(f"81 ca 00 01 {SENDER}"),  # SDES without END
        h(f"81 cb 00 02 {SENDER} 09 61 62 63"),  # BYE reason overruns
        h(f"81 cd 00 01 {SENDER}"),  # feedback without media SSRC
        h(f"a1 cd 00 03 {SENDER} {MEDIA} 00 02"),  # NACK FCI of 2 bytes
        h(f"84 ce 00 03 {SENDER} 00 00 00 00 {MEDIA}"),  # FIR entry truncated
        h(f"8f ce 00 04 {SENDER} 00 00 00 00 52 45 4d 42 02 00 00 01"),  # REMB SSRCs missing
        h(f"8f cd 00 04 {SENDER} {MEDIA} 00 00 00 00 00 00 00 00"),  # TWCC status count 0
        h(f"8f cd 00 04 {SENDER} {MEDIA} 00 00 00 01 00 00 00 00"),  # TWCC chunks missing
        h(f"8f cd 00 05 {SENDER} {MEDIA} 00 00 00 01 00 00 00 00 60 01 00 00"),  # reserved
        h(f"8f cd 00 05 {SENDER} {MEDIA} 00 00 00 03 00 00 00 00 20 03 01 02"),  # deltas cut
    ],
)
def test_malformed_packets_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        rtcp.parse_compound(data)


def test_single_parse_checks_kind_and_length() -> None:
    pli = bytes(PictureLossIndication(1, 2))
    with pytest.raises(ParseError):
        GenericNack.parse(pli)
    with pytest.raises(ParseError):
        PictureLossIndication.parse(pli + pli)


# -- properties ---------------------------------------------------------------------------

u32 = st.integers(0, 0xFFFFFFFF)
u16 = st.integers(0, 0xFFFF)
report_blocks = st.builds(
    ReportBlock,
    u32,
    st.integers(0, 255),
    st.integers(-(1 << 23), (1 << 23) - 1),
    u32,
    u32,
    u32,
    u32,
)
extensions = st.binary(max_size=12).map(lambda b: b + bytes(-len(b) % 4))
sender_reports = st.builds(
    SenderReport,
    u32,
    st.integers(0, (1 << 64) - 1),
    u32,
    u32,
    u32,
    st.lists(report_blocks, max_size=4),
    extensions,
)
receiver_reports = st.builds(ReceiverReport, u32, st.lists(report_blocks, max_size=4), extensions)
sdes = st.builds(
    SourceDescription,
    st.lists(
        st.builds(
            SdesChunk,
            u32,
            st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=20)), max_size=4),
        ),
        max_size=4,
    ),
)
byes = st.builds(
    Bye,
    st.lists(u32, max_size=5),
    st.none() | st.text(max_size=20).filter(lambda t: len(t.encode()) < 256),
)
nacks = st.builds(GenericNack, u32, u32, st.lists(u16, max_size=40))
plis = st.builds(PictureLossIndication, u32, u32)
firs = st.builds(
    FullIntraRequest, u32, st.lists(st.tuples(u32, st.integers(0, 255)), max_size=4), u32
)
rembs = st.builds(
    Remb,
    u32,
    st.tuples(st.integers(0, (1 << 18) - 1), st.integers(0, 63)).map(lambda t: t[0] << t[1]),
    st.lists(u32, max_size=5),
    u32,
)
unknowns = st.builds(
    RtcpUnknown,
    st.sampled_from([rtcp.APP, rtcp.XR, 192, 195, 210]),
    st.integers(0, 31),
    st.binary(max_size=40),
)


@st.composite
def transport_cc(draw: st.DrawFn) -> TransportCcFeedback:
    reference = draw(st.integers(0, (1 << 24) - 1))
    base = draw(u16)
    ticks = reference * 256
    packets: list[tuple[int, int | None]] = []
    for i, delta in enumerate(
        draw(
            st.lists(
                st.none() | st.integers(0, 255) | st.integers(-0x8000, 0x7FFF),
                min_size=1,
                max_size=60,
            )
        )
    ):
        if delta is None:
            packets.append(((base + i) & 0xFFFF, None))
        else:
            ticks += delta
            packets.append(((base + i) & 0xFFFF, ticks * 250))
    return TransportCcFeedback(draw(u32), draw(u32), draw(st.integers(0, 255)), packets, reference)


any_packet = st.one_of(
    sender_reports,
    receiver_reports,
    sdes,
    byes,
    nacks,
    plis,
    firs,
    rembs,
    transport_cc(),
    unknowns,
)


@given(any_packet)
def test_round_trip(packet: rtcp.RtcpPacket) -> None:
    data = bytes(packet)
    assert len(data) % 4 == 0
    assert type(packet).parse(data) == packet
    assert rtcp.parse_compound(data) == [packet]


@given(nacks)
def test_nack_lost_list_survives(nack: GenericNack) -> None:
    assert GenericNack.parse(bytes(nack)).lost == nack.lost
    assert len(nack.entries()) <= max(len(nack.lost), 1)


@given(st.lists(any_packet, min_size=1, max_size=6))
def test_compound_round_trip(packets: list[rtcp.RtcpPacket]) -> None:
    assert rtcp.parse_compound(rtcp.serialize_compound(packets)) == packets


def _check_arbitrary(data: bytes) -> None:
    try:
        packets = rtcp.parse_compound(data)
    except ParseError:
        return
    assert rtcp.parse_compound(rtcp.serialize_compound(packets)) == packets


@given(st.binary(max_size=120))
def test_arbitrary_bytes_parse_or_raise(data: bytes) -> None:
    _check_arbitrary(data)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 0x3F),
            st.sampled_from([200, 201, 202, 203, 204, 205, 206, 207]),
            st.binary(max_size=64),
        ),
        min_size=1,
        max_size=3,
    )
)
def test_well_framed_random_bodies_parse_or_raise(
    parts: list[tuple[int, int, bytes]],
) -> None:
    """Version 2 headers with correct lengths and random bodies of the known types, so
    the type-specific parsers (TWCC chunks, SDES items...) see a lot of junk."""
    data = b""
    for low_bits, packet_type, body in parts:
        body += bytes(-len(body) % 4)
        data += bytes([0x80 | low_bits, packet_type]) + (len(body) // 4).to_bytes(2, "big") + body
    _check_arbitrary(data)
