"""DTLS record framing (RFC 6347 section 4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.dtls_record import (
    HEADER_LENGTH,
    MAX_FRAGMENT_LENGTH,
    ContentType,
    DtlsRecord,
    ProtocolVersion,
    parse_records,
    split_records,
)
from incamera.media.errors import ParseError

records = st.builds(
    DtlsRecord,
    content_type=st.sampled_from([int(t) for t in ContentType]),
    version=st.sampled_from([int(v) for v in ProtocolVersion]),
    epoch=st.integers(0, 0xFFFF),
    sequence_number=st.integers(0, 2**48 - 1),
    fragment=st.binary(max_size=300),
)


def test_known_bytes() -> None:
    # A handshake record of epoch 1, sequence number 0x010203040506, 3-byte fragment.
    data = bytes.fromhex("16 fefd 0001 010203040506 0003 aabbcc")
    record = DtlsRecord.parse(data)
    assert record == DtlsRecord(ContentType.HANDSHAKE, 0xFEFD, 1, 0x010203040506, b"\xaa\xbb\xcc")
    assert bytes(record) == data
    assert len(record) == len(data) == HEADER_LENGTH + 3


@given(records)
def test_round_trip(record: DtlsRecord) -> None:
    assert DtlsRecord.parse(bytes(record)) == record


@given(st.lists(records, min_size=1, max_size=5))
def test_several_records_per_datagram(items: list[DtlsRecord]) -> None:
    datagram = b"".join(bytes(r) for r in items)
    assert parse_records(datagram) == items
    assert split_records(datagram) == [bytes(r) for r in items]


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_parse_error(data: bytes) -> None:
    try:
        parsed = parse_records(data)
    except ParseError:
        return
    assert b"".join(bytes(r) for r in parsed) == data


@given(records, st.data())
def test_truncation_is_a_parse_error(record: DtlsRecord, data: st.DataObject) -> None:
    encoded = bytes(record)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(ParseError):
        parse_records(encoded[:cut])
    with pytest.raises(ParseError):
        DtlsRecord.parse(encoded + b"\x00")  # trailing bytes after exactly one record


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("19 fefd 0000 000000000000 0000")[:-1],  # header one byte short
        bytes.fromhex("13 fefd 0000 000000000000 0000"),  # content type 19
        bytes.fromhex("1a fefd 0000 000000000000 0000"),  # content type 26
        bytes.fromhex("40 fefd 0000 000000000000 0000"),  # 64: RTP range
        bytes.fromhex("16 0303 0000 000000000000 0000"),  # TLS 1.2 version, not DTLS
        bytes.fromhex("16 fefc 0000 000000000000 0000"),  # DTLS 1.3 ciphertext-ish version
        bytes.fromhex("17 fefd 0000 000000000000 0005 0102"),  # length beyond the datagram
        bytes.fromhex("17 fefd 0000 000000000000 4801") + b"\x00" * 0x4801,  # too long
        bytes.fromhex("16 fefd 0000 000000000000 0000 16"),  # second record truncated
    ],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_records(data)


def test_maximum_length_is_accepted() -> None:
    data = bytes.fromhex("17 fefd 0001 000000000001") + MAX_FRAGMENT_LENGTH.to_bytes(2, "big")
    data += b"\x00" * MAX_FRAGMENT_LENGTH
    assert len(parse_records(data)[0].fragment) == MAX_FRAGMENT_LENGTH


@pytest.mark.parametrize(
    "record",
    [
        DtlsRecord(19, 0xFEFD, 0, 0, b""),
        DtlsRecord(22, 0x0303, 0, 0, b""),
        DtlsRecord(22, 0xFEFD, 0x10000, 0, b""),
        DtlsRecord(22, 0xFEFD, 0, 2**48, b""),
        DtlsRecord(22, 0xFEFD, 0, -1, b""),
        DtlsRecord(23, 0xFEFD, 0, 0, b"\x00" * (MAX_FRAGMENT_LENGTH + 1)),
    ],
)
def test_serialising_invalid_fields_is_refused(record: DtlsRecord) -> None:
    with pytest.raises(ValueError):
        bytes(record)
