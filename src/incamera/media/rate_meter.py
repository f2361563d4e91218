"""A sliding-window bit-rate meter (bits per second over the last ``window`` seconds)."""

from __future__ import annotations

from collections import deque


class RateMeter:
    __slots__ = ("_bytes", "_samples", "window")

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()
        self._bytes = 0

    def add(self, size: int, now: float) -> None:
        self._samples.append((now, size))
        self._bytes += size
        # Trim lazily: at most a few entries per call keeps add() O(1) amortised.
        limit = now - self.window
        samples = self._samples
        while samples and samples[0][0] < limit:
            self._bytes -= samples.popleft()[1]

    def bps(self, now: float) -> int:
        limit = now - self.window
        samples = self._samples
        while samples and samples[0][0] < limit:
            self._bytes -= samples.popleft()[1]
        return int(self._bytes * 8 / self.window) if samples else 0
