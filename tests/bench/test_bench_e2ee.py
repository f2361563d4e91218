"""``incamera bench e2ee``: the command runs the Node measuring script over the web app's
mls.js (and sframe.js) for small groups and reports every figure for every size."""

from __future__ import annotations

import json

import pytest

from incamera import cli
from incamera.bench import e2ee

PER_SIZE = {
    "members",
    "rounds",
    "joiner_keys_ms",
    "commit_ms",
    "join_ms",
    "member_process_ms",
    "commit_bytes",
    "welcome_bytes",
    "ratchet_tree_bytes",
    "group_info_bytes",
    "sframe_receive_keys_ms",
    "joiner_keys_samples_ms",
    "nonblank_parent_nodes",
    "build_seconds",
}


def test_bench_e2ee_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["bench", "e2ee", "--json", "--members", "3,5", "--rounds", "2"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out)
    assert result["benchmark"] == "e2ee"
    assert result["cipher_suite"] == "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
    assert result["machine"]["cpus"] >= 1
    rows = result["results"]
    assert [row["members"] for row in rows] == [3, 5]
    for row in rows:
        assert row.keys() == PER_SIZE
        assert row["rounds"] == 2 and len(row["joiner_keys_samples_ms"]) == 2
        assert row["joiner_keys_ms"] > 0 and row["member_process_ms"] > 0
        assert row["commit_ms"] > 0 and row["join_ms"] > 0
        # The joiner's time spans the committer's commit and its own join (the median of two
        # rounds is their mean, so the sum holds for the medians too).
        assert row["joiner_keys_ms"] == pytest.approx(row["commit_ms"] + row["join_ms"], abs=0.1)
        # A one-add commit (PrivateMessage, no path) and a Welcome for one joiner are small;
        # the ratchet tree grows with the group.
        assert 100 < row["commit_bytes"] < 2000
        assert 100 < row["welcome_bytes"] < 2000
        assert 100 < row["group_info_bytes"] < 2000
        assert row["ratchet_tree_bytes"] > 100 * row["members"]
    assert rows[1]["ratchet_tree_bytes"] > rows[0]["ratchet_tree_bytes"]
    assert result["tree"] == "used"
    assert all(row["nonblank_parent_nodes"] >= 1 for row in rows)
    if result["sframe"] is None:
        assert all(row["sframe_receive_keys_ms"] > 0 for row in rows)


def test_bench_e2ee_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert e2ee.main(["--members", "2", "--rounds", "1", "--batch", "1", "--tree", "fresh"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "joiner keys ms" in lines[1] and "tree B" in lines[1]
    assert "fresh tree" in lines[0]
    assert lines[2].split()[0] == "2"


@pytest.mark.parametrize("bad", [["--members", "1"], ["--members", "3,x"], ["--rounds", "0"]])
def test_bench_e2ee_bad_arguments(bad: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        e2ee.main(bad)
    assert exc.value.code == 2


def test_bench_e2ee_without_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert e2ee.main(["--members", "2", "--node", "/nonexistent/node"]) == 1
    assert "Node.js" in capsys.readouterr().err
