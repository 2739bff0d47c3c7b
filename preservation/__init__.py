"""Preservation: records stay readable (format migration) and provably unchanged (fixity audits).

    policy = load_policy(settings.policy_file)          # PRONOM id → actions (TOML, overridable per node)
    migrate(settings, file_id, "pdfa")                   # one action on one file → a new OCFL version
    dispatch(settings); list_jobs(settings)              # outbox → Celery jobs; what is queued/failed/done
    run_audit(settings, archive="GZ")                    # re-hash every stored file; report + events

The Celery app is :mod:`preservation.celery_app`, its tasks :mod:`preservation.tasks`; the tools run through
:mod:`preservation.tools` (private directory, timeout, output limit) and every output is checked by
:mod:`preservation.checks` before anything is committed. Modules are imported on first use, so the ``archive``
command starts quickly.
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from preservation.audit import AuditReport, make_replica, run_audit
    from preservation.jobs import Job, JobState, dispatch, list_jobs, queue_record
    from preservation.migrate import MigrationOutcome, migrate
    from preservation.policy import Policy, load_policy

_WHERE = {
    "AuditReport": "audit", "make_replica": "audit", "run_audit": "audit",
    "Job": "jobs", "JobState": "jobs", "dispatch": "jobs", "list_jobs": "jobs", "queue_record": "jobs",
    "MigrationOutcome": "migrate", "migrate": "migrate", "Policy": "policy", "load_policy": "policy",
}  # fmt: skip

__all__ = [
    "AuditReport",
    "Job",
    "JobState",
    "MigrationOutcome",
    "Policy",
    "dispatch",
    "list_jobs",
    "load_policy",
    "make_replica",
    "migrate",
    "queue_record",
    "run_audit",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"preservation.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'preservation' has no attribute {name!r}")
