"""One pass of the sealing work that happens after commits: what ``archive seals sync`` and the beat run."""

from __future__ import annotations

import fcntl
from typing import Any

from archive.config import Settings
from archive.sealing.anchors import anchor_chain, timestamp_anchors
from archive.sealing.errors import TsaRejected, TsaUnavailable
from archive.sealing.evidence import timestamp_renewals
from archive.sealing.keys import sealing_dir
from archive.sealing.outbox import backfill, sync


def sync_all(settings: Settings, *, backfill_versions: bool = False) -> dict[str, Any]:
    """Anchor the event chain, drain the timestamp outbox, fetch the tokens anchors and renewals lack. One
    pass at a time per node (a lock under ``$ARCHIVE_HOME/sealing/``), so no event is recorded twice. With
    ``backfill_versions``, first seal every stored version that has no seal (:func:`outbox.backfill`)."""
    folder = sealing_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sync.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        backfilled = backfill(settings) if backfill_versions else 0
        report = {**sync(settings).as_dict(), "backfilled": backfilled}
        anchor_chain(settings)  # after the events the pass recorded
        report["anchors_timestamped"] = 0
        report["renewals_timestamped"] = 0
        if report["error"] is None:
            try:
                report["anchors_timestamped"] = timestamp_anchors(settings)
                report["renewals_timestamped"] = timestamp_renewals(settings)
            except (TsaUnavailable, TsaRejected) as exc:
                report["error"] = exc.as_dict()
    return report
