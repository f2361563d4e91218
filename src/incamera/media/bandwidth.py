"""Bandwidth estimation on both sides of the SFU.

- ``TwccRecorder`` (publisher side): records the transport-wide sequence number and arrival
  time of every packet a publisher sends, so the transport can return transport-wide
  congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01). The
  publisher's own congestion controller (GoogCC in browsers) turns that into its send rate,
  which is how a camera ramps up to HD.
- ``DownlinkEstimator`` (subscriber side): from the feedback a subscriber returns for what the
  SFU sent it, an AIMD estimate of the subscriber's downlink: grows multiplicatively while
  loss stays low and one-way delay does not build up, backs off to the delivered rate on
  loss or queueing. It drives which simulcast layers the subscriber's consumers get.
"""

from __future__ import annotations

from array import array

from .seqnum import SeqUnwrapper

MAX_FEEDBACK_PACKETS = 1000
SENT_HISTORY = 4096  # power of two
SENT_MASK = SENT_HISTORY - 1


class TwccRecorder:
    __slots__ = ("_arrivals", "_unwrap", "feedback_count")

    def __init__(self) -> None:
        self._unwrap = SeqUnwrapper()
        self._arrivals: dict[int, int] = {}  # unwrapped transport seq -> arrival time (µs)
        self.feedback_count = 0

    def on_packet(self, transport_seq: int, now: float) -> None:
        if len(self._arrivals) < MAX_FEEDBACK_PACKETS:
            self._arrivals[self._unwrap.unwrap(transport_seq)] = int(now * 1_000_000)

    def take(self) -> list[tuple[int, int | None]] | None:
        """Packets since the last feedback as (16-bit seq, arrival µs or None if missing),
        from the lowest to the highest sequence; None when nothing arrived."""
        if not self._arrivals:
            return None
        arrivals = self._arrivals
        self._arrivals = {}
        first, last = min(arrivals), max(arrivals)
        if last - first >= MAX_FEEDBACK_PACKETS:
            first = last - MAX_FEEDBACK_PACKETS + 1
        self.feedback_count = (self.feedback_count + 1) & 0xFF
        return [(seq & 0xFFFF, arrivals.get(seq)) for seq in range(first, last + 1)]


class DownlinkEstimator:
    """AIMD downlink estimate for one subscriber transport, from TWCC feedback or REMB."""

    INITIAL_BPS = 1_500_000
    MIN_BPS = 100_000
    MAX_BPS = 30_000_000

    def __init__(self, initial: int = INITIAL_BPS, maximum: int = MAX_BPS) -> None:
        self.estimate = initial
        self.maximum = maximum
        # Send time and size of recent packets, by transport-wide sequence number (a ring;
        # the transport's send kernel writes it directly, as next_sequence would).
        self.sent_seq = array("q", [-1]) * SENT_HISTORY
        self.sent_time = array("d", [0.0]) * SENT_HISTORY
        self.sent_size = array("q", [0]) * SENT_HISTORY
        self._unwrap = SeqUnwrapper()
        self.seq_cell = array("q", [0])  # the next transport-wide sequence number
        self.remote_estimate: int | None = None  # a REMB from the subscriber, if any
        self._feedback_at = -1e9  # when the last TWCC feedback arrived
        self.loss = 0.0

    @property
    def seq(self) -> int:
        return self.seq_cell[0]

    @seq.setter
    def seq(self, value: int) -> None:
        self.seq_cell[0] = value

    def next_sequence(self, now: float, size: int) -> int:
        """Assign the transport-wide sequence number of the next outgoing packet."""
        seq = self.seq
        self.seq = (seq + 1) & 0xFFFF
        slot = seq & SENT_MASK
        self.sent_seq[slot] = seq
        self.sent_time[slot] = now
        self.sent_size[slot] = size
        return seq

    def on_feedback(self, packets: list[tuple[int, int | None]], now: float) -> None:
        """One TWCC feedback: (seq, arrival µs or None) for each reported packet."""
        received = lost = 0
        acked_bytes = 0
        first_send = last_send = None
        delays: list[tuple[float, float]] = []
        for seq, arrival in packets:
            slot = seq & SENT_MASK
            if self.sent_seq[slot] != seq:
                continue
            self.sent_seq[slot] = -1
            send_time, size = self.sent_time[slot], self.sent_size[slot]
            if arrival is None:
                lost += 1
                continue
            received += 1
            acked_bytes += size
            if first_send is None:
                first_send = send_time
            last_send = send_time
            delays.append((send_time, arrival / 1_000_000 - send_time))
        total = received + lost
        if total == 0:
            return
        self._feedback_at = now
        self.loss = lost / total
        span = (last_send - first_send) if first_send is not None and last_send else 0.0
        acked_bps = acked_bytes * 8 / max(span, 0.05)
        self._update(self.loss, _delay_trend(delays), acked_bps)

    def on_receiver_loss(self, fraction_lost: float, now: float) -> None:
        """Loss from a receiver report (RFC 3550), used only while no TWCC feedback comes:
        the per-packet feedback already carries the same loss, and more precisely."""
        if now - self._feedback_at < 2.0:
            return
        self.loss = fraction_lost
        self._update(fraction_lost, 0.0, None)

    def on_remb(self, bitrate: int) -> None:
        self.remote_estimate = bitrate

    def _update(self, loss: float, delay_trend: float, acked_bps: float | None) -> None:
        if loss > 0.10:
            base = acked_bps if acked_bps is not None else self.estimate
            self.estimate = int(min(self.estimate, base) * (1 - 0.5 * loss))
        elif delay_trend > 0.010:  # 10 ms of queueing built up across the feedback window
            base = acked_bps if acked_bps is not None else self.estimate
            self.estimate = int(min(self.estimate, base) * 0.85)
        elif loss < 0.02:
            self.estimate = int(self.estimate * 1.05)
        self.estimate = max(self.MIN_BPS, min(self.maximum, self.estimate))

    @property
    def available(self) -> int:
        """The bit rate the consumers of this transport may use."""
        if self.remote_estimate is not None:
            return min(self.estimate, self.remote_estimate)
        return self.estimate


def _delay_trend(samples: list[tuple[float, float]]) -> float:
    """Growth of one-way delay across the samples (seconds): later half minus earlier half."""
    if len(samples) < 8:
        return 0.0
    half = len(samples) // 2
    early = sorted(d for _, d in samples[:half])[half // 2]
    late = sorted(d for _, d in samples[half:])[(len(samples) - half) // 2]
    return late - early
