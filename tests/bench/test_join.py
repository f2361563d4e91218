"""``incamera bench join``: the command end to end (a real ``incamera serve`` subprocess and
headless Chromium) with two joins, and its percentile arithmetic."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from incamera.bench import join

REQUIRED_FIELDS = {"p50_ms", "p90_ms", "joins", "samples_ms", "phases_ms", "chromium", "cache"}


def test_percentile_interpolates_between_ranks() -> None:
    assert join.percentile([5.0], 0.9) == 5.0
    assert join.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert join.percentile([10.0, 0.0, 20.0], 0.5) == 10.0
    assert join.percentile(list(map(float, range(11))), 0.9) == pytest.approx(9.0)
    with pytest.raises(ValueError):
        join.percentile([], 0.5)


def test_arguments_are_checked() -> None:
    for bad in (["--joins", "0"], ["--warmup", "-1"], ["--method", "guess"]):
        with pytest.raises(SystemExit) as exit_info:
            join.parse_args(bad)
        assert exit_info.value.code == 2


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_two_joins_report_json() -> None:
    pytest.importorskip("playwright.async_api", reason="playwright is not installed")
    try:
        join.chromium_path(None)
    except join.BenchError as exc:
        pytest.skip(str(exc))
    done = subprocess.run(
        [sys.executable, "-m", "incamera.cli", "bench", "join", "--joins", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=220,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result.keys() >= REQUIRED_FIELDS, result
    assert result["joins"] == 2
    samples = result["samples_ms"]
    assert len(samples) == 2 and all(s > 0 for s in samples), result
    assert min(samples) <= result["p50_ms"] <= result["p90_ms"] <= max(samples)
    # Every step up to the first frame was seen; the frame came after its track and a peer
    # connection. The joiner's own send connection may connect after the first remote frame
    # (the receive side is set up first), so it is reported only when it came before.
    phases = result["phases_ms"]
    assert set(join.PHASES) - {"send_pc_connected"} <= phases.keys(), phases
    assert phases["first_pc_created"] < phases["first_frame"]
    assert phases["first_remote_video_track"] < phases["first_frame"]
    # The frame came from the publisher's camera (a simulcast layer of the fake device).
    assert all(size != "0x0" for size in result["frame_sizes"]), result
