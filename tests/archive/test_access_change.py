"""Access changes (``archive.services.set_access``) on SQLite and PostgreSQL: each is an event and an index
outbox row, and moves the record's last public change — which is what OAI-PMH lists, as a live record or as
a deleted one, and never for a record that was not public."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from lxml import etree
from sqlalchemy import func, select

from access_portal import oai
from archive import db, services
from archive.config import Settings
from archive.models import Event, Outbox, Record
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from tests.e2e.helpers import CSV_HEADER
from tests.oai_schema import NS, error_code, validated

TODAY = dt.date(2026, 12, 1)


def store(settings: Settings, tmp_path: Path) -> None:
    rows = [CSV_HEADER]
    for code, access in (("GZ-1", "开放"), ("GZ-2", "控制"), ("GZ-3", "开放")):
        write_payload(tmp_path / "bag", {f"data/{code}/{code}.txt": code.encode()})
        rows.append(f"{code},{code},题名{code},测试单位,1990-05-01,永久,公开,{access}\r\n")
    write_payload(tmp_path / "bag", {"data/metadata/records.csv": "".join(rows).encode()})
    assert ingest(make_bag(tmp_path / "bag", algorithms=("sha256",)), "GZ", settings).stored


def get_record(settings: Settings, code: str) -> etree._Element:
    with db.read_session(settings) as s:
        xml = oai.respond(
            settings,
            s,
            [
                ("verb", "GetRecord"),
                ("metadataPrefix", "oai_dc"),
                ("identifier", f"oai:pearl-node:GZ/{code}"),
            ],
            "http://node/oai",
        )
    return validated(xml.encode())


def changed_at(settings: Settings, code: str) -> dt.datetime | None:
    with db.read_session(settings) as s:
        return s.execute(select(Record.public_changed_at).where(Record.archival_code == code)).scalar_one()


def set_access(settings: Settings, code: str, requested: str) -> bool:
    with db.write_session(settings) as s:
        record = services.get_record(s, "GZ", code)
        return services.set_access(s, record, requested, today=TODAY, note="test")


def test_ingest_notes_the_public_change_of_open_records_only(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    assert changed_at(any_home, "GZ-1") is not None
    assert changed_at(any_home, "GZ-2") is None  # restricted from the start: never public
    assert error_code(get_record(any_home, "GZ-2")) == "idDoesNotExist"
    assert get_record(any_home, "GZ-1").find(".//o:metadata", NS) is not None


def test_closing_and_reopening(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    opened = changed_at(any_home, "GZ-1")
    with db.read_session(any_home) as s:
        events = s.execute(select(func.count()).select_from(Event)).scalar_one()
        outbox = s.execute(
            select(func.count()).select_from(Outbox).where(Outbox.topic == "index")
        ).scalar_one()

    assert set_access(any_home, "GZ-1", "restricted") is True
    closed = changed_at(any_home, "GZ-1")
    assert opened is not None and closed is not None and closed > opened
    root = get_record(any_home, "GZ-1")
    header = root.find(".//o:header", NS)
    assert header is not None and header.get("status") == "deleted"
    assert root.find(".//o:metadata", NS) is None and "题名" not in etree.tostring(root, encoding=str)
    with db.read_session(any_home) as s:
        assert s.execute(select(func.count()).select_from(Event)).scalar_one() == events + 1
        n = s.execute(select(func.count()).select_from(Outbox).where(Outbox.topic == "index")).scalar_one()
        assert n == outbox + 1
        event = s.execute(select(Event).order_by(Event.id.desc()).limit(1)).scalar_one()
        assert event.object_id == "GZ/GZ-1" and event.outcome_detail["before"] == "open"

    assert set_access(any_home, "GZ-1", "restricted") is False  # no change: the datestamp stays
    assert changed_at(any_home, "GZ-1") == closed

    assert set_access(any_home, "GZ-1", "open") is True
    reopened = changed_at(any_home, "GZ-1")
    assert reopened is not None and reopened > closed
    assert get_record(any_home, "GZ-1").find(".//o:metadata", NS) is not None

    # opening a record that was never public makes it appear; restricting one never public leaves no trace
    assert set_access(any_home, "GZ-2", "auto") is True  # dated 1990: open by art. 27
    assert get_record(any_home, "GZ-2").find(".//o:metadata", NS) is not None
    with db.write_session(any_home) as s:
        record = services.get_record(s, "GZ", "GZ-3")
        record.security_class = "秘密"
        services.set_access(s, record, "open", today=TODAY)  # classified now: decided restricted
    header = get_record(any_home, "GZ-3").find(".//o:header", NS)
    assert header is not None and header.get("status") == "deleted"


def test_lists_and_tokens(any_home: Settings, tmp_path: Path) -> None:
    """ListSets, and ListIdentifiers one record a page with from/until, on both databases."""
    store(any_home, tmp_path)
    set_access(any_home, "GZ-3", "restricted")
    settings = any_home.model_copy(update={"oai_page_size": 1})
    with db.read_session(settings) as s:
        sets = validated(oai.respond(settings, s, [("verb", "ListSets")], "http://node/oai").encode())
        assert [e.text for e in sets.iterfind(".//o:setSpec", NS)] == [
            "archive:GD",
            "archive:GZ",
            "archive:GZ-TH",
        ]
        start = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        args = [
            ("verb", "ListIdentifiers"),
            ("metadataPrefix", "oai_dc"),
            ("from", start),
            ("until", "2999-01-01T00:00:00Z"),
        ]
        seen: list[tuple[str | None, str | None]] = []
        while True:
            root = validated(oai.respond(settings, s, args, "http://node/oai").encode())
            assert error_code(root) is None
            seen += [
                (h.findtext("o:identifier", namespaces=NS), h.get("status"))
                for h in root.iterfind(".//o:header", NS)
            ]
            token = root.find(".//o:resumptionToken", NS)
            if token is None or not token.text:
                break
            assert token.get("completeListSize") == "2"
            args = [("verb", "ListIdentifiers"), ("resumptionToken", token.text)]
    assert seen == [("oai:pearl-node:GZ/GZ-1", None), ("oai:pearl-node:GZ/GZ-3", "deleted")]
