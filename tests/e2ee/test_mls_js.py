"""The browser MLS session module (``src/incamera/web/e2ee/mls.js`` over the vendored ts-mls
bundle), exercised by ``tests/js/mls.test.mjs`` in Node: group creation and a batched add,
agreement on epoch, SFrame exporter secret and security code, removal, two commits for one
epoch, the credential rule against the roster, application messages, malformed input."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "mls.test.mjs"


def test_mls_js_node_suite() -> None:
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
    assert passed and int(passed[0].split()[-1]) >= 10, report
