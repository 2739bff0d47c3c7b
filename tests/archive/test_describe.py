"""Descriptive-metadata edits (archive.describe): each save a new OCFL version of metadata/record.json with
v1 untouched, an event with what changed, the catalogue row following, the history listed; bad fields are
refused with REV001 before anything is written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import db, describe, services
from archive.config import Settings
from archive.errors import InvalidMetadata
from archive.events import METADATA_MODIFICATION
from archive.home import store_for
from archive.models import Event, Outbox
from archive.storage import validate_root
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from tests.e2e.helpers import CSV_HEADER

CODE = "GZ-DESC-1"


def store(settings: Settings, tmp_path: Path) -> str:
    write_payload(tmp_path / "bag", {"data/r/r.txt": b"text"})
    rows = CSV_HEADER + f"r,{CODE},旧题名,测试单位,1990-05-01,永久,公开,自动\r\n"
    write_payload(tmp_path / "bag", {"data/metadata/records.csv": rows.encode()})
    assert ingest(make_bag(tmp_path / "bag", algorithms=("sha256",)), "GZ", settings).stored
    with db.read_session(settings) as s:
        return services.get_record(s, "GZ", CODE).ocfl_object_id


def record_json(settings: Settings, object_id: str, version: str) -> tuple[bytes, dict[str, object]]:
    store = store_for(settings)
    inventory = store.read_inventory(object_id)
    for digest, paths in inventory["versions"][version]["state"].items():
        if describe.RECORD_JSON in paths:
            data = (store.object_path(object_id) / inventory["manifest"][digest][0]).read_bytes()
            return data, json.loads(data)
    raise AssertionError("no record.json")


def test_an_edit_is_a_new_version_and_an_event(any_home: Settings, tmp_path: Path) -> None:
    home = any_home
    object_id = store(home, tmp_path)
    v1_bytes, _ = record_json(home, object_id, "v1")

    result = describe.edit_metadata(
        home,
        "GZ",
        CODE,
        {"title": "新题名", "keywords": ["珠江", "堤防"], "date": "1991-02", "creator": "测试单位"},
        actor="gz",
    )
    assert result["version"] == "v2"
    assert set(result["changes"]) == {"title", "keywords", "date"}  # the creator did not change
    assert result["changes"]["title"] == {"before": "旧题名", "after": "新题名"}

    inventory = store_for(home).read_inventory(object_id)
    assert inventory["head"] == "v2" and inventory["versions"]["v2"]["user"]["name"] == "gz"
    assert record_json(home, object_id, "v1")[0] == v1_bytes  # v1 untouched
    _, v2 = record_json(home, object_id, "v2")
    described = v2["record"]
    assert isinstance(described, dict)
    assert described["title"] == "新题名" and described["date_end"] == "1991-02-28"
    ok, messages = validate_root(store_for(home).root)
    assert ok, messages

    with db.read_session(home) as s:
        record = services.get_record(s, "GZ", CODE)
        assert (record.title, record.keywords, record.date_text) == ("新题名", "珠江；堤防", "1991-02")
        assert record.ocfl_head == "v2" and str(record.date_end) == "1991-02-28"
        event = s.execute(
            select(Event).where(Event.record_id == record.id, Event.event_type == METADATA_MODIFICATION)
        ).scalar_one()
        assert event.agent == "gz" and event.outcome_detail["version"] == "v2"
        assert event.outcome_detail["changes"]["keywords"]["after"] == ["珠江", "堤防"]
        assert s.execute(select(Outbox).where(Outbox.key == f"index:{record.id}:metadata:v2")).scalar_one()

    describe.edit_metadata(home, "GZ", CODE, {"description": "摘要"}, actor="gd-admin")
    history = describe.metadata_history(home, "GZ", CODE)
    assert [v["version"] for v in history["versions"]] == ["v3", "v2", "v1"]
    assert history["versions"][0]["who"] == "gd-admin"
    assert history["versions"][0]["changes"] == {"description": {"before": None, "after": "摘要"}}
    assert history["versions"][1]["changes"]["title"]["after"] == "新题名"
    assert history["versions"][2]["changes"] is None  # the ingest


BAD: list[tuple[dict[str, Any], str]] = [
    ({"title": "  "}, "empty"),
    ({"title": "题" * 1001}, "too_long"),
    ({"date": "1991-13-01"}, "date"),
    ({"date": "1992~1991"}, "date"),
    ({"keywords": ["词"] * 51}, "keywords"),
    ({"security_class": "公开"}, "unknown_field"),
    ({"title": "旧题名"}, "no_change"),
    ({"title": "题名\x00"}, "control"),
    ({"keywords": ["a\x01b"]}, "control"),
]


def test_bad_edits_are_refused_before_anything_is_written(home: Settings, tmp_path: Path) -> None:
    object_id = store(home, tmp_path)
    for changes, variant in BAD:
        with pytest.raises(InvalidMetadata) as caught:
            describe.edit_metadata(home, "GZ", CODE, changes, actor="gz")
        assert caught.value.code == "REV001" and caught.value.variant == variant, changes
    assert store_for(home).read_inventory(object_id)["head"] == "v1"
