"""16-bit RTP sequence number arithmetic (RFC 3550 section A.1) and unwrapping."""

from __future__ import annotations


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in 16-bit sequence space, in [-32768, 32767]."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


def seq_newer(a: int, b: int) -> bool:
    """True if a comes after b."""
    return 0 < ((a - b) & 0xFFFF) < 0x8000


class SeqUnwrapper:
    """Turns 16-bit sequence numbers into a monotonic 64-bit count (handles wrap-around)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: int | None = None

    def unwrap(self, seq: int) -> int:
        last = self._last
        if last is None:
            self._last = seq
            return seq
        diff = (seq - last) & 0xFFFF  # seq_diff, inline: this runs twice per packet
        value = last + (diff - 0x10000 if diff >= 0x8000 else diff)
        if value > last:
            self._last = value
        return value
