"""Sign-in throttling: after ``limit`` failures for one account from one source within
``window`` seconds, further attempts for that pair are refused until the oldest failure
is older than the window.

Keyed by (account name, source address) so that somebody guessing passwords from one place
cannot lock the real owner out from another. The addresses are held in memory only, for
at most ``window`` seconds, and never logged. The clock is passed in (monotonic seconds).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field


class Throttled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after  # whole seconds until the next attempt may be made

    def __str__(self) -> str:
        minutes = max(1, math.ceil(self.retry_after / 60))
        unit = "minute" if minutes == 1 else "minutes"
        return (
            "Too many failed sign-in attempts for this account from your network address. "
            f"Try again in {minutes} {unit}."
        )


@dataclass
class FailureThrottle:
    limit: int = 5
    window: float = 900.0
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def check(self, account: str, source: str, now: float) -> None:
        """Raise ``Throttled`` if this pair may not try now."""
        key = (account.casefold(), source)
        failures = self._recent(key, now)
        if len(failures) >= self.limit:
            raise Throttled(retry_after=math.ceil(failures[0] + self.window - now))

    def failed(self, account: str, source: str, now: float) -> None:
        key = (account.casefold(), source)
        self._recent(key, now)
        self._failures.setdefault(key, deque()).append(now)
        if len(self._failures) > 100_000:  # bound memory under a distributed attack
            self._prune(now)

    def succeeded(self, account: str, source: str) -> None:
        self._failures.pop((account.casefold(), source), None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
