"""The test-only media tap records what the SFU forwards, and only when configured."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from incamera.media.errors import ParseError
from incamera.media.tap import MediaTap, read_tap
from incamera.media.worker import Worker


def test_records_round_trip(tmp_path: Path):
    tap = MediaTap(tmp_path / "tap")
    tap.record(b"\x80\x60first", False)
    tap.record(memoryview(b"\x80\x61second"), True)
    tap.flush()
    records = list(read_tap((tmp_path / "tap").read_bytes()))
    tap.close()
    assert [(r.packet, r.is_rtx) for r in records] == [
        (b"\x80\x60first", False),
        (b"\x80\x61second", True),
    ]


@given(st.binary(max_size=300))
def test_reading_arbitrary_bytes_gives_records_or_parse_error(data: bytes):
    try:
        for record in read_tap(data):
            assert len(record.packet) <= len(data)
    except ParseError:
        pass


async def test_a_worker_has_no_tap_unless_configured(tmp_path: Path):
    plain = Worker()
    assert plain.tap is None
    tapped = Worker(tap_path=str(tmp_path / "tap"))
    await tapped.start()
    try:
        assert tapped.tap is not None
        router = tapped.create_router()
        tapped.create_transport(router)
        assert all(t.tap is tapped.tap for t in tapped.transports.values())
    finally:
        await tapped.close()
    assert (tmp_path / "tap").exists()


@pytest.mark.parametrize("flags", [0x02, 0x80])
def test_unknown_flags_are_refused(flags: int):
    with pytest.raises(ParseError):
        list(read_tap(bytes([flags, 0, 1, 0x80])))
