"""Runs one of the Node test files in ``tests/js`` (``node --test``, TAP output) for pytest."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_node_suite(name: str, *, min_passed: int, none_skipped: bool = False) -> str:
    """Run ``tests/js/<name>``; assert that it passed with at least ``min_passed`` tests
    (and, with ``none_skipped``, that nothing was skipped). Returns the TAP report."""
    node = shutil.which("node")
    assert node is not None, "Node.js (node) is required: make test installs it"
    result = subprocess.run(
        [node, "--test", "--test-reporter=tap", str(ROOT / "tests" / "js" / name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-9000:]
    assert "# fail 0" in report, report[-9000:]
    passed = [line for line in report.splitlines() if line.startswith("# pass ")]
    assert passed and int(passed[0].split()[-1]) >= min_passed, report[-9000:]
    if none_skipped:
        assert "# skipped 0" in report, report[-9000:]
    return report
