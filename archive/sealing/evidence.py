"""Evidence renewal (RFC 4998 in spirit): one timestamp over a Merkle tree of every version's evidence.

A signature or an RFC 3161 token is only as good as its algorithms and certificates. Before they weaken or
expire, :func:`renew_evidence` (yearly on the beat; ``archive evidence renew``) builds a hash tree whose leaves
are, per OCFL version, the object id, the version, the sha512 of its ``inventory.json`` and of its seal and
token files, plus the previous renewal's root and token; it signs the root and has it timestamped. The whole
tree is kept in the storage root (replicated with it)::

    <root>/extensions/pearl-evidence-renewal/20270101T000000Z/leaves.json  [[object, version, inv, seal, token], …]
    <root>/extensions/pearl-evidence-renewal/20270101T000000Z/root.json    {"statement": {...}, "signature": {...}}
    <root>/extensions/pearl-evidence-renewal/20270101T000000Z/root.tsr     RFC 3161 token over the statement

so any inventory's membership is provable (:func:`merkle_proof`, :func:`verify_proof`) with sha512 alone.
Leaf hash: ``sha512(0x00 || "\\n".join(leaf))``; inner node: ``sha512(0x01 || left || right)``; an odd node
at the end of a level is carried up unchanged.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archive.config import Settings
from archive.home import store_for
from archive.sealing.anchors import statement_bytes
from archive.sealing.errors import TsaRejected, TsaUnavailable
from archive.sealing.keys import signer_for
from archive.sealing.seals import seal_relpath, signature_block, token_relpath
from archive.sealing.tsa import request_token
from archive.storage import _fs
from archive.storage.inventory import INVENTORY, version_number

EXTENSION = "pearl-evidence-renewal"


def renewals_dir(settings: Settings) -> Path:
    return settings.ocfl_root / "extensions" / EXTENSION


def _file_digest(path: Path) -> str:
    try:
        return hashlib.sha512(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return ""


def leaf_hash(leaf: list[str]) -> bytes:
    return hashlib.sha512(b"\x00" + "\n".join(leaf).encode()).digest()


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha512(b"\x01" + left + right).digest()


def merkle_root(hashes: list[bytes]) -> bytes:
    level = list(hashes) or [hashlib.sha512(b"").digest()]
    while len(level) > 1:
        level = [
            _parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
    return level[0]


def merkle_proof(hashes: list[bytes], index: int) -> list[tuple[str, str]]:
    """The sibling path of leaf ``index``: ``[("L"|"R", hex), …]`` from the leaf up."""
    proof: list[tuple[str, str]] = []
    level = list(hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            proof.append(("L" if sibling < index else "R", level[sibling].hex()))
        level = [
            _parent(level[i], level[i + 1]) if i + 1 < len(level) else level[i]
            for i in range(0, len(level), 2)
        ]
        index //= 2
    return proof


def verify_proof(leaf: bytes, proof: list[tuple[str, str]], root: bytes) -> bool:
    node = leaf
    for side, value in proof:
        node = _parent(bytes.fromhex(value), node) if side == "L" else _parent(node, bytes.fromhex(value))
    return node == root


def collect_leaves(settings: Settings) -> list[list[str]]:
    store = store_for(settings)
    leaves: list[list[str]] = []
    for object_id in store.iter_objects():
        obj = store.object_path(object_id)
        inventory = json.loads((obj / INVENTORY).read_bytes())
        for version in sorted(inventory["versions"], key=lambda v: version_number(v) or 0):
            leaves.append(
                [
                    object_id,
                    version,
                    _file_digest(obj / version / INVENTORY),
                    _file_digest(obj / seal_relpath(version)),
                    _file_digest(obj / token_relpath(version)),
                ]
            )
    leaves.sort()
    previous = latest_renewal(settings)
    if previous is not None:
        leaves.append(
            [
                f"{EXTENSION}/{previous.name}",
                "root",
                _file_digest(previous / "root.json"),
                _file_digest(previous / "leaves.json"),
                _file_digest(previous / "root.tsr"),
            ]
        )
    return leaves


def latest_renewal(settings: Settings) -> Path | None:
    folder = renewals_dir(settings)
    found = sorted(p for p in folder.iterdir() if (p / "root.json").is_file()) if folder.is_dir() else []
    return found[-1] if found else None


def renew_evidence(settings: Settings) -> dict[str, Any]:
    """Build, sign and timestamp a new renewal over every version's evidence; returns its summary. A TSA that
    cannot be reached leaves the renewal signed, its token to the next ``archive seals sync``."""
    leaves = collect_leaves(settings)
    root = merkle_root([leaf_hash(leaf) for leaf in leaves])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    statement = {
        "extension": EXTENSION,
        "hashAlgorithm": "sha512",
        "root": root.hex(),
        "leaves": len(leaves),
        "createdAt": stamp,
    }
    body = {
        "statement": statement,
        "signature": signature_block(
            signer_for(settings), hashlib.sha512(statement_bytes(statement)).digest()
        ),
    }
    staging = settings.staging_dir / f".renewal-{stamp}"
    staging.mkdir(parents=True)
    _fs.write_durable(staging / "leaves.json", (json.dumps(leaves, ensure_ascii=False) + "\n").encode())
    _fs.write_durable(staging / "root.json", (json.dumps(body, indent=1) + "\n").encode())
    token_error = None
    if settings.tsa_url:
        try:
            _fs.write_durable(staging / "root.tsr", request_token(settings, statement_bytes(statement)))
        except (TsaUnavailable, TsaRejected) as exc:
            token_error = exc.as_dict()
    _fs.fsync_dir(staging)
    folder = renewals_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    staging.rename(folder / stamp)
    _fs.fsync_dir(folder)
    return {
        "renewal": stamp,
        "path": str(folder / stamp),
        "root": root.hex(),
        "leaves": len(leaves),
        "timestamped": (folder / stamp / "root.tsr").exists(),
        "token_error": token_error,
    }


def timestamp_renewals(settings: Settings) -> int:
    """Fetch the token of renewals made while the TSA was down; returns how many were stored."""
    folder = renewals_dir(settings)
    if not settings.tsa_url or not folder.is_dir():
        return 0
    done = 0
    for renewal in sorted(folder.iterdir()):
        if (renewal / "root.json").is_file() and not (renewal / "root.tsr").exists():
            statement = json.loads((renewal / "root.json").read_bytes())["statement"]
            _fs.replace_atomically(
                renewal / "root.tsr",
                request_token(settings, statement_bytes(statement)),
                settings.staging_dir,
            )
            done += 1
    return done
