"""The ratchet tree's unmerged_leaves check on join (RFC 9420 §12.4.3.1) in the vendored,
patched ts-mls bundle, exercised by ``tests/js/unmerged.test.mjs`` in Node: after a removal and
one commit adding two members, a later joiner's Welcome is accepted and every member derives the
same epoch secrets (unpatched ts-mls 1.6.4 in ``client/node_modules`` refuses it); crafted trees
(an unmerged leaf index beyond the tree, a blank or non-descendant unmerged leaf, an
intermediate node not listing it) are refused with a ValidationError before a deadline."""

from __future__ import annotations

from support.node_suite import ROOT, run_node_suite

UPSTREAM = ROOT / "client" / "node_modules" / "ts-mls" / "dist" / "src" / "index.js"


def test_unmerged_leaves_js_node_suite() -> None:
    # With the unpatched library installed (make js-deps), the comparisons with it ran.
    run_node_suite("unmerged.test.mjs", min_passed=13, none_skipped=UPSTREAM.exists())
