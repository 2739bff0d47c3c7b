"""The checks on the event log: history present and unbroken (2-6), who did what (4-5).

A full cycle recomputes the whole chain (:func:`archive.events.verify_chain`); a sample or the objects of a
migration check their own events' links: the event before each one in the chain holds the ``prev_hash`` it
names, so an event removed or inserted shows; an event's content altered in place shows in the full cycle
and in ``archive events verify``, which recompute every hash.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from archive import db
from archive.checks.report import Failure
from archive.checks.subjects import RecordView
from archive.config import Settings
from archive.events import GENESIS, INGESTION, verify_chain
from archive.models import Event

OUTCOMES = frozenset({"success", "failure", "warning"})


@dataclass
class EventFindings:
    by_item: dict[str, list[Failure]] = field(default_factory=dict)
    checked: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, code: str, failure: Failure) -> None:
        self.by_item.setdefault(code, []).append(failure)


_COLUMNS = (
    Event.id,
    Event.record_id,
    Event.identifier,
    Event.event_type,
    Event.agent,
    Event.outcome,
    Event.prev_hash,
)


def check_events(settings: Settings, records: Sequence[RecordView], full_chain: bool) -> EventFindings:
    out = EventFindings()
    by_id = {r.record_id: r for r in records if r.record_id is not None}
    ids = list(by_id)
    types: dict[int, set[str]] = defaultdict(set)
    agents: Counter[str] = Counter()
    with db.read_session(settings) as s:
        for i in range(0, len(ids), 500):
            mine = s.execute(
                select(*_COLUMNS).where(Event.record_id.in_(ids[i : i + 500])).order_by(Event.id)
            ).all()
            before: dict[int, str] = {}
            if not full_chain:
                wanted = [e.id - 1 for e in mine if e.id > 1]
                for j in range(0, len(wanted), 2000):
                    rows = s.execute(select(Event.id, Event.hash).where(Event.id.in_(wanted[j : j + 2000])))
                    before.update({k: h for k, h in rows})
            for e in mine:
                out.checked += 1
                ref = by_id[e.record_id].ref
                types[e.record_id].add(e.event_type)
                agents[e.agent or ""] += 1
                if not (e.agent or "").strip():
                    out.add(
                        "4-5", Failure(ref, None, f"event {e.identifier} ({e.event_type}) names no agent")
                    )
                if e.outcome not in OUTCOMES:
                    out.add("4-5", Failure(ref, None, f"event {e.identifier}: outcome {e.outcome!r}"))
                if not full_chain and (GENESIS if e.id == 1 else before.get(e.id - 1)) != e.prev_hash:
                    out.add(
                        "2-6", Failure(ref, None, f"event {e.id}: the event before it is missing or altered")
                    )
        if full_chain:
            chain = verify_chain(s)
            if not chain.ok:
                out.add(
                    "2-6",
                    Failure(None, None, f"event chain broken at event {chain.broken_at}: {chain.reason}"),
                )
            out.notes["2-6"] = f"whole chain recomputed: {chain.checked} events"
        else:
            out.notes["2-6"] = "links of the records' events checked; contents recomputed in full cycles"
    for rid, r in by_id.items():
        if INGESTION not in types.get(rid, set()):
            out.add("2-6", Failure(r.ref, None, "no ingestion event"))
    if agents:
        out.notes["4-5"] = "agents: " + ", ".join(f"{a or '(none)'} ×{n}" for a, n in agents.most_common(10))
    return out
