"""The daily re-decision on the Celery beat: scheduled once a day, and its task opens the ``auto`` records
whose 25 years came (by the real clock) and indexes them at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from archive import db, services
from archive.config import Settings
from search import SearchQuery, get_backend
from tests.archive.test_review import EVE, store


def test_daily_on_the_beat(home: Settings) -> None:
    from preservation import tasks
    from preservation.celery_app import REDECIDE_TASK, make_app

    entry = make_app(home).conf.beat_schedule["redecide-access"]
    assert entry["task"] == REDECIDE_TASK
    assert entry["schedule"].hour == {0} and entry["schedule"].minute == {5}
    assert tasks.app.tasks[REDECIDE_TASK].name == tasks.redecide_access.name == REDECIDE_TASK


def test_the_task_opens_and_indexes(home: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from preservation import tasks

    store(home, tmp_path)  # GZ-EDGE, dated 2001-12-07, closed as on 2026-12-06
    monkeypatch.setattr(tasks.PreservationTask, "_settings", home)
    result = tasks.redecide_access()
    assert result["opened"] >= 1 and result["indexed"] >= 1, result
    with db.read_session(home) as s:
        assert services.get_record(s, "GZ", "GZ-EDGE").access_status == "open"
    hits = get_backend(home).search(SearchQuery(q="题名EDGE"))
    assert "GZ-EDGE" in {h.archival_code for h in hits.hits}
    assert tasks.redecide_access()["opened"] == 0  # the same day again: nothing
    assert EVE.isoformat() < result["today"]
