"""``incamera admin``: accounts created and reset on the command line work for sign-in."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from incamera.identity.accounts import Accounts, BadCredentials, NoSuchAccount
from incamera.identity.passwords import PasswordHashing
from incamera.identity.secret_box import SecretBox
from incamera.server import admin
from incamera.store import Database
from incamera.store.accounts import AccountStore


def run(tmp_path: Path, *args: str, stdin: str = "") -> int:
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return admin.main(["--data-dir", str(tmp_path / "data"), *args])
    finally:
        sys.stdin = saved


def accounts(tmp_path: Path) -> Accounts:
    database = Database(f"sqlite:///{tmp_path / 'data' / 'incamera.db'}")
    box = SecretBox.from_file(tmp_path / "data" / "secret.key")
    return Accounts(AccountStore(database), PasswordHashing(), box)


def test_create_reset_disable(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert (
        run(
            tmp_path,
            "create-user",
            "Carol",
            "--display-name",
            "Carol C",
            "--password-stdin",
            stdin="first password\n",
        )
        == 0
    )
    assert accounts(tmp_path).check_password("carol", "first password").account.display_name == (
        "Carol C"
    )
    assert (
        run(
            tmp_path,
            "create-user",
            "carol",
            "--display-name",
            "X",
            "--password-stdin",
            stdin="another password\n",
        )
        == 1
    )
    assert "taken" in capsys.readouterr().err

    assert run(tmp_path, "reset-password", "carol", "--temporary") == 0
    temporary = capsys.readouterr().out.rsplit(": ", 1)[1].strip()
    checked = accounts(tmp_path).check_password("carol", temporary)
    assert checked.must_change_password
    with pytest.raises(BadCredentials):
        accounts(tmp_path).check_password("carol", "first password")

    assert run(tmp_path, "reset-password", "carol") == 0
    link = capsys.readouterr().out.splitlines()[-1]
    assert link.startswith("http://localhost:8080/signin/reset?token=")

    assert run(tmp_path, "disable-user", "carol") == 0
    assert run(tmp_path, "reset-password", "nobody") == 1
    assert "no account" in capsys.readouterr().err


def test_list_and_delete_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    from incamera.identity.sessions import Sessions, utc_now
    from incamera.store.access import AccessStore
    from incamera.store.meetings import MeetingRecord, MeetingStore
    from incamera.store.sessions import SessionStore

    assert run(tmp_path, "list-users") == 0  # creates and migrates the database: no one yet
    assert capsys.readouterr().out.splitlines()[1:] == []
    made = accounts(tmp_path)
    dora = made.create("dora", "Dora D", "a long enough password")
    sso = made.sign_in_with_oidc("https://idp.example", "subject-1", "Erin SSO")
    db = Database(f"sqlite:///{tmp_path / 'data' / 'incamera.db'}")
    meetings = MeetingStore(db)
    meetings.insert(
        MeetingRecord(
            id="m1",
            title=None,
            created_at=utc_now(),
            closes_at=None,
            closed_at=None,
            owner_account_id=dora.id,
        )
    )
    AccessStore(db).block("m1", "account", dora.id, utc_now(), name="Dora D")
    session = Sessions(SessionStore(db)).start(dora.id, "password")

    assert run(tmp_path, "list-users") == 0
    listing = capsys.readouterr().out
    assert "dora" in listing and "Dora D" in listing and "local" in listing
    assert sso.id in listing and "Erin SSO" in listing and "sso" in listing

    # Asked to confirm by typing the name; a wrong answer deletes nothing.
    monkeypatch.setattr("builtins.input", lambda _prompt: "not dora")
    assert run(tmp_path, "delete-user", "dora") == 1
    assert made.by_username("dora").id == dora.id
    monkeypatch.setattr("builtins.input", lambda _prompt: "dora")
    assert run(tmp_path, "delete-user", "dora") == 0
    assert "deleted account dora" in capsys.readouterr().out
    with pytest.raises(NoSuchAccount):
        made.by_username("dora")
    assert Sessions(SessionStore(db)).resume(session.id) is None
    meeting = meetings.get("m1")
    assert meeting is not None and meeting.owner_account_id is None  # the meeting stays
    assert AccessStore(db).blocks("m1").account_ids == frozenset()  # with the name it held

    # A single sign-on account has no username: it is named by its id.
    assert run(tmp_path, "delete-user", sso.id, "--yes") == 0
    assert run(tmp_path, "delete-user", sso.id, "--yes") == 1
    assert "no account" in capsys.readouterr().err
