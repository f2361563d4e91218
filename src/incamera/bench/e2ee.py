"""``incamera bench e2ee``: what MLS costs a person joining an end-to-end encrypted meeting.

The measuring is done in Node.js by ``e2ee.mjs`` next to this file, with the web app's own
``web/e2ee/mls.js`` over the vendored ts-mls bundle (the code a browser runs; Node's
WebCrypto stands in for the browser's). For each ``--members`` size N it builds a group of
N (one committer adding the others ``--batch`` at a time; only the committer and one
observing member keep state), then ``--rounds`` times a new participant joins:

- ``joiner_keys_ms``: from the committer starting the add commit until the joiner has
  processed the Welcome (with the ratchet tree the server relays) and derived its SFrame
  epoch secret; split into ``commit_ms`` (committer, including the GroupInfo and ratchet
  tree it uploads) and ``join_ms`` (joiner);
- ``member_process_ms``: an existing member processing that commit and deriving the new
  SFrame epoch secret;
- the sizes the server relays and stores: ``commit_bytes``, ``welcome_bytes``,
  ``ratchet_tree_bytes``, ``group_info_bytes``;
- with ``web/e2ee/sframe.js``: ``sframe_receive_keys_ms``, the joiner deriving the SFrame
  keys of every member's microphone and camera from the new epoch's secret.

Times are medians over the rounds. ``--tree used`` (the default) first makes one commit with
an update path, as every real meeting has had (a leave, the periodic update), so the tree's
parent nodes are not all blank, and each round's joiner leaves again (unmeasured), so every
round joins such a group of N; ts-mls 1.6.4 verifies parent hashes on join in time that grows
with N squared once parent nodes exist. ``--tree fresh`` shows the all-blank tree that adds
alone leave (its joiners stay: round r joins N + r - 1).

Output: a table, or with ``--json`` one JSON object. Network latency is not included: add
the signalling round trips to get what a person waits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("e2ee.mjs")
TIMEOUT_SECONDS = 3600.0


class BenchError(Exception):
    """The benchmark could not run (no Node.js, the script failed)."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    node = shutil.which(args.node) if args.node else shutil.which("node")
    if node is None:
        raise BenchError("Node.js (node, version 20 or later) is required")
    command = [node, str(SCRIPT), "--members", ",".join(map(str, args.members))]
    command += ["--rounds", str(args.rounds), "--batch", str(args.batch), "--tree", args.tree]
    load_before = os.getloadavg()[0]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"e2ee.mjs did not finish within {TIMEOUT_SECONDS:.0f} s") from exc
    if completed.returncode != 0:
        raise BenchError(f"e2ee.mjs failed:\n{completed.stderr.strip()}")
    try:
        result: dict[str, Any] = json.loads(completed.stdout)
    except json.JSONDecodeError as exc:
        raise BenchError(f"e2ee.mjs printed no JSON: {completed.stdout[:200]!r}") from exc
    result["machine"] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_1m_before": round(load_before, 2),
    }
    return result


def _member_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc
    if not counts or any(n < 2 for n in counts):
        raise argparse.ArgumentTypeError("every group size must be at least 2")
    return counts


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="incamera bench e2ee",
        description="MLS cost of joining an end-to-end encrypted meeting of N members: "
        "time to keys for the joiner, commit processing for a member, message sizes.",
    )
    parser.add_argument(
        "--members",
        type=_member_counts,
        default=[10, 100, 500],
        help="group sizes, comma-separated (default: 10,100,500)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="joins per size (default: 3)")
    parser.add_argument(
        "--batch", type=int, default=50, help="adds per commit while building (default: 50)"
    )
    parser.add_argument(
        "--tree",
        choices=("used", "fresh"),
        default="used",
        help="used: one commit with an update path happened before the joins, as in any "
        "real meeting (default); fresh: only adds, every parent node blank",
    )
    parser.add_argument("--node", help="Node.js binary (default: node on PATH)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.batch < 1:
        parser.error("--rounds and --batch must be at least 1")
    return args


COLUMNS = (
    ("members", "members", "{:d}"),
    ("joiner_keys_ms", "joiner keys ms", "{:.1f}"),
    ("commit_ms", "commit ms", "{:.1f}"),
    ("join_ms", "join ms", "{:.1f}"),
    ("member_process_ms", "member ms", "{:.1f}"),
    ("commit_bytes", "commit B", "{:d}"),
    ("welcome_bytes", "welcome B", "{:d}"),
    ("ratchet_tree_bytes", "tree B", "{:d}"),
    ("group_info_bytes", "group info B", "{:d}"),
    ("nonblank_parent_nodes", "parents", "{:d}"),
)


def report(result: dict[str, Any]) -> str:
    header = [title for _, title, _ in COLUMNS]
    rows = [[fmt.format(row[key]) for key, _, fmt in COLUMNS] for row in result["results"]]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        f"MLS join cost, {result['cipher_suite']}, {result['tree']} tree, median of "
        f"{result['results'][0]['rounds']} joins per size (Node {result['node']}):",
        "  " + "  ".join(cell.rjust(width) for cell, width in zip(header, widths, strict=True)),
    ]
    lines += [
        "  " + "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    sframe = [row["sframe_receive_keys_ms"] for row in result["results"]]
    if any(value is not None for value in sframe):
        lines.append(
            "  SFrame receive keys (mic + camera of every member) ms: "
            + ", ".join("-" if v is None else f"{v:.1f}" for v in sframe)
        )
    elif result.get("sframe"):
        lines.append(f"  SFrame part skipped: {result['sframe']}")
    machine = result["machine"]
    lines.append(
        f"  {machine['cpus']} CPUs, load average {machine['load_average_1m_before']} before the run"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        result = run(args)
    except BenchError as exc:
        print(f"incamera bench e2ee: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else report(result))
    return 0
