"""DTLS record layer framing (RFC 6347 section 4.1).

Only the record header is read here, never the (possibly encrypted) fragment. The SFU uses
:func:`parse_records` to check that a datagram in the DTLS demultiplexing range (first byte
20..63, RFC 7983 section 7) is a well-formed sequence of records before OpenSSL sees it, and
the DTLS endpoint uses it to cut OpenSSL's output into datagrams on record boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from .errors import ParseError

HEADER_LENGTH = 13
# RFC 6347 section 4.1 / RFC 5246 section 6.2.3: TLSCiphertext.length <= 2^14 + 2048.
MAX_FRAGMENT_LENGTH = 2**14 + 2048
MAX_SEQUENCE_NUMBER = 2**48 - 1


class ContentType(IntEnum):
    """TLS ContentType values a DTLS 1.2 record may carry (RFC 5246, RFC 6520, RFC 9146)."""

    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23
    HEARTBEAT = 24
    TLS12_CID = 25


class ProtocolVersion(IntEnum):
    """On-the-wire version of a record: the one's complement of the DTLS version."""

    DTLS_1_0 = 0xFEFF  # also used by a DTLS 1.2 ClientHello's record (RFC 6347 4.1)
    DTLS_1_2 = 0xFEFD


@dataclass(slots=True)
class DtlsRecord:
    """One DTLS record: RFC 6347 section 4.1 ``DTLSPlaintext`` / ``DTLSCiphertext``.

    ::

        struct {
            ContentType type;          // 1 byte
            ProtocolVersion version;   // 2 bytes
            uint16 epoch;
            uint48 sequence_number;
            uint16 length;
            opaque fragment[length];
        } DTLSPlaintext;
    """

    content_type: int
    version: int
    epoch: int
    sequence_number: int
    fragment: bytes

    @classmethod
    def parse(cls, data: bytes) -> DtlsRecord:
        """Parse exactly one record; trailing bytes are an error."""
        record, end = _parse_at(data, 0)
        if end != len(data):
            raise ParseError(f"{len(data) - end} bytes after the DTLS record")
        return record

    def __bytes__(self) -> bytes:
        if self.content_type not in _CONTENT_TYPES:
            raise ValueError(f"invalid DTLS content type {self.content_type}")
        if self.version not in _VERSIONS:
            raise ValueError(f"invalid DTLS version {self.version:#06x}")
        if not 0 <= self.epoch <= 0xFFFF:
            raise ValueError(f"DTLS epoch out of range: {self.epoch}")
        if not 0 <= self.sequence_number <= MAX_SEQUENCE_NUMBER:
            raise ValueError(f"DTLS sequence number out of range: {self.sequence_number}")
        if len(self.fragment) > MAX_FRAGMENT_LENGTH:
            raise ValueError(f"DTLS fragment too long: {len(self.fragment)}")
        return (
            bytes((self.content_type,))
            + self.version.to_bytes(2, "big")
            + self.epoch.to_bytes(2, "big")
            + self.sequence_number.to_bytes(6, "big")
            + len(self.fragment).to_bytes(2, "big")
            + bytes(self.fragment)
        )

    def __len__(self) -> int:
        return HEADER_LENGTH + len(self.fragment)


_CONTENT_TYPES = frozenset(int(t) for t in ContentType)
_VERSIONS = frozenset(int(v) for v in ProtocolVersion)


def _parse_at(data: bytes, offset: int) -> tuple[DtlsRecord, int]:
    """Parse the record starting at ``offset``; returns it and the offset after it."""
    if len(data) - offset < HEADER_LENGTH:
        raise ParseError(f"DTLS record header truncated: {len(data) - offset} bytes")
    content_type = data[offset]
    if content_type not in _CONTENT_TYPES:
        raise ParseError(f"invalid DTLS content type {content_type}")
    version = int.from_bytes(data[offset + 1 : offset + 3], "big")
    if version not in _VERSIONS:
        raise ParseError(f"invalid DTLS version {version:#06x}")
    epoch = int.from_bytes(data[offset + 3 : offset + 5], "big")
    sequence_number = int.from_bytes(data[offset + 5 : offset + 11], "big")
    length = int.from_bytes(data[offset + 11 : offset + 13], "big")
    if length > MAX_FRAGMENT_LENGTH:
        raise ParseError(f"DTLS record length {length} exceeds {MAX_FRAGMENT_LENGTH}")
    start = offset + HEADER_LENGTH
    end = start + length
    if end > len(data):
        raise ParseError(f"DTLS record truncated: {length} announced, {len(data) - start} left")
    fragment = bytes(data[start:end])
    return DtlsRecord(content_type, version, epoch, sequence_number, fragment), end


def parse_records(datagram: bytes) -> list[DtlsRecord]:
    """All records of one datagram (RFC 6347 4.1.1: a datagram may carry several).

    Raises ``ParseError`` for an empty datagram or any malformed or truncated record.
    """
    if not datagram:
        raise ParseError("empty DTLS datagram")
    records = []
    offset = 0
    while offset < len(datagram):
        record, offset = _parse_at(datagram, offset)
        records.append(record)
    return records


def split_records(data: bytes) -> list[bytes]:
    """Cut a byte string holding whole records into the raw bytes of each record."""
    pieces = []
    offset = 0
    while offset < len(data):
        _, end = _parse_at(data, offset)
        pieces.append(bytes(data[offset:end]))
        offset = end
    return pieces
