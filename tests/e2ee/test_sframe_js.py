"""The browser's SFrame module and E2EE transform worker logic, tested in Node's own test
runner (tests/js/*.test.mjs): every RFC 9605 vector, and the worker with fake frames."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (make test installs it)")
@pytest.mark.parametrize("name", ["sframe.test.mjs", "transform.test.mjs"])
def test_node_suite(name: str) -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "--test", f"tests/js/{name}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout
