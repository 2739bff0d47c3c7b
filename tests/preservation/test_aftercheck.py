"""四性检测 after a migration: the record a migration changed is checked again and the run kept."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from archive import db
from archive.checks.models import CheckRun
from archive.config import Settings
from ingest.pipeline import ingest
from tests.e2e.helpers import archive_cmd, simple_bag


def test_migrating_a_record_checks_it_again(home: Settings, tmp_path: Path) -> None:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 120, 200)).save(out, format="PNG")
    bag = simple_bag(tmp_path / "bag", [("p", "GZ-010-1990-永久-0001", "照片", out.getvalue())])
    (bag / "data/p/照片.txt").rename(bag / "data/p/照片.png")
    from ingest.bagwriter import make_bag

    for manifest in bag.glob("*manifest-*.txt"):
        manifest.unlink()
    make_bag(bag, algorithms=("sha256",))
    assert ingest(bag, "GZ", home).stored
    proc = archive_cmd("migrate", "--record", "GZ/GZ-010-1990-永久-0001", "--now", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert any(m["status"] == "migrated" for m in shown["migrations"]), shown
    assert shown["checks"] is not None
    with db.read_session(home) as s:
        run = s.get(CheckRun, shown["checks"]["run_id"])
        assert run is not None and run.scope == "objects" and run.stage == "preservation"
        assert run.extra["objects"] == ["GZ/GZ-010-1990-永久-0001"]
        assert "migration" in run.extra["reason"]
        assert s.execute(select(CheckRun).where(CheckRun.stage == "receipt")).scalar_one().status != "fail"
