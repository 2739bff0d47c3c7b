"""Staff accounts and API tokens through the real ``archive`` command: users add/list/disable, tokens
create/revoke, and what the catalogue keeps (an Argon2id hash, the SHA-256 of a token, never the token)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from sqlalchemy import select, text

from archive import db
from archive.accounts import authenticate, create_token, verify_password
from archive.config import Settings
from archive.models import ApiToken, Event, User
from tests.e2e.helpers import archive_cmd, ingest_json, simple_bag


def add(login: str, *args: str, password: str = "correct horse battery") -> None:
    proc = archive_cmd("users", "add", login, *args, "--password-stdin", input_text=password + "\n")
    assert proc.returncode == 0, proc.stderr


def token_for(login: str, *args: str) -> str:
    proc = archive_cmd("tokens", "create", login, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_users_add_with_password_stdin_stores_argon2id(home: Settings) -> None:
    add("chen", "--role", "archivist", "--archive", "GZ", "--archive", "GD", "--name", "陈档案")
    add("li", "--role", "auditor", "--role", "admin")
    with db.read_session(home) as s:
        user = s.execute(select(User).where(User.login == "chen")).scalar_one()
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        assert "correct horse" not in user.password_hash
        assert verify_password(user.password_hash, "correct horse battery")
        assert not verify_password(user.password_hash, "wrong horse battery")
        event = s.execute(select(Event).where(Event.object_id == "chen")).scalar_one()
        assert event.object_type == "user" and event.outcome_detail["agent_type"] == "person"
    proc = archive_cmd("users", "list", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["login"]: r for r in json.loads(proc.stdout)}
    assert rows["chen"]["roles"] == ["archivist"] and rows["chen"]["archives"] == ["GD", "GZ"]
    assert rows["chen"]["display_name"] == "陈档案"
    assert rows["li"]["roles"] == ["admin", "auditor"] and rows["li"]["archives"] == []


def test_users_add_refusals(home: Settings) -> None:
    add("chen", "--role", "admin")
    again = archive_cmd(
        "users", "add", "chen", "--role", "admin", "--password-stdin", input_text="x" * 10 + "\n"
    )
    assert again.returncode == 1 and "ACC004" in again.stderr
    for args, code in (
        (["--role", "archivist"], "ARC003"),  # an archivist without an archive
        (["--role", "auditor", "--archive", "GZ"], "ARC003"),  # --archive only for archivists
        (["--role", "king"], "ARC003"),
        (["--role", "archivist", "--archive", "XX"], "ARC002"),  # unknown archive
    ):
        proc = archive_cmd("users", "add", "wang", *args, "--password-stdin", input_text="long enough pw\n")
        assert proc.returncode == 2 and code in proc.stderr, (args, proc.stderr)
    short = archive_cmd("users", "add", "wang", "--role", "admin", "--password-stdin", input_text="short\n")
    assert short.returncode == 2 and "ARC003" in short.stderr
    with db.read_session(home) as s:
        assert s.execute(select(User.login)).scalars().all() == ["chen"]


def test_token_printed_alone_and_stored_hashed(home: Settings) -> None:
    add("chen", "--role", "archivist", "--archive", "GZ")
    proc = archive_cmd("tokens", "create", "chen", "--expires", "30")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("\n")
    token = proc.stdout.strip()
    assert token.startswith("arc_") and " " not in token
    secret = token.split("_", 2)[2]
    with db.read_session(home) as s:
        row = s.execute(select(ApiToken)).scalar_one()
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert row.expires_at is not None
        # the token's text is nowhere in the catalogue: not in any column of any table
        for table in ("api_tokens", "users", "events", "role_grants"):
            for values in s.execute(text(f"SELECT * FROM {table}")).all():
                assert not any(secret in str(v) for v in values), table
        staff = authenticate(s, token)
        assert staff is not None and staff.login == "chen" and staff.archives == {"GZ"}
        assert authenticate(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None


def test_revoke_by_prefix_and_disable(home: Settings) -> None:
    add("chen", "--role", "archivist", "--archive", "GZ")
    first, second = token_for("chen"), token_for("chen")
    token_id = first.split("_")[1]
    proc = archive_cmd("tokens", "revoke", f"arc_{token_id[:6]}")
    assert proc.returncode == 0, proc.stderr
    with db.read_session(home) as s:
        assert authenticate(s, first) is None
        assert authenticate(s, second) is not None
    assert archive_cmd("tokens", "revoke", "zz").returncode == 1  # too short to name one token
    assert archive_cmd("users", "disable", "chen").returncode == 0
    with db.read_session(home) as s:
        assert authenticate(s, second) is None
    missing = archive_cmd("users", "disable", "nobody")
    assert missing.returncode == 1 and "ACC003" in missing.stderr
    assert archive_cmd("tokens", "create", "nobody").returncode == 1


def test_expired_token(home: Settings) -> None:
    add("chen", "--role", "admin")
    with db.write_session(home) as s:
        _, token = create_token(
            s, "chen", expires_days=1, actor="test", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
        )
    with db.read_session(home) as s:
        assert authenticate(s, token) is None


def test_access_set_cli(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "bag", [("卷1", "GZ-800-1990-永久-0001", "开放测试", b"text")])
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    ref = "GZ/GZ-800-1990-永久-0001"
    proc = archive_cmd(
        "access", "set", ref, "restricted", "--reason", "涉及个人隐私", "--review-on", "2030-01-01", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["access_status"] == "restricted" and body["changed"] is True
    assert body["reason"] == "涉及个人隐私" and body["review_on"] == "2030-01-01"
    with db.read_session(home) as s:
        event = (
            s.execute(select(Event).where(Event.object_id == ref).order_by(Event.id.desc())).scalars().first()
        )
        assert event is not None and event.outcome_detail["agent_type"] == "person"
        assert event.outcome_detail["review_on"] == "2030-01-01"
    bad = archive_cmd("access", "set", ref, "open", "--reason", "x", "--review-on", "2030-13-01")
    assert bad.returncode == 2 and "ARC003" in bad.stderr
    auto = archive_cmd("access", "set", ref, "auto", "--reason", "x")
    assert auto.returncode == 2 and "ARC003" in auto.stderr
