#!/usr/bin/env python3
"""Rebuild from storage alone: the rate of ``archive rebuild`` against merely reading the OCFL inventories of
the same root, the RTO for the home measured and its projection to 10 million records — in one run.

    python benchmarks/rebuild.py [--records 100000] [--workdir DIR] [--keep]

1. A home of ``--records`` records, each a real OCFL object (v1: one small original file and
   ``metadata/record.json``), written with the store's batch API (``begin_batch`` / ``commit_many``, 2,000
   objects a batch), and its catalogue rows (record, file, one ingestion event each) written with Core
   INSERTs and the event chain's :func:`archive.events.append_many`, 10,000 records a transaction — each
   commit appends to the catalogue journal in the storage root as every real commit does. (Ingesting
   100,000 bags would take hours and measure ingest, not the rebuild.)
2. The peer's floor: walk the root and read and parse every object's ``inventory.json`` (what any rebuild
   that re-derives the catalogue from the objects must do at least).
3. ``archive rebuild``'s two halves, timed apart: the catalogue from the journal
   (:func:`archive.recovery.rebuild.rebuild_catalogue`) and the public index (``search.reindex``, embedded).

Target: the catalogue rebuild at ≥ 0.5× the inventory-reading rate (records/s). The RTO printed is the
catalogue plus the index for the home measured, and linearly projected to 10,000,000 records. Everything
runs warm (the root was just written; the page cache is not dropped on a shared machine), for both sides
alike. :func:`recovery_figures` (over :func:`measure`) is what ``benchmarks/recovery.py`` calls.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Table, insert  # noqa: E402

from archive import db, services  # noqa: E402
from archive.config import Settings  # noqa: E402
from archive.events import INGESTION, NewEvent, append_many  # noqa: E402
from archive.home import init_home, store_for  # noqa: E402
from archive.models import File, Record, Transfer  # noqa: E402
from archive.recovery.rebuild import rebuild_catalogue, settings_for_new_home  # noqa: E402
from archive.storage.inventory import INVENTORY, iter_object_dirs  # noqa: E402

OBJECT_BATCH = 2_000
CATALOGUE_BATCH = 10_000
TARGET_RATIO = 0.5
PROJECTED = 10_000_000


def _settings(home: Path) -> Settings:
    return Settings(home=home, database_url=None, elasticsearch_url=None)


def generate(settings: Settings, records: int) -> float:
    """The home of step 1; returns seconds taken."""
    started = time.perf_counter()
    init_home(settings)
    store = store_for(settings)
    now = dt.datetime.now(dt.UTC)
    with db.write_session(settings) as s:
        archive = services.add_archive(
            s, "BENCH", name_zh="基准档案馆", name_en=None, level="city", parent=None
        )
        archive_id = archive.id
        s.add(
            Transfer(
                id="T-bench", archive_id=archive_id, source="benchmark", bag_name="bench", status="stored"
            )
        )
    records_t, files_t = Record.__table__, File.__table__
    assert isinstance(records_t, Table) and isinstance(files_t, Table)
    next_id = 1
    for start in range(0, records, CATALOGUE_BATCH):
        codes = [f"B-{i:08d}" for i in range(start, min(records, start + CATALOGUE_BATCH))]
        facts: dict[str, tuple[str, str, int]] = {}
        for i in range(0, len(codes), OBJECT_BATCH):
            batch = store.begin_batch()
            try:
                builders = []
                for code in codes[i : i + OBJECT_BATCH]:
                    b = batch.begin_object(f"urn:pearl-archive:BENCH:{code}")
                    content = f"基准档案 {code}\n".encode()
                    b.add_bytes("originals/r.txt", content)
                    b.add_bytes("metadata/record.json", json.dumps({"code": code}).encode())
                    sha512 = b.state["originals/r.txt"]
                    facts[code] = (hashlib.sha256(content).hexdigest(), sha512, len(content))
                    builders.append(b)
                for _ in store.commit_many(builders, message="benchmark", user_name="benchmark", created=now):
                    pass
            finally:
                batch.close()
        with db.write_session(settings) as s:
            conn = s.connection()
            rows = []
            for n, code in enumerate(codes):
                rows.append(
                    {
                        "id": next_id + n,
                        "archive_id": archive_id,
                        "archival_code": code,
                        "title": f"基准档案 {code}",
                        "date_text": "1990",
                        "date_start": dt.date(1990, 1, 1),
                        "date_end": dt.date(1990, 12, 31),
                        "access_status": "open",
                        "access_requested": "auto",
                        "file_count": 1,
                        "byte_count": facts[code][2],
                        "transfer_id": "T-bench",
                        "ocfl_object_id": f"urn:pearl-archive:BENCH:{code}",
                        "extra": {},
                        "created_at": now,
                        "updated_at": now,
                        "public_changed_at": now,
                    }
                )
            conn.execute(insert(records_t), rows)
            conn.execute(
                insert(files_t),
                [
                    {
                        "id": r["id"],
                        "record_id": r["id"],
                        "logical_path": "originals/r.txt",
                        "size": facts[r["archival_code"]][2],
                        "sha256": facts[r["archival_code"]][0],
                        "sha512": facts[r["archival_code"]][1],
                        "digests": {},
                        "identification": {},
                        "properties": {},
                        "role": "original",
                        "ocfl_version": "v1",
                        "created_at": now,
                    }
                    for r in rows
                ],
            )
            append_many(
                s,
                [
                    NewEvent(
                        event_type=INGESTION,
                        outcome="success",
                        agent="benchmark",
                        object_type="record",
                        object_id=r["ocfl_object_id"],
                        record_id=r["id"],
                        transfer_id="T-bench",
                        occurred_at=now,
                    )
                    for r in rows
                ],
            )
        next_id += len(codes)
    return time.perf_counter() - started


def read_inventories(root: Path) -> tuple[int, float]:
    started = time.perf_counter()
    n = 0
    for obj in iter_object_dirs(root):
        json.loads((obj / INVENTORY).read_bytes())
        n += 1
    return n, time.perf_counter() - started


def measure(
    records: int = 100_000, workdir: Path | None = None, *, keep: bool = False, reuse: Path | None = None
) -> dict[str, Any]:
    """Steps 1-3; the figures as a dict (rates in records/s, times in s). ``reuse``: the home of an earlier
    ``--keep`` run (``<workdir>/rebuild-bench-…/home``), measured again without generating it."""
    work = Path(tempfile.mkdtemp(prefix="rebuild-bench-", dir=workdir))
    try:
        settings = _settings(reuse or work / "home")
        generated = 0.0 if reuse else generate(settings, records)
        objects, read_seconds = read_inventories(settings.ocfl_root)
        target = settings_for_new_home(settings, work / "rebuilt", None)
        rebuilt = rebuild_catalogue(target)
        from search import get_backend
        from search.reindex import reindex

        started = time.perf_counter()
        indexed = reindex(target, get_backend(target)).indexed
        index_seconds = time.perf_counter() - started
        journal_bytes = sum(
            p.stat().st_size
            for p in (settings.ocfl_root / "extensions" / "pearl-catalogue-journal").iterdir()
        )
        rto = rebuilt.seconds + index_seconds
        return {
            "workdir": str(work),
            "records": records,
            "objects": objects,
            "generate_seconds": round(generated, 1),
            "journal_bytes": journal_bytes,
            "inventory_read_seconds": round(read_seconds, 2),
            "inventory_read_rate": round(objects / read_seconds),
            "catalogue_rebuild_seconds": round(rebuilt.seconds, 2),
            "catalogue_rebuild_rate": round(records / rebuilt.seconds),
            "ratio": round((records / rebuilt.seconds) / (objects / read_seconds), 2),
            "target_ratio": TARGET_RATIO,
            "index_seconds": round(index_seconds, 2),
            "indexed": indexed,
            "rto_seconds": round(rto, 1),
            "rto_projected_10m_hours": round(rto * PROJECTED / records / 3600, 2),
        }
    except BaseException:
        keep = False
        raise
    finally:
        db.dispose_engines()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def recovery_figures(records: int = 100_000) -> list[tuple[str, str, str]]:
    """The rebuild's figures for ``benchmarks/recovery.py``: (what, ours, the floor or the limit). A run
    over fewer than 100,000 records also gives the 100,000-record RTO, projected linearly."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("ARCHIVE_")}
    for name in saved:
        del os.environ[name]
    try:
        r = measure(records)
    finally:
        os.environ.update(saved)
    figures = [
        (
            f"rebuild, catalogue ({records} records)",
            f"{r['catalogue_rebuild_rate']} records/s ({r['catalogue_rebuild_seconds']} s)",
            f"reading every inventory: {r['inventory_read_rate']} records/s",
        ),
        ("rebuild / reading inventories", f"{r['ratio']}×", f"≥ {r['target_ratio']}×"),
        (f"RTO catalogue + index, {records} records", f"{r['rto_seconds']} s", ""),
    ]
    if records != 100_000:
        figures.append(
            ("RTO for 100,000 records (projected)", f"{r['rto_seconds'] * 100_000 / records:.0f} s", "")
        )
    figures.append(("RTO for 10,000,000 records (projected)", f"{r['rto_projected_10m_hours']} h", ""))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--reuse", type=Path, default=None, help="the home kept by an earlier --keep run")
    args = parser.parse_args()
    for name in list(os.environ):
        if name.startswith("ARCHIVE_"):
            del os.environ[name]
    result = measure(args.records, args.workdir, keep=True, reuse=args.reuse)  # removed after the print
    try:
        report(result, args.json)
    finally:
        if not args.keep:
            shutil.rmtree(result["workdir"], ignore_errors=True)


def report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    r = result
    print(
        f"home: {r['records']} records as OCFL objects, generated in {r['generate_seconds']} s; journal {r['journal_bytes']} bytes"
    )
    print(
        f"read every inventory (the floor):   {r['inventory_read_rate']:>9} records/s  ({r['inventory_read_seconds']} s)"
    )
    print(
        f"archive rebuild, catalogue:          {r['catalogue_rebuild_rate']:>9} records/s  ({r['catalogue_rebuild_seconds']} s)"
        f"  = {r['ratio']}x the floor (target >= {r['target_ratio']}x)"
    )
    print(f"archive rebuild, public index:        {r['indexed']} open records in {r['index_seconds']} s")
    print(
        f"RTO (catalogue + index): {r['rto_seconds']} s for {r['records']} records; "
        f"projected {r['rto_projected_10m_hours']} h for 10,000,000"
    )


if __name__ == "__main__":
    main()
