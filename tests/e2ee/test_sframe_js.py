"""The browser's SFrame module, E2EE transform worker logic and invitation proofs, tested in
Node's own test runner (tests/js/*.test.mjs): every RFC 9605 vector, the worker with fake
frames, and the HMAC proof of a personal invitation's key (web/e2ee/invitation.js)."""

from __future__ import annotations

import pytest

from support.node_suite import run_node_suite


@pytest.mark.parametrize(
    ("name", "min_passed"),
    [("sframe.test.mjs", 5), ("transform.test.mjs", 5), ("invitation.test.mjs", 4)],
)
def test_node_suite(name: str, min_passed: int) -> None:
    run_node_suite(name, min_passed=min_passed)
