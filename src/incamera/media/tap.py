"""A test-only tap: records every RTP packet the worker forwards, as it arrived.

Exists so the test suite can show what the server actually handles: with end-to-end
encryption, the payloads must be SFrame ciphertext. Enabled only by the server's
``testing.hooks`` + ``testing.media_tap_path`` settings; a production worker has no tap and
pays one ``is None`` check per packet.

File format (append-only): records of ``flags (1 byte) | length (2 bytes, big endian) |
packet``, where ``packet`` is the RTP packet after SRTP decryption (so: what the SFU sees)
and ``flags`` bit 0 marks a retransmission (RTX) packet.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import ParseError

_HEADER = struct.Struct(">BH")
FLAG_RTX = 0x01


class MediaTap:
    def __init__(self, path: str | Path) -> None:
        self._file: BinaryIO = open(path, "ab")  # noqa: SIM115 - lives as long as the worker
        self.records = 0

    def record(self, packet: bytes | bytearray | memoryview, is_rtx: bool) -> None:
        self._file.write(_HEADER.pack(FLAG_RTX if is_rtx else 0, len(packet)))
        self._file.write(packet)
        self.records += 1

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True, slots=True)
class TappedPacket:
    packet: bytes
    is_rtx: bool


def read_tap(data: bytes) -> Iterator[TappedPacket]:
    """The records of a tap file (a torn last record, being written, is left out)."""
    offset = 0
    while offset + _HEADER.size <= len(data):
        flags, length = _HEADER.unpack_from(data, offset)
        offset += _HEADER.size
        if flags & ~FLAG_RTX:
            raise ParseError(f"tap record with unknown flags {flags:#x}")
        if offset + length > len(data):
            return
        yield TappedPacket(bytes(data[offset : offset + length]), bool(flags & FLAG_RTX))
        offset += length
