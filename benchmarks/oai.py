#!/usr/bin/env python3
"""OAI-PMH full-harvest rate beside reading the same records through ``/api/v1/search`` pages, one run.

    python benchmarks/oai.py [--records 30000] [--page-size 500] [--repeat 2]

1. Makes a node (SQLite catalogue + embedded index) with ``--records`` open records over six archives. The
   rows are generated straight into the catalogue (``public_changed_at`` set as ingest sets it) and the same
   documents indexed through ``EmbeddedBackend.index``: ingesting 30,000 bags would measure ingest, not
   OAI-PMH.
2. Starts the portal (``access_portal`` under uvicorn, a subprocess on 127.0.0.1) with
   ``ARCHIVE_OAI_PAGE_SIZE=--page-size``.
3. Measures, best of ``--repeat``, each reading every open record once:
   - **the project's harvester** (``search.harvest``): a full harvest of ``pearl_archive`` into a fresh
     catalogue copy (fetch, parse, store rows, index) — the figure the ≥ 3,000 records/s target is about;
     and its fetch + parse alone;
   - **oaipmh-scythe** (the test harvester) listing every record (``oai_dc``), for a second opinion;
   - **/api/v1/search** pages of 100 (browse per archive and decade: the embedded index ranks at most
     2,000 matches per query and no index pages past 10,000).

:func:`measure_oai` is the part ``benchmarks/federation.py`` can call against a running node.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from archive import db, services  # noqa: E402
from archive.config import Settings  # noqa: E402
from archive.home import init_home  # noqa: E402
from archive.models import Archive, Record, Transfer  # noqa: E402
from search import EmbeddedBackend  # noqa: E402

TARGET = 3_000.0


def _search_bench() -> Any:
    """benchmarks/search.py (its record generator, the portal launcher), loaded by path."""
    spec = importlib.util.spec_from_file_location("bench_search", _HERE / "search.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_node(bench: Any, settings: Settings, records: int) -> None:
    init_home(settings)
    with db.write_session(settings) as s:
        for code, name, level, parent in bench.ARCHIVES:
            services.add_archive(s, code, name_zh=name, name_en=None, level=level, parent=parent)
        s.add(Transfer(id="T-bench", source="benchmark", bag_name="benchmark", status="stored"))
    with db.write_session(settings) as s:
        ids = {a.code: a.id for a in s.query(Archive)}
    now = dt.datetime.now(dt.UTC)
    backend = EmbeddedBackend(settings.home_dir / "search.sqlite3")
    backend.ensure_ready()
    for docs in bench.batched(bench.generate(records), 5_000):
        rows = [
            {
                "archive_id": ids[d.archive], "archival_code": d.archival_code, "title": d.title,
                "creator": d.creator, "date_text": d.date_text, "date_start": d.date_start, "date_end": d.date_end,
                "retention": d.retention, "access_status": "open", "access_requested": "open",
                "description": d.description, "keywords": "；".join(d.keywords), "language": d.language,
                "transfer_id": "T-bench", "ocfl_object_id": f"urn:bench:{d.id}", "extra": {},
                "public_changed_at": now,
            }
            for d in docs
        ]  # fmt: skip
        with db.write_session(settings) as s:
            s.execute(insert(Record), rows)
        backend.index(docs)
    backend.close()


def harvest_once(url: str, work: Path, *, store: bool) -> tuple[int, float]:
    """The project's harvester over the whole list: (records, seconds). ``store=False`` fetches and parses
    only (the harvester's own wire rate, without writing the copy)."""
    from search.harvest import _pages, add_source, harvest_source

    if not store:
        n = 0
        t0 = time.perf_counter()
        with httpx.Client(timeout=120) as client:
            for page in _pages(client, url + "/oai", "pearl_archive", None, None):
                n += len(page.live)
        return n, time.perf_counter() - t0
    home = Settings(home=work / f"harvester-{time.monotonic_ns()}", database_url=None, elasticsearch_url="")
    init_home(home)
    source = add_source(home, url)
    t0 = time.perf_counter()
    report = harvest_source(home, source["id"], full=True)
    seconds = time.perf_counter() - t0
    if report.status != "ok":
        raise SystemExit(f"harvest failed: {report.error}")
    db.dispose_engines()
    shutil.rmtree(home.home_dir, ignore_errors=True)
    return report.added, seconds


def scythe_once(url: str) -> tuple[int, float]:
    from oaipmh_scythe import Scythe

    t0 = time.perf_counter()
    with Scythe(url + "/oai") as scythe:
        n = sum(1 for _ in scythe.list_records(metadata_prefix="oai_dc"))
    return n, time.perf_counter() - t0


def search_pages_once(url: str, archives: list[str]) -> tuple[int, float]:
    """Every record through search pages of 100, per archive and decade: the embedded index ranks at most
    2,000 matches a query, and any index pages no deeper than 10,000, so a full read must be partitioned."""
    n = 0
    t0 = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as client:
        for code in archives:
            for decade in range(1940, 2030, 10):
                page = 1
                while True:
                    params: dict[str, Any] = {"archive": code, "year_from": decade, "year_to": decade + 9}
                    r = client.get("/api/v1/search", params={**params, "size": 100, "page": page})
                    r.raise_for_status()
                    body = r.json()
                    if not body["total_exact"]:
                        raise SystemExit(f"{params}: too many matches for one partition")
                    n += len(body["hits"])
                    if page * 100 >= body["total"]:
                        break
                    page += 1
    return n, time.perf_counter() - t0


def best(label: str, expected: int, repeat: int, run: Any) -> float:
    rates = []
    for _ in range(repeat):
        n, seconds = run()
        if n != expected:
            raise SystemExit(f"{label}: read {n:,} records, expected {expected:,}")
        rates.append(n / seconds)
    return max(rates)


def measure_oai(
    url: str, expected: int, archives: list[str], work: Path, repeat: int = 2
) -> dict[str, float]:
    """Records/s of each way of reading every open record of the node at ``url`` (best of ``repeat``)."""
    return {
        "harvester": best("harvester", expected, repeat, lambda: harvest_once(url, work, store=True)),
        "harvester_fetch_parse": best(
            "fetch+parse", expected, repeat, lambda: harvest_once(url, work, store=False)
        ),
        "scythe": best("scythe", expected, repeat, lambda: scythe_once(url)),
        "search_pages": best("search", expected, repeat, lambda: search_pages_once(url, archives)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=30_000)
    parser.add_argument("--page-size", type=int, default=500, help="ARCHIVE_OAI_PAGE_SIZE of the node")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    bench = _search_bench()
    work = Path(tempfile.mkdtemp(prefix="pearl-oai-bench-"))
    node = Settings(home=work / "node", database_url=None, elasticsearch_url="")
    print(
        f"OAI-PMH benchmark: {args.records:,} open records, OAI page size {args.page_size}, {os.cpu_count()} cores"
    )
    try:
        t0 = time.monotonic()
        build_node(bench, node, args.records)
        print(
            f"  node built in {time.monotonic() - t0:.0f} s (rows generated into the catalogue, not ingested)"
        )
        env = {"ARCHIVE_HOME": str(node.home_dir), "ARCHIVE_ELASTICSEARCH_URL": "",
               "ARCHIVE_OAI_PAGE_SIZE": str(args.page_size)}  # fmt: skip
        proc, url = bench.serve(env, work / "portal.log")
        try:
            rates = measure_oai(url, args.records, [a[0] for a in bench.ARCHIVES], work, args.repeat)
        finally:
            proc.terminate()
            proc.wait(30)
        print(f"\nreading all {args.records:,} open records once, best of {args.repeat} (records/s)")
        met = "met" if rates["harvester"] >= TARGET else "MISSED"
        print(f"  project harvester, full harvest into the copy  {rates['harvester']:9,.0f}   "
              f"(target ≥ {TARGET:,.0f}: {met})")  # fmt: skip
        print(f"  project harvester, fetch + parse only          {rates['harvester_fetch_parse']:9,.0f}")
        print(f"  oaipmh-scythe ListRecords (oai_dc)             {rates['scythe']:9,.0f}")
        print(f"  /api/v1/search pages of 100                    {rates['search_pages']:9,.0f}")
        print(
            f"  harvester / search pages                       {rates['harvester'] / rates['search_pages']:9.2f}×"
        )
    finally:
        db.dispose_engines()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
