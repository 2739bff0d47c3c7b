"""Opening review (archive.review) on SQLite and PostgreSQL: the daily re-decision with the clock moved
forward under both policies, the queue by age, by hand and by date, batch decisions with the transferring
office's opinion, and a mistaken opening corrected by a new decision with the history kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, select

from archive import db, review, services
from archive.config import Settings
from archive.errors import BadArgument, InvalidMetadata, ReviewNotPending, UnknownReview
from archive.events import ACCESS_DECISION, REVIEW, verify_chain
from archive.models import Event, Record, Review
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest
from tests.e2e.helpers import CSV_HEADER

EVE = dt.date(2026, 12, 6)  # the day before the 25 years of a record dated 2001-12-07 are up
DAY = dt.date(2026, 12, 7)
ROWS = (
    ("EDGE", "2001-12-07", "公开"),  # opens (or is queued) on DAY, not on EVE
    ("SECRET", "1990-01-01", "秘密"),  # classified: never opened by time
    ("YOUNG", "2020-05-01", "公开"),  # years to go
    ("OLD", "1990-05-01", "公开"),  # open at ingest
    ("HAND", "2010-01-01", "公开"),  # put up for review by hand
)


def store(settings: Settings, tmp_path: Path, archive: str = "GZ") -> None:
    rows = [CSV_HEADER]
    for code, date, security in ROWS:
        write_payload(tmp_path / archive, {f"data/{code}/{code}.txt": code.encode()})
        rows.append(f"{code},{archive}-{code},题名{code},测试单位,{date},永久,{security},自动\r\n")
    write_payload(tmp_path / archive, {"data/metadata/records.csv": "".join(rows).encode()})
    assert ingest(make_bag(tmp_path / archive, algorithms=("sha256",)), archive, settings).stored
    # As ingest decided it on EVE (the machine's clock may be past it): the same rule, moved back a day
    with db.write_session(settings) as s:
        record = services.get_record(s, archive, f"{archive}-EDGE")
        services.set_access(s, record, "auto", today=EVE)
        assert record.access_status == "restricted" and record.access_review_on == DAY


def status(settings: Settings, code: str, archive: str = "GZ") -> str:
    with db.read_session(settings) as s:
        return services.get_record(s, archive, f"{archive}-{code}").access_status


def events(settings: Settings, code: str, event_type: str) -> list[Event]:
    with db.read_session(settings) as s:
        return list(
            s.execute(
                select(Event)
                .where(Event.object_id == f"GZ/GZ-{code}", Event.event_type == event_type)
                .order_by(Event.id)
            ).scalars()
        )


def reviews(settings: Settings, code: str) -> list[Review]:
    with db.read_session(settings) as s:
        record = services.get_record(s, "GZ", f"GZ-{code}")
        return list(
            s.execute(select(Review).where(Review.record_id == record.id).order_by(Review.id)).scalars()
        )


def test_redecide_opens_on_the_day_by_the_ingest_rule(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    before = len(events(any_home, "EDGE", ACCESS_DECISION))

    eve = review.redecide(any_home, EVE)
    assert (eve.opened, eve.queued) == (0, 0)
    assert status(any_home, "EDGE") == "restricted"

    day = review.redecide(any_home, DAY)
    assert (day.opened, day.queued) == (1, 0)
    assert status(any_home, "EDGE") == "open"
    assert status(any_home, "SECRET") == "restricted" and status(any_home, "YOUNG") == "restricted"
    decided = events(any_home, "EDGE", ACCESS_DECISION)
    assert len(decided) == before + 1
    assert decided[-1].agent == services.AGENT  # the same rule and event as at ingest
    assert decided[-1].outcome_detail["basis"] == "law-art27-open"
    assert decided[-1].outcome_detail["requested"] == "auto"

    again = review.redecide(any_home, DAY)  # idempotent
    assert (again.opened, again.queued) == (0, 0)
    assert len(events(any_home, "EDGE", ACCESS_DECISION)) == before + 1
    assert reviews(any_home, "EDGE") == []


def test_redecide_queues_under_review_first(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    with db.write_session(any_home) as s:
        assert review.set_policy(s, "GZ", "review", actor="admin") is True
        with pytest.raises(InvalidMetadata):
            review.set_policy(s, "GZ", "sometimes", actor="admin")

    assert review.redecide(any_home, EVE).queued == 0
    day = review.redecide(any_home, DAY)
    assert (day.opened, day.queued) == (0, 1)
    assert status(any_home, "EDGE") == "restricted"  # the review decides, not the clock
    (queued,) = reviews(any_home, "EDGE")
    assert (queued.why, queued.state, queued.due_on) == ("age", "pending", DAY)
    assert events(any_home, "EDGE", REVIEW)[-1].outcome_detail["why"] == "age"
    assert review.redecide(any_home, DAY + dt.timedelta(days=30)).queued == 0  # still one review
    assert len(reviews(any_home, "EDGE")) == 1


def test_put_up_by_hand_and_decide_a_batch_with_a_joint_opinion(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    with db.write_session(any_home) as s:
        hand, created = review.put_up(s, "GZ", "GZ-HAND", actor="gz", note="申请开放", today=EVE)
        assert created and (hand.why, hand.state, hand.due_on) == ("manual", "pending", EVE)
        young, _ = review.put_up(s, "GZ", "GZ-YOUNG", actor="gz", today=EVE)
        same, created = review.put_up(s, "GZ", "GZ-HAND", actor="gz", today=EVE)
        assert not created and same.id == hand.id
        ids = hand.id, young.id
    with db.read_session(any_home) as s:
        queue = review.list_reviews(s, ["GZ"])
        assert [r.id for r in queue] == list(ids)
        assert review.list_reviews(s, ["GD"]) == []

    with db.write_session(any_home) as s:
        results = review.decide(
            s,
            [
                review.Decision(ids[0], "open", "无密级、无限制"),
                review.Decision(
                    ids[1],
                    "restricted",
                    "涉及个人隐私",
                    review_on=dt.date(2031, 12, 1),
                    office="广州市规划局",
                    office_opinion="建议暂缓开放",
                    office_opinion_on=dt.date(2026, 11, 20),
                ),
            ],
            actor="gz",
            today=EVE,
        )
    assert [r["access_status"] for r in results] == ["open", "restricted"]
    assert status(any_home, "HAND") == "open" and status(any_home, "YOUNG") == "restricted"

    decided = events(any_home, "YOUNG", ACCESS_DECISION)[-1]
    assert decided.agent == "gz" and decided.outcome_detail["agent_type"] == "person"
    assert decided.outcome_detail["review"] == ids[1]
    assert decided.outcome_detail["joint_review"]["office"] == "广州市规划局"
    opinion = events(any_home, "YOUNG", REVIEW)[-1]
    assert opinion.outcome_detail["opinion"] == "建议暂缓开放" and opinion.agent == "gz"

    first, scheduled = reviews(any_home, "YOUNG")
    assert (first.state, first.decision, first.next_review_on) == (
        "decided",
        "restricted",
        dt.date(2031, 12, 1),
    )
    assert (first.office, first.office_opinion_on) == ("广州市规划局", dt.date(2026, 11, 20))
    assert (scheduled.state, scheduled.why, scheduled.due_on) == (
        "scheduled",
        "scheduled",
        dt.date(2031, 12, 1),
    )

    # the next review date brings it back into the queue, on that day and not before
    assert review.redecide(any_home, dt.date(2031, 11, 30)).scheduled_due == 0
    assert review.redecide(any_home, dt.date(2031, 12, 1)).scheduled_due == 1
    assert reviews(any_home, "YOUNG")[-1].state == "pending"
    assert status(any_home, "YOUNG") == "restricted"  # queued again, never closed or opened by the clock


def test_batch_is_all_or_nothing_and_a_decided_review_is_refused(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    with db.write_session(any_home) as s:
        hand, _ = review.put_up(s, "GZ", "GZ-HAND", actor="gz")
        young, _ = review.put_up(s, "GZ", "GZ-YOUNG", actor="gz")
        ids = hand.id, young.id
    with db.write_session(any_home) as s:
        review.decide(s, [review.Decision(ids[0], "open", "ok")], actor="gz")
    with pytest.raises(ReviewNotPending), db.write_session(any_home) as s:
        review.decide(
            s, [review.Decision(ids[1], "open", "ok"), review.Decision(ids[0], "open", "again")], actor="gz"
        )
    assert status(any_home, "YOUNG") == "restricted"  # the batch left nothing behind
    with pytest.raises(UnknownReview), db.write_session(any_home) as s:  # outside the scope: as missing
        review.decide(s, [review.Decision(ids[1], "open", "ok")], actor="gd", may_act=lambda a: a == "GD")
    for bad in (
        review.Decision(ids[1], "open", "  "),
        review.Decision(ids[1], "auto", "x"),
        review.Decision(ids[1], "restricted", "x", review_on=dt.date(2000, 1, 1)),
    ):
        with pytest.raises((BadArgument, InvalidMetadata)), db.write_session(any_home) as s:
            review.decide(s, [bad], actor="gz")


def test_a_mistaken_opening_is_corrected_by_a_new_decision(any_home: Settings, tmp_path: Path) -> None:
    store(any_home, tmp_path)
    with db.write_session(any_home) as s:
        hand, _ = review.put_up(s, "GZ", "GZ-HAND", actor="gz")
        review.decide(s, [review.Decision(hand.id, "open", "误开放")], actor="gz")
    assert status(any_home, "HAND") == "open"
    with db.write_session(any_home) as s:
        review.decide_record(
            s, "GZ", "GZ-HAND", "restricted", reason="更正：涉及隐私", review_on=None, actor="gz"
        )
    assert status(any_home, "HAND") == "restricted"
    trail = [
        (e.outcome_detail["before"], e.outcome_detail["status"])
        for e in events(any_home, "HAND", ACCESS_DECISION)
    ]
    assert trail[-2:] == [("restricted", "open"), ("open", "restricted")]  # both decisions kept
    assert [r.state for r in reviews(any_home, "HAND")] == ["decided"]
    with db.read_session(any_home) as s:
        assert verify_chain(s).ok
        assert s.execute(select(func.count()).select_from(Record)).scalar_one() == len(ROWS)


def test_cli_twins(home: Settings, tmp_path: Path) -> None:
    """The CLI with the clock moved by --today: policy, redecide, queue, put up, decide, access set."""
    import json

    from tests.e2e.helpers import archive_cmd

    store(home, tmp_path)
    assert archive_cmd("archives", "policy", "GZ", "--on-age", "sometimes").returncode == 2
    assert archive_cmd("archives", "policy", "GZ", "--on-age", "review").returncode == 0
    eve = archive_cmd("access", "redecide", "--today", EVE.isoformat(), "--json")
    assert eve.returncode == 0 and json.loads(eve.stdout)["queued"] == 0
    day = archive_cmd("access", "redecide", "--today", DAY.isoformat(), "--json")
    assert json.loads(day.stdout)["queued"] == 1
    assert archive_cmd("access", "redecide", "--today", "2026-13-01").returncode == 2

    put = archive_cmd("access", "review", "GZ/GZ-HAND", "--note", "申请开放", "--json")
    assert put.returncode == 0 and json.loads(put.stdout)["created"] is True
    queue = json.loads(archive_cmd("access", "queue", "--archive", "GZ", "--json").stdout)
    assert sorted((q["record"], q["why"]) for q in queue) == [("GZ/GZ-EDGE", "age"), ("GZ/GZ-HAND", "manual")]
    ids = [str(q["id"]) for q in queue]
    decided = archive_cmd("access", "decide", *ids, "--status", "open", "--reason", "批量开放", "--json")
    assert decided.returncode == 0, decided.stderr
    assert [d["access_status"] for d in json.loads(decided.stdout)] == ["open", "open"]
    assert (
        archive_cmd("access", "decide", ids[0], "--status", "open", "--reason", "x").returncode == 1
    )  # REV003

    again = archive_cmd(
        "access", "set", "GZ/GZ-HAND", "restricted", "--reason", "更正", "--review-on", "2031-01-01", "--json"
    )
    assert again.returncode == 0 and json.loads(again.stdout)["access_status"] == "restricted"
    (scheduled,) = [r for r in reviews(home, "HAND") if r.state == "scheduled"]
    assert scheduled.due_on == dt.date(2031, 1, 1)
    edit = archive_cmd("records", "edit", "GZ/GZ-OLD", "--title", "新题名", "--json")
    assert edit.returncode == 0 and json.loads(edit.stdout)["version"] == "v2"
    history = json.loads(archive_cmd("records", "history", "GZ/GZ-OLD", "--json").stdout)
    assert [v["version"] for v in history["versions"]] == ["v2", "v1"]
    assert archive_cmd("records", "edit", "GZ/GZ-OLD", "--date", "1990-02-30").returncode == 2
