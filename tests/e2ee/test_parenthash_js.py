"""Ratchet-tree validation on join in the vendored, patched ts-mls bundle (RFC 9420 §7.9.2
parent hashes, §7.8 tree hash), exercised by ``tests/js/parenthash.test.mjs`` in Node: the
interop tree-validation vectors (``tests/vectors/tree-validation.json``), a real group built
through mls.js whose joiner rejects tampered ratchet trees (parent hash, parent encryption key,
unmerged leaves) and accepts the untampered one, and equivalence with unpatched ts-mls 1.6.4
(``client/node_modules``) on valid, tampered and randomly mutated trees."""

from __future__ import annotations

from support.node_suite import ROOT, run_node_suite

UPSTREAM = ROOT / "client" / "node_modules" / "ts-mls" / "dist" / "src" / "parentHash.js"


def test_parent_hash_js_node_suite() -> None:
    # With the unpatched library installed (make js-deps), the comparisons with it ran.
    run_node_suite("parenthash.test.mjs", min_passed=9, none_skipped=UPSTREAM.exists())
