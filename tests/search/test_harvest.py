"""The harvester against answers a real repository would rarely give (httpx's MockTransport): an oai_dc-only
peer, garbage, HTTP errors, OAI errors. The provider end to end is in tests/e2e/test_oai_harvest.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.errors import BadArgument
from archive.models import HarvestSource
from search import SearchQuery
from search.harvest import add_source, catalogue_search, harvest_source, split_url

OAI = 'xmlns="http://www.openarchives.org/OAI/2.0/"'
FORMATS = f"""<OAI-PMH {OAI}><responseDate>2026-01-01T00:00:00Z</responseDate><request>x</request>
<ListMetadataFormats><metadataFormat><metadataPrefix>oai_dc</metadataPrefix><schema>s</schema>
<metadataNamespace>n</metadataNamespace></metadataFormat></ListMetadataFormats></OAI-PMH>"""
DC_PAGE = f"""<OAI-PMH {OAI}><responseDate>2026-01-02T03:04:05Z</responseDate><request>x</request><ListRecords>
<record><header><identifier>oai:peer:SZ/SZ-1</identifier><datestamp>2025-01-01T00:00:00Z</datestamp></header>
<metadata><oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"
 xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>深圳特区建设规划</dc:title><dc:creator>深圳市人民政府</dc:creator>
