"""PREMIS events of staff actions: the agent is the person (``agent_type`` ``person``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from archive.events import NewEvent, append_events

CREATION = "creation"
MODIFICATION = "modification"
DEACTIVATION = "deactivation"


def person_event(
    session: Session,
    *,
    event_type: str,
    actor: str,
    object_type: str,
    object_id: str,
    detail: str,
    outcome_detail: dict[str, Any] | None = None,
) -> None:
    append_events(
        session,
        [
            NewEvent(
                event_type=event_type,
                outcome="success",
                agent=actor,
                object_type=object_type,
                object_id=object_id,
                detail=detail,
                outcome_detail={"agent_type": "person", **(outcome_detail or {})},
            )
        ],
    )
