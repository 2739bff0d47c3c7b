"""Ingest: from a BagIt transfer to preserved, catalogued records.

    from ingest import ingest, validate_transfer
    result = ingest(Path("transfer.zip"), "GZ", settings)     # IngestResult: stored, or rejected + problems
    report = validate_transfer(Path("bag/"), settings)         # every check that needs no catalogue

The pieces, each usable alone: :func:`open_bag`/:func:`verify_bag`/:func:`validate_bag` (RFC 8493),
:func:`hash_files` (one streaming read, every algorithm, all cores), :func:`unpack` (safe zip/tar),
:func:`identify_files` (PRONOM, MIME, PDF facts), :func:`read_records` (records.csv), :class:`Problem` (coded
problems, catalogue in ``archive/codes/``) and :func:`make_bag` (write bags).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ingest.bag import Bag, ValidationReport, open_bag, validate_bag, verify_bag
    from ingest.bagwriter import make_bag
    from ingest.hashing import hash_files
    from ingest.identify import Identification, identify_files
    from ingest.metadata import RecordSpec, read_records
    from ingest.pipeline import IngestResult, ingest
    from ingest.problems import Problem
    from ingest.unpack import unpack
    from ingest.validate import TransferReport, validate_transfer

# Imported on first use (PEP 562), so that `archive` commands loading ingest's CLI start quickly.
_WHERE = {
    "Bag": "bag",
    "ValidationReport": "bag",
    "open_bag": "bag",
    "validate_bag": "bag",
    "verify_bag": "bag",
    "make_bag": "bagwriter",
    "hash_files": "hashing",
    "Identification": "identify",
    "identify_files": "identify",
    "RecordSpec": "metadata",
    "read_records": "metadata",
    "IngestResult": "pipeline",
    "ingest": "pipeline",
    "Problem": "problems",
    "unpack": "unpack",
    "TransferReport": "validate",
    "validate_transfer": "validate",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"ingest.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'ingest' has no attribute {name!r}")


__all__ = [
    "Bag",
    "Identification",
    "IngestResult",
    "Problem",
    "RecordSpec",
    "TransferReport",
    "ValidationReport",
    "hash_files",
    "identify_files",
    "ingest",
    "make_bag",
    "open_bag",
    "read_records",
    "unpack",
    "validate_bag",
    "validate_transfer",
    "verify_bag",
]
