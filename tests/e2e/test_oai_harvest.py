"""OAI-PMH end to end: a real portal process (``archive serve``) harvested by a real harvester
(oaipmh-scythe) — full, incremental after new ingests, across resumption pages, deleted records after a record
is closed again — and by this project's own harvester into a second node's regional catalogue copy. The
restricted record is never seen by either."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from oaipmh_scythe import Scythe

from archive import db, services
from archive.config import Settings
from archive.home import init_home
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from search import SearchQuery
from search.harvest import catalogue_search
from tests.e2e.helpers import CSV_HEADER, archive_cmd, free_port, serving
from tests.oai_schema import NS, validated

pytestmark = pytest.mark.slow

SECRET = "机要词ZORKMID"


def bag(root: Path, rows: list[tuple[str, str, str]]) -> Path:
    """A bag with one text file per record: ``(档号, 题名, 开放状态)``."""
    lines = [CSV_HEADER]
    for code, title, access in rows:
        write_payload(root, {f"data/{code}/{title}.txt": f"{title}\n".encode()})
        lines.append(f"{code},{code},{title},测试单位,1990-05-01,永久,公开,{access}\r\n")
    write_payload(root, {"data/metadata/records.csv": "".join(lines).encode()})
    return make_bag(root, algorithms=("sha256",))


def make_home(path: Path) -> Settings:
    settings = Settings(home=path, database_url=None, elasticsearch_url=None, storage_root=None)
    init_home(settings)
    with db.write_session(settings) as s:
        services.add_archive(s, "GZ", name_zh="广州市档案馆", name_en=None, level="city", parent=None)
    return settings


@dataclass
class Node:
    settings: Settings
    url: str
    env: dict[str, str]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    settings = make_home(tmp_path / "gz")
    port = free_port()
    env = {
        "ARCHIVE_HOME": str(settings.home_dir),
        "ARCHIVE_OAI_PAGE_SIZE": "3",
        "ARCHIVE_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    env_all = {k: v for k, v in os.environ.items() if k != "ARCHIVE_DATABASE_URL"} | env
    with serving(env_all, port, tmp_path / "serve.log") as url:
        yield Node(settings, url, env)


def ident(code: str) -> str:
    return f"oai:pearl-node:GZ/{quote(code, safe='')}"


def harvest(url: str, **kw: str) -> list[Any]:
    with Scythe(url + "/oai") as scythe:
        return list(scythe.list_records(ignore_deleted=False, **kw))


def test_harvested_by_scythe_and_into_the_regional_catalogue(node: Node, tmp_path: Path) -> None:
    first = [(f"GZ-001-1990-永久-{i:04d}", f"珠江航运档案{i}", "开放") for i in range(1, 8)]
    secret = ("GZ-001-1990-永久-0099", f"{SECRET}内部件", "控制")
    assert ingest(bag(tmp_path / "b1", [*first, secret]), "GZ", node.settings).stored
    time.sleep(1.1)  # datestamps have seconds granularity and `from` is inclusive: harvest a second later

    # full harvest by oaipmh-scythe: 7 open records over 3 pages of 3, the restricted one absent
    records = harvest(node.url, metadata_prefix="oai_dc")
    assert sorted(r.header.identifier for r in records) == sorted(ident(c) for c, _, _ in first)
    assert not any(r.deleted for r in records)
    assert all(SECRET not in json.dumps(r.metadata, ensure_ascii=False) for r in records)
    native = harvest(node.url, metadata_prefix="pearl_archive")
    assert len(native) == 7
    # the same pages, fetched by hand, validate against the schemas and carry a resumption token
    page = validated(
        httpx.get(node.url + "/oai", params={"verb": "ListRecords", "metadataPrefix": "oai_dc"}).content
    )
    token = page.find(".//o:resumptionToken", NS)
    assert token is not None and token.get("completeListSize") == "7" and token.get("cursor") == "0"
    started = str(page.findtext("o:responseDate", namespaces=NS))
    assert SECRET not in httpx.get(node.url + "/oai", params={"verb": "ListSets"}).text

    # the province node harvests it into its catalogue copy (this project's harvester, over real HTTP)
    province = tmp_path / "gd"
    env = {"ARCHIVE_HOME": str(province)}
    assert archive_cmd("init", env=env).returncode == 0
    added = archive_cmd("harvest", "add", node.url, "--json", env=env)
    assert added.returncode == 0, added.stderr
    assert archive_cmd("harvest", "add", node.url + "/oai/", env=env).returncode == 1  # the same source
    ran = archive_cmd("harvest", "run", "--json", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (report,) = json.loads(ran.stdout)
    assert report["status"] == "ok" and report["full"] and report["harvested"] == 7 and report["pages"] == 3
    gd = Settings(home=province, database_url=None, elasticsearch_url=None, storage_root=None)
    answer = catalogue_search(gd, node.url, SearchQuery(q="航运"))
    assert answer is not None and answer.total == 7
    hit = answer.hits[0]
    assert (
        hit["source"] == "catalogue"
        and hit["harvested_at"]
        and hit["url"].startswith(node.url + "/records/GZ/")
    )
    assert answer.facets["archive"] == {"GZ": 7}
    assert catalogue_search(gd, node.url + "/oai", SearchQuery(q=SECRET[:2])).total == 0  # type: ignore[union-attr]
    assert catalogue_search(gd, "http://127.0.0.1:1", SearchQuery(q="航运")) is None

    # changes: two new records, one closed again (the real CLI, an event and an outbox row)
    time.sleep(1.1)  # datestamps have seconds granularity
    second = [(f"GZ-002-1990-永久-{i:04d}", f"港口建设档案{i}", "开放") for i in range(1, 3)]
    assert ingest(bag(tmp_path / "b2", second), "GZ", node.settings).stored
    closed = archive_cmd("records", "access", f"GZ/{first[0][0]}", "restricted", "--json", env=node.env)
    assert closed.returncode == 0 and json.loads(closed.stdout)["changed"] is True, closed.stderr

    changed = harvest(node.url, metadata_prefix="oai_dc", from_=started)
    live = sorted(r.header.identifier for r in changed if not r.deleted)
    gone = [r.header.identifier for r in changed if r.deleted]
    assert live == sorted(ident(c) for c, _, _ in second)
    assert gone == [ident(first[0][0])]
    with Scythe(node.url + "/oai") as scythe:
        got = scythe.get_record(identifier=ident(first[0][0]))
    assert got.deleted  # type: ignore[union-attr]

    ran = archive_cmd("harvest", "run", "--json", env=env)
    (report,) = json.loads(ran.stdout)
    assert report["status"] == "ok" and not report["full"]
    assert (report["harvested"], report["removed"], report["records"]) == (2, 1, 8)
    assert catalogue_search(gd, node.url, SearchQuery(q="航运")).total == 6  # type: ignore[union-attr]
    assert catalogue_search(gd, node.url, SearchQuery(q="港口")).total == 2  # type: ignore[union-attr]
    listed = json.loads(archive_cmd("harvest", "list", "--json", env=env).stdout)
    assert listed[0]["records"] == 8 and listed[0]["last_status"] == "ok"

    # a full harvest converges on the same copy; a dead origin is an error, and the copy stays
    ran = archive_cmd("harvest", "run", "--full", "--json", env=env)
    assert json.loads(ran.stdout)[0]["records"] == 8
    dead = tmp_path / "dead"
    assert archive_cmd("harvest", "add", "http://127.0.0.1:9", env=env).returncode == 0
    ran = archive_cmd("harvest", "run", "--json", env=env)
    assert ran.returncode == 1
    reports = {r["url"]: r for r in json.loads(ran.stdout)}
    assert reports["http://127.0.0.1:9"]["status"] == "error" and reports[node.url]["status"] == "ok"
    assert not dead.exists()
