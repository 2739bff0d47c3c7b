from __future__ import annotations

import itertools

from sqlalchemy import delete, update

from archive import db
from archive.config import Settings
from archive.events import GENESIS, NewEvent, append_events, append_many, chain_hash, premis_xml, verify_chain
from archive.models import Event


def _events(n: int, prefix: str = "e") -> list[NewEvent]:
    return [
        NewEvent(
            event_type="fixity check",
            outcome="success",
            agent="test",
            object_type="record",
            object_id=f"urn:x:{prefix}{i}",
            detail=f"检查 {i}",
            outcome_detail={"n": i, "名": "值"},
        )
        for i in range(n)
    ]


def test_chain_links_every_event(any_home: Settings) -> None:
    with db.write_session(any_home) as s:
        append_events(s, _events(3))
    with db.write_session(any_home) as s:
        append_events(s, _events(2, "f"))
    with db.read_session(any_home) as s:
        report = verify_chain(s)
        rows = s.query(Event).order_by(Event.id).all()
    # the fixture registered three archives (three events) before ours
    assert report.ok and report.checked == len(rows) == 8
    assert rows[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(rows):
        assert after.prev_hash == before.hash == chain_hash(before.prev_hash, before)


def test_append_many_extends_the_same_chain(any_home: Settings) -> None:
    with db.write_session(any_home) as s:
        append_events(s, _events(2))
        append_many(s, _events(7, "m"), batch=3)  # several INSERTs, one chain
    with db.write_session(any_home) as s:
        append_events(s, _events(1, "n"))
    with db.read_session(any_home) as s:
        report = verify_chain(s)
        rows = s.query(Event).order_by(Event.id).all()
    assert report.ok and report.checked == len(rows) == 3 + 2 + 7 + 1
    assert [r.object_id for r in rows[5:12]] == [f"urn:x:m{i}" for i in range(7)]


def test_edited_event_is_detected(any_home: Settings) -> None:
    with db.write_session(any_home) as s:
        rows = append_events(s, _events(4))
    target = rows[2].id
    with db.write_session(any_home) as s:
        s.execute(update(Event).where(Event.id == target).values(outcome="failure"))
    with db.read_session(any_home) as s:
        report = verify_chain(s)
    assert not report.ok and report.broken_at == target


def test_deleted_event_is_detected(home: Settings) -> None:
    with db.write_session(home) as s:
        rows = append_events(s, _events(4))
    with db.write_session(home) as s:
        s.execute(delete(Event).where(Event.id == rows[1].id))
    with db.read_session(home) as s:
        report = verify_chain(s)
    assert not report.ok and report.broken_at == rows[2].id


def test_truncated_tail_is_detected(home: Settings) -> None:
    with db.write_session(home) as s:
        rows = append_events(s, _events(3))
    with db.write_session(home) as s:
        s.execute(delete(Event).where(Event.id == rows[-1].id))
    with db.read_session(home) as s:
        assert not verify_chain(s).ok


def test_premis_document_names_every_event() -> None:
    xml = premis_xml(_events(2), object_id="urn:pearl-archive:GZ:档号-1").decode()
    assert xml.count("<premis:event>") == 2
    assert "urn:pearl-archive:GZ:档号-1" in xml and "fixity check" in xml
