#!/usr/bin/env python3
"""Search indexing throughput and query latency, both backends, in one run.

    eval "$(bash scripts/services.sh env)"     # ARCHIVE_TEST_ELASTICSEARCH_URL
    python benchmarks/search.py [--records 100000] [--embedded-records 100000] [--batch 1000] [--rounds 5]

1. Generates ``--records`` index documents (deterministic; Chinese titles, creators, descriptions with
   English words, keywords, a few hundred characters of file text, archival codes, dates, formats).
2. Indexing on Elasticsearch, interleaved batch by batch so both meet the same cluster state:
   the project (``ElasticBackend.index`` — the bulk path the indexer uses: open-only check, document
   conversion, NDJSON ``_bulk`` requests) into one index, and raw ``_bulk`` of the same documents
   (``client.bulk`` with an NDJSON body serialised before the clock starts, same batch size) into a twin index
   with the same mapping. Prints docs/s for both and the ratio (target: project ≥ 0.8 × raw).
3. Fills a catalogue (SQLite) with the same records as open, so the portal's open-check finds them, starts the
   portal (``access_portal`` under uvicorn, in a subprocess on 127.0.0.1) on the Elasticsearch index, and runs
   a fixed query mix through ``GET /api/v1/search`` (one warm-up round, then ``--rounds`` measured rounds).
4. The same on the embedded index with ``--embedded-records`` documents.

Prints latency p50/p95/p99 for each backend. Targets: p95 ≤ 50 ms at 1,000,000 records on Elasticsearch and at
100,000 on the embedded index. Every index and file it creates is deleted at the end.

The Elasticsearch figures depend on the server's heap: the test server (``scripts/services.sh``) has 512 MB,
enough for 100,000 records; the 1,000,000-record figures in the README were measured on a second instance with
a 2 GB heap (a production-like setting for an index of ~1.3 GB on a 24 GiB machine), started and stopped with

    export ARCHIVE_SERVICES_DIR=/tmp/bench-es ARCHIVE_ES_PORT=59210 ARCHIVE_ES_HEAP=2g
    bash scripts/services.sh start elasticsearch      # afterwards: bash scripts/services.sh stop elasticsearch
    python benchmarks/search.py --records 1000000 --skip-embedded --es-url http://127.0.0.1:59210
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

# this file is benchmarks/search.py: keep its directory off the path so ``import search`` is the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import elasticsearch  # noqa: E402
import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from archive import db, services  # noqa: E402
from archive.config import Settings  # noqa: E402
from archive.home import init_home  # noqa: E402
from archive.models import Archive, Record, Transfer  # noqa: E402
from search import EmbeddedBackend, RecordDoc  # noqa: E402
from search.elastic import ElasticBackend, index_settings, to_source  # noqa: E402

ARCHIVES = [
    ("GD", "广东省档案馆", "province", None),
    ("GZ", "广州市档案馆", "city", "GD"),
    ("SZ", "深圳市档案馆", "city", "GD"),
    ("FS", "佛山市档案馆", "city", "GD"),
    ("GZ-TH", "天河区档案馆", "county", "GZ"),
    ("GZ-YX", "越秀区档案馆", "county", "GZ"),
]
PLACES = [
    "广州",
    "深圳",
    "佛山",
    "珠海",
    "东莞",
    "香港",
    "澳门",
    "江门",
    "肇庆",
    "汕头",
    "天河",
    "越秀",
    "黄埔",
    "番禺",
]
SUBJECTS = ["港口建设", "城市规划", "水利工程", "教育事业", "交通运输", "档案管理", "农业生产", "工业普查",
            "财政预算", "卫生防疫", "住房改革", "对外贸易", "科技发展", "环境保护", "人口统计", "体育设施"]  # fmt: skip
DOCTYPES = ["报告", "通知", "会议纪要", "批复", "请示", "统计表", "决定", "函", "意见", "总结"]
ORGANS = ["人民政府", "计划委员会", "建设局", "统计局", "港务局", "教育局", "财政局", "档案馆", "水利局"]
ENGLISH = ["harbour", "survey", "census", "railway", "school", "river", "budget", "housing", "trade",
           "hospital", "bridge", "factory", "market", "canal", "typhoon", "flood", "customs", "export"]  # fmt: skip
SENTENCES = [
    "根据上级指示精神，结合本地实际情况，现将有关事项报告如下。",
    "该项目总投资约{n}万元，计划于{y}年底前完成。",
    "会议听取了关于{s}的汇报，并就下一步工作进行了讨论。",
    "各有关单位要高度重视，认真组织实施，确保各项任务落到实处。",
    "The {e} project was reviewed by the committee in {y}.",
    "经研究，同意{p}提出的方案，请按程序办理。",
    "附件包括统计表、照片及有关图纸共{n}份。",
]
FORMATS = [("Acrobat PDF 1.4", "fmt/18"), ("Plain Text File", "x-fmt/111"), ("Tagged Image File Format", "fmt/353"),
           ("Microsoft Word for Windows", "fmt/412"), ("JPEG File Interchange Format", "fmt/43")]  # fmt: skip
RETENTIONS = ["permanent", "30y", "10y"]


def generate(n: int, seed: int = 2024) -> Iterator[RecordDoc]:
    rnd = random.Random(seed)
    for i in range(n):
        code, _, level, _ = ARCHIVES[i % len(ARCHIVES)]
        year = 1949 + rnd.randrange(75)
        fonds = f"{rnd.randrange(1, 60):03d}"
        retention = rnd.choice(RETENTIONS)
        place, subject, kind = rnd.choice(PLACES), rnd.choice(SUBJECTS), rnd.choice(DOCTYPES)
        organ = rnd.choice(ORGANS)
        words = rnd.sample(ENGLISH, 3)
        fmt = rnd.sample(FORMATS, rnd.choice((1, 1, 2)))
        text = "".join(
            rnd.choice(SENTENCES).format(
                n=rnd.randrange(2, 9999), y=year, s=subject, e=words[2], p=place + organ
            )
            for _ in range(rnd.randrange(4, 12))
        )
        yield RecordDoc(
            id=f"{code}/{code}-{fonds}-{year}-{retention}-{i:07d}",
            archive=code,
            archive_level=level,
            archival_code=f"{code}-{fonds}-{year}-{retention}-{i:07d}",
            title=f"{place}{organ}关于{year}年{subject}的{kind}",
            access_status="open",
            creator=f"{place}市{organ}",
            fonds=f"{code}/{fonds}",
            date_text=str(year),
            date_start=dt.date(year, 1, 1),
            date_end=dt.date(year, 12, 31),
            retention=retention,
            language="zh",
            description=f"{year}年{place}{subject}。{words[0]} {words[1]} of {place}.",
            keywords=(subject, place),
            formats=tuple(f[0] for f in fmt),
            puids=tuple(f[1] for f in fmt),
            text=text,
        )


def batched(items: Iterator[RecordDoc], size: int) -> Iterator[list[RecordDoc]]:
    batch: list[RecordDoc] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def ndjson(index: str, docs: Sequence[RecordDoc]) -> bytes:
    lines = []
    for d in docs:
        lines.append(json.dumps({"index": {"_index": index, "_id": d.id}}))
        lines.append(json.dumps(to_source(d), ensure_ascii=False))
    return ("\n".join(lines) + "\n").encode()


# -- indexing ---------------------------------------------------------------------------------------------


def index_elastic(
    client: elasticsearch.Elasticsearch, alias: str, records: int, batch: int
) -> dict[str, float]:
    project = ElasticBackend(client, alias)  # the project's defaults
    project.ensure_ready()
    raw_index = f"{alias}-raw"
    body = index_settings()
    client.indices.create(index=raw_index, settings=body["settings"], mappings=body["mappings"])
    t_project = t_raw = 0.0
    done = 0
    progress = time.monotonic()
    for docs in batched(generate(records), batch):
        payload = ndjson(raw_index, docs)  # serialised before the clock starts
        t0 = time.perf_counter()
        answer = client.bulk(operations=cast(Any, payload))  # bytes are sent as they are
        t_raw += time.perf_counter() - t0
        if answer["errors"]:
            raise SystemExit(f"raw bulk refused documents: {json.dumps(answer.body)[:500]}")
        t0 = time.perf_counter()
        project.index(docs)
        t_project += time.perf_counter() - t0
        done += len(docs)
        if time.monotonic() - progress > 15:
            print(f"  … {done:,} / {records:,} documents", flush=True)
            progress = time.monotonic()
    project.refresh()
    client.indices.refresh(index=raw_index)
    assert project.count() == records, project.count()
    assert int(client.count(index=raw_index)["count"]) == records
    client.indices.delete(index=raw_index)
    return {"project": records / t_project, "raw": records / t_raw}


def index_embedded(path: Path, records: int, batch: int) -> float:
    backend = EmbeddedBackend(path)
    backend.ensure_ready()
    t = 0.0
    for docs in batched(generate(records), batch):
        t0 = time.perf_counter()
        backend.index(docs)
        t += time.perf_counter() - t0
    backend.close()
    return records / t


def fill_catalogue(settings: Settings, records: int) -> None:
    """The same records, open, in the catalogue (the portal drops hits the catalogue does not hold open)."""
    init_home(settings)
    with db.write_session(settings) as s:
        for code, name, level, parent in ARCHIVES:
            services.add_archive(s, code, name_zh=name, name_en=None, level=level, parent=parent)
        s.add(Transfer(id="T-bench", source="benchmark", bag_name="benchmark", status="stored"))
    with db.write_session(settings) as s:
        ids = {a.code: a.id for a in s.query(Archive)}
    for docs in batched(generate(records), 5_000):
        rows = [
            {
                "archive_id": ids[d.archive], "archival_code": d.archival_code, "title": d.title,
                "creator": d.creator, "date_text": d.date_text, "date_start": d.date_start, "date_end": d.date_end,
                "retention": d.retention, "access_status": "open", "access_requested": "open",
                "transfer_id": "T-bench", "ocfl_object_id": f"urn:bench:{d.id}", "extra": {},
            }
            for d in docs
        ]  # fmt: skip
        with db.write_session(settings) as s:
            s.execute(insert(Record), rows)


# -- querying through the portal --------------------------------------------------------------------------

QUERY_MIX: list[dict[str, Any]] = [
    {"q": "港"}, {"q": "档"}, {"q": "澳"},                                              # Chinese, 1 character
    {"q": "广州"}, {"q": "档案"}, {"q": "规划"}, {"q": "香港"},                          # Chinese, 2 characters
    {"q": "港口建设"}, {"q": "会议纪要"}, {"q": "人民政府"}, {"q": "天河体育设施"},        # Chinese, 3+ characters
    {"q": "harbour"}, {"q": "Census"}, {"q": "railway river"},                          # English
    {"q": "广州 harbour"}, {"q": "深圳 budget"},                                          # mixed
    {"q": "GZ-010"}, {"q": "SZ-005-1980"}, {"q": "GD-001-1960-permanent-0000006"},     # codes: prefix, exact
    {"q": "港", "archive": "SZ"}, {"q": "规划", "retention": "30y"},                      # text + filters
    {"q": "报告", "format": "fmt/18"}, {"q": "广州", "year_from": 1960, "year_to": 1969},
    {}, {"archive": "GZ-TH"}, {"level": "county", "sort": "date_desc"},                 # browse + facets
    {"q": "广州", "sort": "date_desc"}, {"q": "档案", "page": 3},                         # sorting, paging
    {"q": "城市规划 通知", "sort": "date_asc"}, {"q": "NEAR(广州 \"*"},                    # hostile text
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "access_portal.app:create_app", "--factory", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        env={**os.environ, **env},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"portal exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise SystemExit(f"portal not healthy after 120 s: {log.read_text()[-2000:]}")


def measure(url: str, rounds: int) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    totals: list[int] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for r in range(rounds + 1):  # round 0 warms up and is not counted
            for params in QUERY_MIX:
                t0 = time.perf_counter()
                response = client.get("/api/v1/search", params=params)
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status_code != 200:
                    raise SystemExit(f"{params} → {response.status_code}: {response.text[:300]}")
                if r:
                    latencies.append(elapsed)
                else:
                    totals.append(int(response.json()["total"]))
    return latencies, totals


def percentiles(values: Sequence[float]) -> str:
    q = statistics.quantiles(values, n=100, method="inclusive")
    return f"p50 {q[49]:6.1f} ms   p95 {q[94]:6.1f} ms   p99 {q[98]:6.1f} ms   (n={len(values)})"


def run_api(label: str, env: dict[str, str], work: Path, rounds: int) -> tuple[list[float], list[int]]:
    proc, url = serve(env, work / f"portal-{label}.log")
    try:
        return measure(url, rounds)
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="documents on Elasticsearch")
    parser.add_argument(
        "--embedded-records", type=int, default=100_000, help="documents on the embedded index"
    )
    parser.add_argument("--batch", type=int, default=1_000, help="documents per bulk request / index() call")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds of the query mix")
    parser.add_argument("--es-url", default=os.environ.get("ARCHIVE_TEST_ELASTICSEARCH_URL"))
    parser.add_argument("--skip-embedded", action="store_true")
    args = parser.parse_args()
    if not args.es_url:
        raise SystemExit("no Elasticsearch: run scripts/services.sh start elasticsearch, or pass --es-url")

    work = Path(tempfile.mkdtemp(prefix="pearl-bench-"))
    client = elasticsearch.Elasticsearch(args.es_url, request_timeout=300)
    client.cluster.health(wait_for_status="yellow", timeout="60s")
    alias = f"pearl-bench-{uuid.uuid4().hex[:8]}"
    print(f"search benchmark: {args.records:,} documents on Elasticsearch, {args.embedded_records:,} embedded, "
          f"batches of {args.batch:,}, {os.cpu_count()} cores")  # fmt: skip
    try:
        t0 = time.monotonic()
        rates = index_elastic(client, alias, args.records, args.batch)
        ratio = rates["project"] / rates["raw"]
        print(f"\nindexing on Elasticsearch ({time.monotonic() - t0:.0f} s for both)")
        print(f"  project (ElasticBackend.index)  {rates['project']:9,.0f} docs/s")
        print(f"  raw _bulk (pre-serialised)      {rates['raw']:9,.0f} docs/s")
        print(
            f"  ratio project / raw             {ratio:9.2f}   (target ≥ 0.80: {'met' if ratio >= 0.8 else 'MISSED'})"
        )

        es_home = Settings(home=work / "es-home")
        fill_catalogue(es_home, args.records)
        env = {"ARCHIVE_HOME": str(es_home.home_dir), "ARCHIVE_ELASTICSEARCH_URL": args.es_url,
               "ARCHIVE_ELASTICSEARCH_INDEX": alias}  # fmt: skip
        es_lat, es_totals = run_api("elastic", env, work, args.rounds)
        results = [("elastic", args.records, es_lat)]

        if not args.skip_embedded:
            emb_home = Settings(home=work / "emb-home")
            fill_catalogue(emb_home, args.embedded_records)
            rate = index_embedded(emb_home.home_dir / "search.sqlite3", args.embedded_records, args.batch)
            print(f"  (embedded index: {rate:,.0f} docs/s through EmbeddedBackend.index)")
            env = {"ARCHIVE_HOME": str(emb_home.home_dir), "ARCHIVE_ELASTICSEARCH_URL": ""}
            emb_lat, emb_totals = run_api("embedded", env, work, args.rounds)
            results.append(("embedded", args.embedded_records, emb_lat))
            if args.records == args.embedded_records and es_totals != emb_totals:
                diff = [(m, a, b) for m, a, b in zip(QUERY_MIX, es_totals, emb_totals, strict=True) if a != b]
                print(f"  note: totals differ between backends for {diff}")

        print(
            f"\nAPI search latency, GET /api/v1/search, {len(QUERY_MIX)} queries × {args.rounds} rounds (after 1 warm-up)"
        )
        for name, n, lat in results:
            p95 = statistics.quantiles(lat, n=100, method="inclusive")[94]
            print(f"  {name:9s} {n:>10,} records   {percentiles(lat)}   (target p95 ≤ 50 ms: "
                  f"{'met' if p95 <= 50 else 'MISSED'})")  # fmt: skip
    finally:
        names = list(client.indices.get(index=f"{alias}*", expand_wildcards="all").body)
        if names:
            client.indices.delete(index=",".join(names))
        client.close()
        db.dispose_engines()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
