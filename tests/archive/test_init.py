"""`archive init` runs at every start of the production stack (the compose file's init service): it creates or
upgrades the catalogue schema and the storage root, exits 0 when everything is current, and several at once
take turns instead of racing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from archive import db
from archive.config import Settings


def test_init_is_idempotent_and_safe_to_run_concurrently(tmp_path: Path, database_url: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVE_")}
    env["ARCHIVE_HOME"] = str(tmp_path / "home")
    if database_url:
        env["ARCHIVE_DATABASE_URL"] = database_url
    argv = [sys.executable, "-m", "archive", "init"]
    together = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    for proc in together:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
        assert "Traceback" not in output
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert again.returncode == 0, again.stderr
    assert "already current" in again.stdout

    settings = Settings(home=tmp_path / "home", database_url=database_url)
    head = ScriptDirectory.from_config(db.alembic_config(settings)).get_current_head()
    with db.get_engine(settings).connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    assert sorted(p.name for p in settings.ocfl_root.iterdir()) == [
        "0=ocfl_1.1",
        "extensions",
        "ocfl_layout.json",
    ]
    assert list(settings.staging_dir.glob("ocfl-txn-*")) == []
    db.dispose_engines()
