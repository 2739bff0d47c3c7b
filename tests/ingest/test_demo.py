"""`archive demo` on a fresh machine: no setting at all, ends with hints that lead to the portal, and the
README's example search (档案) finds open records — and only open ones — in what it ingested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from archive import db
from archive.config import Settings
from ingest.demo import EXAMPLE_QUERY
from search import EmbeddedBackend, drain


def test_demo_needs_no_setting_and_its_example_query_finds_open_records(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    done = subprocess.run(
        [sys.executable, "-m", "archive", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    hints = done.stdout[done.stdout.index("Try next") :]
    assert "archive serve" in hints
    assert f"http://127.0.0.1:8000/search?q={EXAMPLE_QUERY}" in hints
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"/search?q={EXAMPLE_QUERY}" in readme  # the README shows the same query

    settings = Settings(home=tmp_path / "archive-data")  # the default home, in the current directory
    backend = EmbeddedBackend(settings.home_dir / "search.sqlite3")
    assert drain(settings, backend).failed == 0  # what `archive serve` does in the background
    backend.close()
    from access_portal.app import create_app

    with TestClient(create_app(settings)) as client:
        body = client.get("/api/v1/search", params={"q": EXAMPLE_QUERY}).json()
        page = client.get("/search", params={"q": EXAMPLE_QUERY})
    found = {(h["archive"], h["archival_code"]) for h in body["hits"]}
    assert found == {
        ("GD", "GD-001-1995-永久-0001"),
        ("GD", "GD-002-1998-永久-0003"),
        ("GZ", "GZ-010-1985-永久-0001"),
    }
    assert "GD-001-2016-30年-0002" not in page.text  # 档案工作会议纪要: too recent, never shown
    assert page.status_code == 200 and "GD-002-1998-永久-0003" in page.text
    db.dispose_engines()