<dc:subject>特区</dc:subject><dc:date>1980-08</dc:date><dc:identifier>SZ/SZ-1</dc:identifier>
<dc:identifier>http://peer/records/SZ/SZ-1</dc:identifier></oai_dc:dc></metadata></record>
<record><header status="deleted"><identifier>oai:peer:SZ/SZ-0</identifier><datestamp>2025-01-01T00:00:00Z</datestamp>
</header></record></ListRecords></OAI-PMH>"""


def mock(answers: dict[str, httpx.Response]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return answers[request.url.params["verb"]]

    return httpx.Client(transport=httpx.MockTransport(handler))


def source_id(settings: Settings, url: str) -> int:
    return int(add_source(settings, url)["id"])


def test_split_url() -> None:
    assert split_url("http://peer:8000/oai/") == ("http://peer:8000/oai", "http://peer:8000")
    assert split_url(" https://peer ") == ("https://peer/oai", "https://peer")
    for bad in ("ftp://peer", "peer", "http://peer/oai?verb=Identify"):
        with pytest.raises(BadArgument):
            split_url(bad)


def test_oai_dc_peer(home: Settings) -> None:
    sid = source_id(home, "http://peer")
    client = mock(
        {
            "ListMetadataFormats": httpx.Response(200, text=FORMATS),
            "ListRecords": httpx.Response(200, text=DC_PAGE),
        }
    )
    report = harvest_source(home, sid, client=client)
    assert (report.status, report.added, report.records) == ("ok", 1, 1)
    with db.read_session(home) as s:
        source = s.get(HarvestSource, sid)
        assert (
            source is not None
            and source.metadata_prefix == "oai_dc"
            and source.next_from == "2026-01-02T03:04:05Z"
        )
    answer = catalogue_search(home, "http://peer/", SearchQuery(q="特区"))
    assert answer is not None and answer.total == 1
    hit = answer.hits[0]
    assert (hit["archive"], hit["archival_code"], hit["date"]) == ("SZ", "SZ-1", "1980-08")
    assert hit["source"] == "catalogue" and hit["url"] == "http://peer/records/SZ/SZ-1"
    # 1- and 2-character Chinese queries work on the copy as on the node's own index
    for q in ("深", "特区", "规划"):
        one = catalogue_search(home, "http://peer", SearchQuery(q=q))
        assert one is not None and one.total == 1, q
    by_year = catalogue_search(home, "http://peer", SearchQuery(q="规划", year_from=1980, year_to=1980))
    assert by_year is not None and by_year.total == 1


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(500, text="boom"),
        httpx.Response(200, text="<html>not oai</html>"),
        httpx.Response(200, text="not xml at all <"),
        httpx.Response(
            200,
            text=f'<OAI-PMH {OAI}><responseDate>x</responseDate><error code="badArgument">no</error></OAI-PMH>',
        ),
    ],
)
def test_a_failing_peer_is_reported_and_changes_nothing(home: Settings, answer: httpx.Response) -> None:
    sid = source_id(home, "http://peer")
    client = mock({"ListMetadataFormats": httpx.Response(200, text=FORMATS), "ListRecords": answer})
    report = harvest_source(home, sid, client=client)
    assert report.status == "error" and report.error
    with db.read_session(home) as s:
        source = s.execute(select(HarvestSource)).scalar_one()
        assert source.last_status == "error" and source.next_from is None and source.last_success_at is None
    assert catalogue_search(home, "http://peer", SearchQuery()) is None  # never harvested successfully


def test_no_records_match_is_an_empty_success(home: Settings) -> None:
    sid = source_id(home, "http://peer")
    empty = f'<OAI-PMH {OAI}><responseDate>2026-01-01T00:00:00Z</responseDate><request>x</request><error code="noRecordsMatch">none</error></OAI-PMH>'
    client = mock(
        {
            "ListMetadataFormats": httpx.Response(200, text=FORMATS),
            "ListRecords": httpx.Response(200, text=empty),
        }
    )
    report = harvest_source(home, sid, client=client)
    assert (report.status, report.added) == ("ok", 0)
    answer = catalogue_search(home, "http://peer", SearchQuery())
    assert answer is not None and answer.total == 0


def test_a_full_harvest_removes_side_files_of_dead_runs_only(home: Settings) -> None:
    sid = source_id(home, "http://peer")
    home.harvest_dir.mkdir(parents=True, exist_ok=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        base = home.harvest_dir / f"source-{sid}.sqlite3"
        left = [Path(f"{base}.full-{dead.stdout.strip()}"), Path(f"{base}.full-{dead.stdout.strip()}-wal")]
        running = Path(f"{base}.full-{live.pid}")
        for path in [*left, running]:
            path.write_bytes(b"")
        client = mock(
            {
                "ListMetadataFormats": httpx.Response(200, text=FORMATS),
                "ListRecords": httpx.Response(200, text=DC_PAGE),
            }
        )
        assert harvest_source(home, sid, full=True, client=client).status == "ok"
        assert not any(p.exists() for p in left)  # the dead run's side file and its WAL are gone
        assert running.exists()  # a running harvest's side file is left alone
    finally:
        live.kill()
        live.wait()


def test_hourly_on_the_beat(home: Settings) -> None:
    from preservation import tasks
    from preservation.celery_app import HARVEST_TASK, make_app

    entry = make_app(home).conf.beat_schedule["harvest-regional-catalogue"]
    assert (
        entry["task"] == HARVEST_TASK
        and entry["schedule"].minute == {17}
        and len(entry["schedule"].hour) == 24
    )
    assert tasks.app.tasks[HARVEST_TASK].name == tasks.harvest_catalogue.name == HARVEST_TASK


def test_a_full_harvest_rebuilds_the_index_and_a_failed_one_keeps_it(home: Settings) -> None:
    sid = source_id(home, "http://peer")
    formats = httpx.Response(200, text=FORMATS)
    assert harvest_source(home, sid, client=mock({"ListMetadataFormats": formats, "ListRecords": httpx.Response(200, text=DC_PAGE)})).status == "ok"  # fmt: skip
    failed = mock({"ListMetadataFormats": formats, "ListRecords": httpx.Response(500, text="boom")})
    assert harvest_source(home, sid, full=True, client=failed).status == "error"
    answer = catalogue_search(home, "http://peer", SearchQuery(q="特区"))
    assert answer is not None and answer.total == 1  # the index as it was before the failed run
    moved = DC_PAGE.replace("SZ-1", "SZ-2").replace("深圳特区建设规划", "蛇口工业区")
    client = mock({"ListMetadataFormats": formats, "ListRecords": httpx.Response(200, text=moved)})
    report = harvest_source(home, sid, full=True, client=client)
    assert (report.status, report.added, report.removed, report.records) == ("ok", 1, 1, 1)
    gone = catalogue_search(home, "http://peer", SearchQuery(q="规划"))
    found = catalogue_search(home, "http://peer", SearchQuery(q="蛇口"))
    assert gone is not None and gone.total == 0
    assert found is not None and [h["archival_code"] for h in found.hits] == ["SZ-2"]
    assert not list(home.harvest_dir.glob("*.full-*"))  # no side file left behind


def test_one_harvest_of_a_source_at_a_time(home: Settings) -> None:
    """A second harvest of a source while one runs (the schedule and a hand-started run, or two hosts sharing
    the home) is skipped as "busy", changing nothing; once the first one's process is gone — even killed —
    the next harvest runs."""
    sid = source_id(home, "http://peer")
    client = mock(
        {
            "ListMetadataFormats": httpx.Response(200, text=FORMATS),
            "ListRecords": httpx.Response(200, text=DC_PAGE),
        }
    )
    home.harvest_dir.mkdir(parents=True, exist_ok=True)
    lock = home.harvest_dir / f"source-{sid}.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(lock)!r}, os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.pwrite(fd, f'pid {os.getpid()} on testhost'.encode(), 0)\n"
            "print('locked', flush=True)\n"
            "time.sleep(600)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        report = harvest_source(home, sid, client=client)
        assert report.status == "busy" and report.added == 0
        assert report.error and f"pid {holder.pid} on testhost" in report.error
        with db.read_session(home) as s:
            source = s.execute(select(HarvestSource)).scalar_one()
            assert source.last_run_at is None and source.last_status is None
    finally:
        holder.kill()
        holder.communicate(timeout=10)
    report = harvest_source(home, sid, client=client)
    assert (report.status, report.added) == ("ok", 1)
