"""Time helpers shared by the media plane (monotonic seconds and NTP timestamps)."""

from __future__ import annotations

import time

NTP_EPOCH_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (RFC 5905)

monotonic = time.monotonic


def ntp_now() -> int:
    """The current wall-clock time as a 64-bit NTP timestamp (RFC 3550 section 4)."""
    now = time.time() + NTP_EPOCH_OFFSET
    seconds = int(now)
    return (seconds << 32) | int((now - seconds) * (1 << 32))


def ntp_middle(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp, as used in LSR/DLSR (RFC 3550 section 6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF
