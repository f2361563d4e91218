"""Receiver statistics of one incoming stream, for RTCP receiver reports (RFC 3550 A.3, A.8)."""

from __future__ import annotations

from .clock import ntp_middle
from .seqnum import SeqUnwrapper


class ReceiveStats:
    __slots__ = (
        "_base",
        "_expected_prior",
        "_highest",
        "_jitter",
        "_last_sr_arrival",
        "_last_sr_middle",
        "_last_transit",
        "_received",
        "_received_prior",
        "_unwrap",
        "clock_rate",
    )

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._unwrap = SeqUnwrapper()
        self._base: int | None = None
        self._highest = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._last_transit: float | None = None
        self._last_sr_middle = 0
        self._last_sr_arrival = 0.0

    def on_packet(self, seq: int, timestamp: int, now: float) -> None:
        value = self._unwrap.unwrap(seq)
        if self._base is None:
            self._base = value
            self._highest = value
        elif value > self._highest:
            self._highest = value
        self._received += 1
        transit = now * self.clock_rate - timestamp
        if self._last_transit is not None:
            d = abs(transit - self._last_transit)
            if d < self.clock_rate * 10:  # ignore timestamp jumps (stream reset)
                self._jitter += (d - self._jitter) / 16
        self._last_transit = transit

    def on_sender_report(self, ntp: int, now: float) -> None:
        self._last_sr_middle = ntp_middle(ntp)
        self._last_sr_arrival = now

    @property
    def highest_sequence(self) -> int:
        return self._highest & 0xFFFFFFFF

    @property
    def cumulative_lost(self) -> int:
        if self._base is None:
            return 0
        lost = self._highest - self._base + 1 - self._received
        return max(-0x800000, min(0x7FFFFF, lost))

    def report(self, now: float) -> tuple[int, int, int, int, int, int]:
        """(fraction_lost, cumulative_lost, highest_seq, jitter, lsr, dlsr) for a report block;
        advances the interval used for ``fraction_lost``."""
        if self._base is None:
            return (0, 0, 0, 0, 0, 0)
        expected = self._highest - self._base + 1
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        dlsr = 0
        if self._last_sr_middle:
            dlsr = int((now - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
        return (
            fraction,
            self.cumulative_lost,
            self.highest_sequence,
            int(self._jitter),
            self._last_sr_middle,
            dlsr,
        )
