"""Item 1-1's signatures and timestamps: every stored version's seal and token, checked by the sealing's own
verification (:func:`archive.sealing.verify_object_at`, as ``archive verify`` does; content fixity is the
file pass's, so it is not repeated here).

Per version: a seal missing, not verifying, not over that version's inventory, or by a key that is not this
node's is a failure; a token whose imprint or TSA chain does not verify is a failure. A version without a
token is "n/a" when no TSA is configured (``ARCHIVE_TSA_URL``: the node cannot have one), a warning while the
timestamp outbox still holds it, and a failure when nothing will ever fetch it.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from archive import db
from archive.checks.report import Failure
from archive.checks.subjects import RecordView
from archive.config import Settings
from archive.home import store_for
from archive.sealing.keys import trusted_key_ids
from archive.sealing.models import SealOutbox
from archive.sealing.verify import verify_object_at

NO_TOKEN = "SIG013"


@dataclass
class SealFindings:
    failures: list[Failure] = field(default_factory=list)
    warnings: list[Failure] = field(default_factory=list)
    versions: int = 0
    untimestamped: int = 0  # versions without a token and no TSA to get one (n/a)

    def note(self, tsa: bool) -> str:
        told = f"signatures and timestamps: {self.versions} versions checked"
        if self.warnings:
            told += f", {len(self.warnings)} waiting for their timestamp in the outbox"
        if not tsa and self.untimestamped:
            told += f"; timestamps n/a for {self.untimestamped} (no TSA configured, ARCHIVE_TSA_URL)"
        return told


def _waiting(settings: Settings) -> set[tuple[str, str]]:
    """(object id, version) of every version the timestamp outbox still has to timestamp."""
    with db.read_session(settings) as s:
        rows = s.execute(select(SealOutbox.items).where(SealOutbox.pending > 0)).scalars()
        return {(i["object_id"], i["version"]) for items in rows for i in items if not i.get("token")}


def check_seals(
    settings: Settings, records: Iterable[RecordView], pool: Executor | None = None
) -> SealFindings:
    """The seal and token findings of every version of ``records`` (those stored: with an object); with a
    ``pool``, the objects are verified on its threads (findings in record order all the same)."""
    found = SealFindings()
    stored = [r for r in records if r.object_id]
    if not stored:
        return found
    store = store_for(settings)
    keys = trusted_key_ids(settings)
    tsa = settings.tsa_url is not None
    waiting = _waiting(settings) if tsa else set()

    def verify(r: RecordView) -> dict[str, Any]:
        assert r.object_id is not None
        return verify_object_at(
            settings, store.object_path(r.object_id), r.object_id, fixity=False, trusted=keys
        )

    results = pool.map(verify, stored) if pool is not None else map(verify, stored)
    for r, result in zip(stored, results, strict=True):
        found.versions += len(result["versions"])
        for p in result["failures"]:
            found.failures.append(Failure(r.ref, p.get("version"), p["message_en"]))
        for p in result["warnings"]:
            if p["code"] != NO_TOKEN:
                found.warnings.append(Failure(r.ref, p.get("version"), p["message_en"]))
            elif not tsa:
                found.untimestamped += 1
            elif (r.object_id, p.get("version")) in waiting:
                found.warnings.append(Failure(r.ref, p.get("version"), p["message_en"]))
            else:
                detail = f"{p.get('version')}: no timestamp token, and none is waiting in the outbox"
                found.failures.append(Failure(r.ref, p.get("version"), detail))
    return found
