"""Editing a record's descriptive metadata (title, creator, description, keywords, date) without changing
anything in place.

Each save (:func:`edit_metadata`) writes a NEW OCFL version of the record's object whose only change is
``metadata/record.json`` (the head's JSON with the edited fields, and who edited what), then, in one
catalogue transaction, updates the record's row, appends a PREMIS ``metadata modification`` event (agent:
the person; outcome detail: every changed field before and after, and the version) and queues the record
for re-indexing. Earlier versions keep the earlier descriptions, so :func:`metadata_history` lists every
version of the object (who, when, the message) with what each edit changed.

Choices: the OCFL version is committed first, then the catalogue; the object carries the truth (the
catalogue can be rebuilt from storage), so a catalogue transaction that fails after the commit leaves a
version the next edit builds on. Two edits of one record at once: the second one's commit finds the head
moved (``VersionConflict``) and is staged again on the new head, up to three times, then
:class:`~archive.errors.MetadataBusy`. A date edit of an ``auto`` record that is still restricted moves the
day the 25-year rule reaches it (the daily re-decision then opens it); it never closes an open record.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from archive import db
from archive.access import add_years
from archive.config import Settings
from archive.errors import InvalidMetadata, MetadataBusy
from archive.events import METADATA_MODIFICATION, NewEvent, append_events
from archive.home import store_for
from archive.models import Event, Outbox, Record, utcnow
from archive.services import get_record, note_public_change
from archive.storage import VersionConflict

RECORD_JSON = "metadata/record.json"
FIELDS = ("title", "creator", "description", "keywords", "date")
LIMITS = {"title": 1000, "creator": 500, "description": 20000, "date": 32}
MAX_KEYWORDS = 50
MAX_KEYWORD = 100
COMMIT_ATTEMPTS = 3
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$", re.ASCII)
_KEYWORD_SPLIT = re.compile(r"[；;,，]")


def _control(text: str) -> bool:
    return any(ord(c) < 32 or c == "\x7f" for c in text)


def _one_date(text: str) -> tuple[dt.date, dt.date] | None:
    match = _DATE.match(text)
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    assert year is not None
    try:
        if month is None:
            return dt.date(year, 1, 1), dt.date(year, 12, 31)
        if day is None:
            first = dt.date(year, month, 1)
            nxt = dt.date(year + (month == 12), month % 12 + 1, 1)
            return first, nxt - dt.timedelta(days=1)
        exact = dt.date(year, month, day)
    except ValueError:
        return None
    return exact, exact


def parse_date(text: str) -> tuple[dt.date, dt.date]:
    """First and last day of ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` or ``start~end``; InvalidMetadata else."""
    parts = [p.strip() for p in text.split("~")]
    spans = [_one_date(p) for p in parts]
    if len(parts) > 2 or any(s is None for s in spans):
        raise InvalidMetadata(variant="date", value=text)
    first, last = spans[0], spans[-1]
    assert first is not None and last is not None
    if first[0] > last[1]:
        raise InvalidMetadata(variant="date", value=text)
    return first[0], last[1]


def clean_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """The edited fields, trimmed and checked: keywords as a list, empty optional fields as None."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if name not in FIELDS:
            raise InvalidMetadata(variant="unknown_field", field=name)
        if name == "keywords":
            words = value if isinstance(value, list) else _KEYWORD_SPLIT.split(str(value or ""))
            words = [str(w).strip() for w in words if str(w).strip()]
            if any(_control(w) for w in words):
                raise InvalidMetadata(variant="control", field=name)
            if len(words) > MAX_KEYWORDS or any(len(w) > MAX_KEYWORD for w in words):
                raise InvalidMetadata(variant="keywords", limit=MAX_KEYWORDS)
            out[name] = words
            continue
        text = str(value).strip() if value is not None else ""
        if _control(text.replace("\n", "").replace("\r", "").replace("\t", "")):
            raise InvalidMetadata(variant="control", field=name)
        if name == "title" and not text:
            raise InvalidMetadata(variant="empty", field=name)
        if len(text) > LIMITS[name]:
            raise InvalidMetadata(variant="too_long", field=name, limit=LIMITS[name])
        if name == "date" and text:
            parse_date(text)
        out[name] = text or None
    return out


def current_fields(record: Record) -> dict[str, Any]:
    """The editable fields as the catalogue holds them (keywords as a list), as :func:`clean_changes` gives."""
    return {
        "title": record.title,
        "creator": record.creator,
        "description": record.description,
        "keywords": [w for w in _KEYWORD_SPLIT.split(record.keywords or "") if w.strip()],
        "date": record.date_text,
    }


def _head_json(settings: Settings, object_id: str) -> dict[str, Any]:
    store = store_for(settings)
    inventory = store.read_inventory(object_id)
    state = inventory["versions"][inventory["head"]]["state"]
    for digest, paths in state.items():
        if RECORD_JSON in paths:
            body: dict[str, Any] = json.loads(
                (store.object_path(object_id) / inventory["manifest"][digest][0]).read_bytes()
            )
            return body
    return {}


def _commit_version(
    settings: Settings, object_id: str, ref: str, changed: dict[str, dict[str, Any]], actor: str
) -> str:
    store = store_for(settings)
    for _ in range(COMMIT_ATTEMPTS):
        body = _head_json(settings, object_id)
        described = dict(body.get("record") or {})
        for name, values in changed.items():
            described[name] = values["after"]
            if name == "date":
                span = parse_date(values["after"]) if values["after"] else None
                described["date_start"] = span[0].isoformat() if span else None
                described["date_end"] = span[1].isoformat() if span else None
        body["record"] = described
        body["edited"] = {"by": actor, "at": utcnow().isoformat(), "fields": sorted(changed)}
        data = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str).encode()
        builder = store.begin_version(object_id)
        try:
            if RECORD_JSON in builder.state:
                builder.remove(RECORD_JSON)
            builder.add_bytes(RECORD_JSON, data)
            return store.commit(
                builder,
                message=f"descriptive metadata of {ref} edited: {', '.join(sorted(changed))}",
                user_name=actor,
            )
        except VersionConflict:
            continue
        finally:
            store.abort(builder)
    raise MetadataBusy(record=ref)


def _version_number(version: str) -> int:
    return int(version.lstrip("v") or 0)


def edit_metadata(
    settings: Settings, archive: str, code: str, changes: Mapping[str, Any], *, actor: str
) -> dict[str, Any]:
    """Save an edit of a record's descriptive metadata as a new OCFL version and an event; see the module
    docstring. Returns the record, the new version and each changed field before and after."""
    wanted = clean_changes(changes)
    with db.read_session(settings) as s:
        record = get_record(s, archive, code)
        ref, object_id = f"{record.archive.code}/{record.archival_code}", record.ocfl_object_id
        before = current_fields(record)
    changed = {
        k: {"before": before[k], "after": v} for k, v in wanted.items() if (before[k] or None) != (v or None)
    }
    if not changed:
        raise InvalidMetadata(variant="no_change")
    version = _commit_version(settings, object_id, ref, changed, actor)
    with db.write_session(settings) as s:
        record = get_record(s, archive, code)
        for name, values in changed.items():
            after = values["after"]
            if name == "keywords":
                record.keywords = "；".join(after) or None
            elif name == "date":
                record.date_text = after
                span = parse_date(after) if after else None
                record.date_start, record.date_end = span if span else (None, None)
                if record.access_requested == "auto" and record.access_status == "restricted":
                    end = record.date_end
                    record.access_review_on = add_years(end, settings.open_after_years) if end else None
            else:
                setattr(record, name, after)
        if _version_number(version) > _version_number(record.ocfl_head):
            record.ocfl_head = version
        note_public_change(record, False)  # an open record's public description changed
        s.add(
            Outbox(
                topic="index",
                key=f"index:{record.id}:metadata:{version}",
                record_id=record.id,
                payload={"reason": "metadata edit", "doc_id": ref},
            )
        )
        append_events(
            s,
            [
                NewEvent(
                    event_type=METADATA_MODIFICATION,
                    outcome="success",
                    agent=actor,
                    object_type="record",
                    object_id=ref,
                    record_id=record.id,
                    detail=f"descriptive metadata edited ({', '.join(sorted(changed))}); OCFL {version}",
                    outcome_detail={"version": version, "changes": changed, "agent_type": "person"},
                )
            ],
        )
        record_id = record.id
    return {"record": ref, "record_id": record_id, "version": version, "changes": changed}


def metadata_history(settings: Settings, archive: str, code: str) -> dict[str, Any]:
    """Every OCFL version of the record's object (who, when, the message), newest first, each metadata edit
    with the fields it changed (before and after)."""
    with db.read_session(settings) as s:
        record = get_record(s, archive, code)
        ref, object_id = f"{record.archive.code}/{record.archival_code}", record.ocfl_object_id
        edits = {
            (e.outcome_detail or {}).get("version"): e
            for e in s.execute(
                select(Event)
                .where(Event.record_id == record.id, Event.event_type == METADATA_MODIFICATION)
                .order_by(Event.id)
            ).scalars()
        }
        inventory = store_for(settings).read_inventory(object_id)
        versions = []
        for name in sorted(inventory["versions"], key=_version_number, reverse=True):
            v = inventory["versions"][name]
            event = edits.get(name)
            versions.append(
                {
                    "version": name,
                    "created": v.get("created"),
                    "who": (v.get("user") or {}).get("name"),
                    "message": v.get("message"),
                    "changes": (event.outcome_detail or {}).get("changes") if event else None,
                    "event": event.identifier if event else None,
                }
            )
    return {"record": ref, "object_id": object_id, "head": inventory["head"], "versions": versions}
