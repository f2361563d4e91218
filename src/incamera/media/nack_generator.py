"""Loss detection on an incoming stream and the NACKs the SFU sends upstream (RFC 4585 6.2.1).

When a publisher's packet is lost on the way to the SFU, every subscriber would miss it; the
SFU asks the publisher once, on behalf of all of them. A gap opens a NACK entry; the entry is
re-sent every ``retry_interval`` until the packet arrives, ``max_retries`` is reached, or the
packet is older than ``max_age``.
"""

from __future__ import annotations

from .seqnum import SeqUnwrapper

MAX_GAP = 512  # a bigger jump is a stream reset, not loss


class NackGenerator:
    __slots__ = (
        "_highest",
        "_missing",
        "_unwrap",
        "max_age",
        "max_retries",
        "recovered",
        "retry_interval",
    )

    def __init__(
        self, retry_interval: float = 0.04, max_retries: int = 8, max_age: float = 1.0
    ) -> None:
        self._unwrap = SeqUnwrapper()
        self._highest: int | None = None
        # unwrapped seq -> [first_seen_missing, next_send_time, retries]
        self._missing: dict[int, list[float]] = {}
        self.retry_interval = retry_interval
        self.max_retries = max_retries
        self.max_age = max_age
        self.recovered = 0

    def on_packet(self, seq: int, now: float) -> None:
        value = self._unwrap.unwrap(seq)
        highest = self._highest
        if highest is None or value - highest > MAX_GAP:
            self._highest = value
            self._missing.clear()
            return
        if value > highest:
            for missing in range(highest + 1, value):
                # A short reordering delay before the first NACK avoids asking for packets
                # that are merely late.
                self._missing[missing] = [now, now + 0.01, 0]
            self._highest = value
        elif self._missing.pop(value, None) is not None:
            self.recovered += 1

    def due(self, now: float) -> list[int]:
        """Sequence numbers (16-bit) to NACK now; updates retry bookkeeping."""
        if not self._missing:
            return []
        out: list[int] = []
        expired: list[int] = []
        for value, entry in self._missing.items():
            first, next_send, retries = entry
            if now - first > self.max_age or retries >= self.max_retries:
                expired.append(value)
            elif next_send <= now:
                entry[1] = now + self.retry_interval
                entry[2] = retries + 1
                out.append(value & 0xFFFF)
        for value in expired:
            del self._missing[value]
        return out

    @property
    def missing_count(self) -> int:
        return len(self._missing)
