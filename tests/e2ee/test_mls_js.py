"""The browser MLS session module (``src/incamera/web/e2ee/mls.js`` over the vendored ts-mls
bundle), exercised by ``tests/js/mls.test.mjs`` in Node: group creation and a batched add,
agreement on epoch, SFrame exporter secret and security code, removal, two commits for one
epoch, the credential rule against the roster, application messages, malformed input."""

from __future__ import annotations

from support.node_suite import run_node_suite


def test_mls_js_node_suite() -> None:
    run_node_suite("mls.test.mjs", min_passed=10)
