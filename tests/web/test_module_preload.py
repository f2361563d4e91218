"""The meeting page preloads its whole ES module graph, so the browser fetches every module
in one wave instead of one wave per import level (see docs/benchmarks.md, join time)."""

from __future__ import annotations

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "src" / "incamera" / "web"
IMPORT = re.compile(
    r"""^\s*import\s[^;]*?from\s+["'](\.\.?/[^"']+)["']""", re.MULTILINE | re.DOTALL
)


def module_graph(entry: str) -> set[str]:
    seen: set[str] = set()
    todo = [entry]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        source = (WEB / name).read_text(encoding="utf-8")
        base = (WEB / name).parent
        for spec in IMPORT.findall(source):
            todo.append((base / spec).resolve().relative_to(WEB).as_posix())
    return {str(Path(n).as_posix()) for n in seen}


def test_meeting_page_preloads_every_module_it_imports() -> None:
    html = (WEB / "meeting.html").read_text(encoding="utf-8")
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/([^"]+)">', html))
    graph = module_graph("meeting.js")
    assert len(graph) > 5
    assert graph == preloaded
