"""Small pieces of the signalling layer: the token bucket and the Origin check."""

from __future__ import annotations

import pytest

from incamera.signalling.endpoint import origin_allowed
from incamera.signalling.ratelimit import TokenBucket


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=4, burst=5)
    assert all(bucket.allow(100.0) for _ in range(5))
    assert not bucket.allow(100.0)
    assert bucket.allow(100.25)  # one token back after 0.25 s at 4/s
    assert not bucket.allow(100.25)
    assert sum(bucket.allow(200.0) for _ in range(10)) == 5  # never above the burst
    assert not bucket.allow(199.0)  # a clock going backwards adds nothing


def test_token_bucket_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=5)


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("https://meet.example.org", True),
        ("https://meet.example.org:443", True),
        ("http://meet.example.org", False),
        ("https://meet.example.org:8443", False),
        ("https://evil.example.org", False),
        ("https://meet.example.org.evil.net", False),
        ("http://localhost:8080", True),
        ("http://127.0.0.1:5173", True),
        ("http://[::1]:8080", True),
        ("null", False),
        ("file://", False),
        ("http://[bad", False),
    ],
)
def test_origin_check(origin: str | None, allowed: bool) -> None:
    assert origin_allowed(origin, "https://meet.example.org") is allowed
