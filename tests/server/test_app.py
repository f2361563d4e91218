"""The HTTP API through a real uvicorn: health, meetings, errors, security headers."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import httpx
from anyio import to_thread

from incamera.config import Settings
from incamera.server.app import WEB_DIR, create_app
from incamera.server.context import ServerContext
from incamera.store import MeetingStore

from .conftest import RunningServer

SECURITY_HEADERS = (
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
)


def assert_security_headers(response: httpx.Response) -> None:
    for name in SECURITY_HEADERS:
        assert name in response.headers, f"{name} missing on {response.request.url}"
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no other host
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    policy = response.headers["permissions-policy"]
    for feature in ("camera", "microphone", "display-capture"):
        assert f"{feature}=(self)" in policy


async def test_healthz_ok_when_started(server: RunningServer):
    response = await server.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert_security_headers(response)


async def test_healthz_503_before_start_up(settings: Settings):
    # Without the lifespan (start-up not run) the app must not claim to be ready.
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        response = await client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "starting"


async def test_healthz_503_when_the_database_is_gone(server: RunningServer):
    context = ServerContext.of(server.app)
    context.database.engine.dispose()
    db_file = context.settings.data_dir / "incamera.db"
    db_file.unlink()
    db_file.mkdir()  # a directory where the database file was: SQLite cannot open it
    response = await server.client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "database unavailable"}


async def test_create_then_get_meeting(server: RunningServer):
    created = await server.client.post("/api/meetings")
    assert created.status_code == 201
    body = created.json()
    meeting_id = body["id"]
    assert body["join_url"] == f"http://localhost:8080/m/{meeting_id}"
    assert created.headers["location"] == f"/api/meetings/{meeting_id}"
    assert created.headers["cache-control"] == "no-store"
    assert_security_headers(created)

    fetched = await server.client.get(f"/api/meetings/{meeting_id}")
    assert fetched.status_code == 200
    info = fetched.json()
    assert info["id"] == meeting_id
    assert info["join_url"] == body["join_url"]
    assert info["participants"] == 0
    assert info["title"] is None
    created_at = datetime.fromisoformat(info["created_at"])
    closes_at = datetime.fromisoformat(info["closes_at"])
    assert closes_at - created_at == timedelta(days=7)


async def test_create_meeting_with_a_title(server: RunningServer):
    created = await server.client.post("/api/meetings", json={"title": "  Team\n  call "})
    assert created.status_code == 201
    assert created.json()["title"] == "Team call"
    fetched = await server.client.get(f"/api/meetings/{created.json()['id']}")
    assert fetched.json()["title"] == "Team call"


async def test_meeting_ids_carry_at_least_128_random_bits(server: RunningServer):
    ids = set()
    for _ in range(50):
        response = await server.client.post("/api/meetings")
        meeting_id = response.json()["id"]
        assert re.fullmatch(r"[A-Za-z0-9_-]{22,}", meeting_id)
        raw = base64.urlsafe_b64decode(meeting_id + "=" * (-len(meeting_id) % 4))
        assert len(raw) >= 16
        ids.add(meeting_id)
    assert len(ids) == 50


async def test_unknown_meeting_is_404_json(server: RunningServer):
    for meeting_id in ("A" * 22, "short", "x" * 65):
        response = await server.client.get(f"/api/meetings/{meeting_id}")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert response.json()["detail"]
        assert_security_headers(response)


async def test_closed_meeting_is_410(server: RunningServer):
    meeting_id = (await server.client.post("/api/meetings")).json()["id"]
    store = MeetingStore(ServerContext.of(server.app).database)
    later = datetime.now(UTC) + timedelta(days=8)
    closed = await to_thread.run_sync(store.close_due, later)
    assert meeting_id in closed
    response = await server.client.get(f"/api/meetings/{meeting_id}")
    assert response.status_code == 410
    assert response.json() == {"error": "meeting_closed", "detail": "this meeting has ended"}


async def test_malformed_json_is_400_with_a_reason(server: RunningServer):
    response = await server.client.post(
        "/api/meetings", content=b'{"title": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "malformed_json"
    assert "not valid JSON" in body["detail"] and "column" in body["detail"]
    assert_security_headers(response)
    not_utf8 = await server.client.post(
        "/api/meetings", content=b"\xff\xfe", headers={"content-type": "application/json"}
    )
    assert not_utf8.status_code == 400
    assert not_utf8.json()["detail"] == "request body is not UTF-8"


async def test_bad_requests_get_reasons(server: RunningServer):
    wrong_type = await server.client.post(
        "/api/meetings", content=b"title=x", headers={"content-type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"] == "unsupported_media_type"

    unknown = await server.client.post("/api/meetings", json={"colour": "red"})
    assert unknown.status_code == 422
    assert "colour" in unknown.json()["detail"]

    not_object = await server.client.post("/api/meetings", json=[1, 2])
    assert not_object.status_code == 422

    too_long = await server.client.post("/api/meetings", json={"title": "x" * 201})
    assert too_long.status_code == 422
    assert "title" in too_long.json()["detail"]

    huge = await server.client.post(
        "/api/meetings",
        content=b'{"title": "' + b"x" * 20000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413

    wrong_method = await server.client.delete("/api/meetings")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"


async def test_landing_page_is_served_with_no_inline_script(server: RunningServer):
    response = await server.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert_security_headers(response)

    class Scripts(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.sources: list[str] = []
            self.inline: list[str] = []
            self._in_script = False

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            names = {name for name, _ in attrs}
            assert not any(name.startswith("on") for name in names), "inline event handler"
            if tag == "script":
                self._in_script = True
                self.sources.append(dict(attrs).get("src") or "")

        def handle_endtag(self, tag: str) -> None:
            self._in_script = tag != "script" and self._in_script

        def handle_data(self, data: str) -> None:
            if self._in_script and data.strip():
                self.inline.append(data)

    parser = Scripts()
    parser.feed(response.text)
    assert parser.inline == []
    assert parser.sources and all(src.startswith("/") for src in parser.sources)
    for src in parser.sources:
        script = await server.client.get(src)
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]
    assert "Create meeting" in response.text


# XML namespace names are identifiers that are never fetched (createElementNS needs it).
NAMESPACES = ("http://www.w3.org/2000/svg",)


async def test_static_files_have_no_third_party_urls():
    for path in WEB_DIR.rglob("*"):
        if path.suffix in {".html", ".js", ".css"}:
            text = path.read_text(encoding="utf-8").replace("https://…/m/…", "")
            for namespace in NAMESPACES:
                text = text.replace(f'"{namespace}"', "")
            assert not re.search(r"https?://(?!…)", text), path


async def test_meeting_page_route_rejects_malformed_ids(server: RunningServer):
    response = await server.client.get("/m/not-an-id")
    assert response.status_code == 404
    assert_security_headers(response)


async def test_foreign_host_header_is_refused(server: RunningServer):
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not reach the API.
    response = await server.client.post("/api/meetings", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert_security_headers(response)
