"""The ratchet tree's unmerged_leaves check on join (RFC 9420 §12.4.3.1) in the vendored,
patched ts-mls bundle, exercised by ``tests/js/unmerged.test.mjs`` in Node: after a removal and
one commit adding two members, a later joiner's Welcome is accepted and every member derives the
same epoch secrets (unpatched ts-mls 1.6.4 in ``client/node_modules`` refuses it); crafted trees
(an unmerged leaf index beyond the tree, a blank or non-descendant unmerged leaf, an
intermediate node not listing it) are refused with a ValidationError before a deadline."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "unmerged.test.mjs"
UPSTREAM = ROOT / "client" / "node_modules" / "ts-mls" / "dist" / "src" / "index.js"


def test_unmerged_leaves_js_node_suite() -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js (node) is required: make test installs it"
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "# fail 0" in report, report
    passed = [line for line in report.splitlines() if line.startswith("# pass ")]
    assert passed and int(passed[0].split()[-1]) >= 13, report
    if UPSTREAM.exists():
        # make js-deps installed the unpatched library: the comparisons with it ran.
        assert "# skipped 0" in report, report
