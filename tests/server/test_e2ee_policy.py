"""Meetings are end-to-end encrypted unless an administrator policy allows otherwise."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from incamera.config import ConfigError, Settings, load_settings

from .conftest import RunningServer


async def test_meetings_are_end_to_end_encrypted_by_default(server: RunningServer):
    created = await server.client.post("/api/meetings")
    assert created.status_code == 201
    assert created.json()["e2ee"] is True
    fetched = await server.client.get(f"/api/meetings/{created.json()['id']}")
    assert fetched.json()["e2ee"] is True
    assert await server.app.state.context.registry.e2ee(created.json()["id"]) is True


async def test_an_unencrypted_meeting_needs_the_administrator_policy(
    server: RunningServer,
):
    refused = await server.client.post("/api/meetings", json={"e2ee": False})
    assert refused.status_code == 403
    assert refused.json()["error"] == "e2ee_required"
    assert "e2ee.allow_unencrypted" in refused.json()["detail"]
    # Only a real boolean: "false" is not a way around the policy check.
    sloppy = await server.client.post("/api/meetings", json={"e2ee": "false"})
    assert sloppy.status_code == 422


class TestWithThePolicy:
    @pytest.fixture
    def settings(self, make_settings: Callable[..., Settings]) -> Settings:
        return make_settings(e2ee={"allow_unencrypted": True})

    async def test_an_unencrypted_meeting_is_created_and_marked(
        self,
        server: RunningServer,
    ):
        created = await server.client.post("/api/meetings", json={"e2ee": False})
        assert created.status_code == 201
        meeting_id = created.json()["id"]
        assert created.json()["e2ee"] is False
        fetched = await server.client.get(f"/api/meetings/{meeting_id}")
        assert fetched.json()["e2ee"] is False
        assert await server.app.state.context.registry.e2ee(meeting_id) is False
        default = await server.client.post("/api/meetings")
        assert default.json()["e2ee"] is True


def test_the_media_tap_needs_the_test_hooks(tmp_path):
    with pytest.raises(ConfigError):
        load_settings(None, {"data_dir": str(tmp_path), "testing": {"media_tap_path": "x"}})
    settings = load_settings(
        None, {"data_dir": str(tmp_path), "testing": {"hooks": True, "media_tap_path": "x"}}
    )
    assert settings.testing.hooks
