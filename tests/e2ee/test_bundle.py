"""``src/incamera/web/vendor/ts-mls.js`` is reproducible: rebuilt in a temporary folder from
``client/package-lock.json`` (``npm ci --ignore-scripts``, then ``client/build.sh``, which
applies ``client/patches/ts-mls+1.6.4.patch`` to a copy of ts-mls) it is byte for byte the
committed file. npm verifies every package against the lockfile's integrity hash; the packages
come from npm's cache when ``make js-deps`` filled it (the suite runs without a network), else
from the registry."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "client"
BUNDLE = ROOT / "src" / "incamera" / "web" / "vendor" / "ts-mls.js"
PINNED = {"ts-mls": "1.6.4", "@noble/hashes": "2.3.0"}


def test_dependencies_are_pinned_exactly() -> None:
    package = json.loads((CLIENT / "package.json").read_text())
    lock = json.loads((CLIENT / "package-lock.json").read_text())
    dependencies: dict[str, str] = package["dependencies"]
    for name, version in PINNED.items():
        assert dependencies[name] == version
    assert dependencies["esbuild"].startswith("0.28.")
    for name, spec in dependencies.items():
        assert spec[0].isdigit(), f"{name}: {spec} is a range, not a pin"
        assert lock["packages"][f"node_modules/{name}"]["version"] == spec
    for path, entry in lock["packages"].items():
        if path:
            assert entry.get("integrity", "").startswith("sha512-"), path


def test_bundle_header_names_versions_and_command() -> None:
    header = BUNDLE.read_text().splitlines()[:5]
    assert header[0].startswith("// ts-mls 1.6.4 ")
    assert "@noble/hashes 2.3.0" in header[1]
    assert any("esbuild 0.28." in line for line in header)
    assert any("npm ci --ignore-scripts && sh build.sh" in line for line in header)


def test_bundle_header_names_the_ts_mls_patch() -> None:
    """The bundle says that its ts-mls is patched, with which file (and its hash) and why."""
    patch = CLIENT / "patches" / "ts-mls+1.6.4.patch"
    digest = hashlib.sha256(patch.read_bytes()).hexdigest()
    header = BUNDLE.read_text().splitlines()[:8]
    line = next(line for line in header if line.startswith("// PATCHED ts-mls:"))
    assert "client/patches/ts-mls+1.6.4.patch" in line
    assert digest in line


def test_bundle_rebuilds_byte_identical(tmp_path: Path) -> None:
    npm = shutil.which("npm")
    assert npm is not None, "npm is required: make test installs it"
    files = ("package.json", "package-lock.json", "mls-entry.mjs", "build.sh", "apply-patch.mjs")
    for name in files:
        shutil.copy2(CLIENT / name, tmp_path / name)
    shutil.copytree(CLIENT / "patches", tmp_path / "patches")
    install = subprocess.run(
        [npm, "ci", "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    out = tmp_path / "ts-mls.js"
    build = subprocess.run(
        ["sh", str(tmp_path / "build.sh"), str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert out.read_bytes() == BUNDLE.read_bytes(), "rebuild with: cd client && sh build.sh"
