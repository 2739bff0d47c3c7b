"""Rebuild from storage alone: ingest, migrate, edit a record's description, change access; delete the
catalogue and the index; rebuild from the OCFL root; the dump is identical, the event chain verifies, public
search answers the same."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archive import db, describe, review, services
from archive.config import Settings, get_settings
from archive.events import verify_chain
from archive.federation.identity import node_dir
from archive.recovery.journal import journal_dir, last_mark, read_lines
from archive.recovery.rebuild import settings_for_new_home
from archive.recovery.rows import iter_dump
from archive.sealing.keys import sealing_dir
from ingest.pipeline import ingest
from preservation.migrate import migrate
from search import get_backend
from search.backend import SearchQuery
from search.reindex import reindex
from tests.e2e.helpers import simple_bag
from tests.preservation.helpers import ingest_files
from tests.preservation.samples import make_pdf
from tests.search.elastic_server import delete_indices, es_url
from tests.search.elastic_server import es_client as es_client  # the fixtures, re-exported for pytest
from tests.search.elastic_server import es_prefix as es_prefix


def archive_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "archive", *args], env=env, capture_output=True, text=True, timeout=300
    )


def dump(settings: Settings) -> list[str]:
    with db.read_session(settings) as s:
        return list(iter_dump(s))


def public_hits(settings: Settings) -> list[str]:
    result = get_backend(settings).search(SearchQuery(q="测试", size=50, facets=False, highlight=False))
    return sorted(h.id for h in result.hits)


def restore_keys(old: Settings, new_home: Path, backup: Path | None = None) -> None:
    """What docs/recovery.md says an operator does: the node's keys (``node/``, ``sealing/``) copied into the
    new home from their own backup (``backup``, a copy of the old home's key folders; default the old home)."""
    for keys in (node_dir(old), sealing_dir(old)):
        source = (backup or old.home_dir) / keys.relative_to(old.home_dir)
        if source.is_dir():
            shutil.copytree(source, new_home / keys.relative_to(old.home_dir))


def populate(settings: Settings, tmp: Path) -> None:
    """Two records ingested, one PDF migrated to PDF/A (a v2) and its description edited (a v3), one record
    closed by staff, index built."""
    ids = ingest_files(settings, tmp, {"a.pdf": make_pdf(tmp / "a.pdf", pages=2)}, code="R-1")
    ingest_files(settings, tmp, {"b.pdf": make_pdf(tmp / "b.pdf")}, code="R-2")
    assert migrate(settings, ids["a.pdf"], "pdfa").version == "v2"
    edited = describe.edit_metadata(settings, "GZ", "R-1", {"title": "珠江堤防修缮报告（修订）"}, actor="li")
    assert edited["version"] == "v3"
    with db.write_session(settings) as s:
        review.decide_record(
            s, "GZ", "R-2", "restricted", reason="涉及个人隐私", review_on=dt.date(2030, 1, 1), actor="zhang"
        )
    reindex(settings, get_backend(settings))


def test_rebuild_from_storage_alone(any_home: Settings, tmp_path: Path) -> None:
    populate(any_home, tmp_path)
    before = dump(any_home)
    hits = public_hits(any_home)
    assert hits == ["GZ/R-1"]
    assert any('"table": "files"' in line and "preservation/r/a.pdf" in line for line in before)
    # the storage root carries the catalogue: its journal's last mark is the chain head
    with db.read_session(any_home) as s:
        head = verify_chain(s)
    mark = last_mark(any_home.ocfl_root)
    assert mark is not None and mark["hash"] == head.head_hash

    # lose the catalogue and the index (the SQLite files, or the PostgreSQL database's contents)
    if any_home.database_url is None:
        db.dispose_engines()
        for name in ("catalogue.sqlite3", "catalogue.sqlite3-wal", "catalogue.sqlite3-shm", "search.sqlite3"):
            (any_home.home_dir / name).unlink(missing_ok=True)
    else:
        (any_home.home_dir / "search.sqlite3").unlink()

    new_home = tmp_path / "rebuilt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(any_home.home_dir)
    done = archive_cli(env, "rebuild", "--from-storage", "--into", str(new_home), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rows"]["records"] >= 2 and report["indexed"] == 1

    target = settings_for_new_home(any_home, new_home, None)
    assert dump(target) == before
    assert public_hits(target) == hits
    env.update(ARCHIVE_HOME=str(new_home), ARCHIVE_STORAGE_ROOT=str(any_home.ocfl_root))
    # The chain's anchors in the storage root are signed by the node's keys, which are secrets and live in
    # the home, not in storage: until they are restored from their own backup nothing vouches for them.
    unvouched = archive_cli(env, "events", "verify", "--json")
    assert unvouched.returncode == 1 and "SIG020" in unvouched.stdout + unvouched.stderr
    restore_keys(any_home, new_home)
    verified = archive_cli(env, "events", "verify", "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["head_hash"] == head.head_hash


def test_rebuild_refuses_a_home_that_is_not_empty(home: Settings, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "catalogue.sqlite3").write_bytes(b"")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(home.home_dir)
    done = archive_cli(env, "rebuild", "--from-storage", "--into", str(taken))
    assert done.returncode == 1
    assert "RBD001" in done.stderr
    assert archive_cli(env, "rebuild", "--into", str(tmp_path / "x")).returncode == 2


def test_rebuild_needs_a_journal(home: Settings, tmp_path: Path) -> None:
    shutil.rmtree(journal_dir(home.ocfl_root))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(tmp_path / "nohome")
    env["ARCHIVE_STORAGE_ROOT"] = str(home.ocfl_root)
    done = archive_cli(env, "rebuild", "--from-storage", "--into", str(tmp_path / "new"), "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "RBD002"


def test_a_torn_last_line_is_cut_off_and_the_gap_healed(home: Settings) -> None:
    from archive.recovery.journal import follow, segments

    segment = segments(home.ocfl_root)[-1]
    with open(segment, "ab") as f:
        f.write(b'{"t":"event","row":{"id":')  # a crash in the middle of an append
    with db.write_session(home) as s:
        services.add_archive(s, "SZ", name_zh="深圳市档案馆", name_en=None, level="city", parent="GD")
    assert follow(home) == 0
    lines = list(read_lines(home.ocfl_root))
    assert lines[-1]["t"] == "mark"
    assert any(x["t"] == "archive" and x["row"]["code"] == "SZ" for x in lines)


def test_rebuild_makes_the_elasticsearch_index_again(
    home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, es_client: Any, es_prefix: str
) -> None:
    monkeypatch.setenv("ARCHIVE_ELASTICSEARCH_URL", es_url())
    monkeypatch.setenv("ARCHIVE_ELASTICSEARCH_INDEX", f"{es_prefix}-rebuild")
    settings = get_settings()
    bag = simple_bag(tmp_path / "bag", [("a", "E-1", "测试甲", b"one"), ("b", "E-2", "测试乙", b"two")])
    assert ingest(bag, "GZ", settings).status == "stored"
    reindex(settings, get_backend(settings))
    hits = public_hits(settings)
    assert hits == ["GZ/E-1", "GZ/E-2"]
    delete_indices(es_client, f"{es_prefix}-rebuild")  # the index is lost with the database
    db.dispose_engines()
    for name in ("catalogue.sqlite3", "catalogue.sqlite3-wal", "catalogue.sqlite3-shm"):
        (settings.home_dir / name).unlink(missing_ok=True)
    done = archive_cli(
        {**os.environ}, "rebuild", "--from-storage", "--into", str(tmp_path / "rebuilt"), "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["indexed"] == 2
    assert public_hits(settings_for_new_home(settings, tmp_path / "rebuilt", None)) == hits


def test_lost_site_rebuilt_from_a_file_system_replica(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "bag", [("a", "S-1", "测试一", b"one"), ("b", "S-2", "测试二", b"two")])
    assert ingest(bag, "GZ", home).status == "stored"
    with db.write_session(home) as s:
        review.decide_record(s, "GZ", "S-2", "restricted", reason="待审", review_on=None, actor="li")
    before = dump(home)
    replica = tmp_path / "offsite" / "ocfl"
    shutil.copytree(home.ocfl_root, replica)  # what a file-system replica holds
    keybackup = tmp_path / "keybackup"  # the node's keys are kept apart from the site (docs/recovery.md)
    for keys in (node_dir(home), sealing_dir(home)):
        if keys.is_dir():
            shutil.copytree(keys, keybackup / keys.relative_to(home.home_dir))
    db.dispose_engines()
    shutil.rmtree(home.home_dir)  # the whole site: catalogue, index and primary root
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(tmp_path / "gone")
    new_home = tmp_path / "new-site"
    done = archive_cli(env, "rebuild", "--from-storage", "--storage", str(replica), "--into", str(new_home))
    assert done.returncode == 0, done.stderr
    target = settings_for_new_home(home, new_home, replica)
    assert dump(target) == before
    assert public_hits(target) == ["GZ/S-1"]
    env.update(ARCHIVE_HOME=str(new_home), ARCHIVE_STORAGE_ROOT=str(replica))
    restore_keys(home, new_home, keybackup)
    assert archive_cli(env, "events", "verify").returncode == 0
    assert archive_cli(env, "drill", "--sample", "5").returncode == 0
