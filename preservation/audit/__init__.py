"""Fixity audits: re-hash every stored file of every OCFL version and compare it with what was recorded.

    report = run_audit(settings, archive="GZ", replica_root=Path("/mnt/replica/ocfl"))
    report.ok, report.report_json, report.failures
    make_replica(settings, Path("/mnt/replica/ocfl"))

Per OCFL object in scope: every inventory against its sidecar, every content file of every version against
the inventory and the catalogue, no stray files or versions, and the objects the catalogue expects exist.
The audit computes **sha512 only** by default: it is the OCFL content digest and the catalogue stores it
too, so one hash checks both; ``algorithms=("sha512", "sha256")`` (the CLI's ``--deep``) also checks the
fixity block's and the catalogue's sha256; ``("sha256",)`` alone checks those and not the manifest.

The modules, in the order a run uses them: :mod:`~preservation.audit.scope` (which objects, in what order),
:mod:`~preservation.audit.plan` (read and check inventories, list and hash content),
:mod:`~preservation.audit.judge` (failures and their events), :mod:`~preservation.audit.replica` (repair from
a replica; make one), :mod:`~preservation.audit.ledger` (the resumable run directory, batched bookkeeping),
:mod:`~preservation.audit.report` (report files), :mod:`~preservation.audit.run` (the whole run).
"""

from archive.digests import hash_file
from preservation.audit.replica import ReplicaResult, make_replica
from preservation.audit.report import AuditReport, Failure, FailureKind
from preservation.audit.run import ALGORITHMS, AuditProgress, run_audit

__all__ = [
    "ALGORITHMS",
    "AuditProgress",
    "AuditReport",
    "Failure",
    "FailureKind",
    "ReplicaResult",
    "hash_file",
    "make_replica",
    "run_audit",
]
