"""The retransmission cache of one incoming RTP stream (RFC 4588 senders need the original).

A ring indexed by the low bits of the sequence number, holding each packet's plain RTP bytes
(after SRTP unprotect) with its arrival time. Entries older than ``max_age`` seconds are not
served: a retransmission that late would arrive after the receiver's jitter buffer gave up.
"""

from __future__ import annotations

SIZE = 1024  # packets; must be a power of two. ~1 s of a 10 Mbit/s stream.
MASK = SIZE - 1


class PacketCache:
    __slots__ = ("_packets", "_seqs", "_times", "max_age")

    def __init__(self, max_age: float = 1.0) -> None:
        self._packets: list[bytes | None] = [None] * SIZE
        self._seqs: list[int] = [-1] * SIZE
        self._times: list[float] = [0.0] * SIZE
        self.max_age = max_age

    def put(self, seq: int, packet: bytes, now: float) -> None:
        i = seq & MASK
        self._packets[i] = packet
        self._seqs[i] = seq
        self._times[i] = now

    def get(self, seq: int, now: float) -> bytes | None:
        i = seq & MASK
        if self._seqs[i] != seq or now - self._times[i] > self.max_age:
            return None
        return self._packets[i]

    def __contains__(self, seq: int) -> bool:
        return self._seqs[seq & MASK] == seq
