"""Anchors of the event log's hash chain, kept outside the database it protects.

The chain (:mod:`archive.events`) lives in the catalogue: whoever can write there can delete the newest
events and rewrite ``chain_head``, or rewrite an old event and every hash after it, and the chain still
verifies. So after every ingest and on the beat's schedule the node signs the chain head (the last event's
id and hash) and writes it into the storage root, which is replicated with the objects::

    <root>/extensions/pearl-event-anchors/000000001234.json   {"statement": {...}, "signature": {...}}
    <root>/extensions/pearl-event-anchors/000000001234.tsr    RFC 3161 token over the same statement

``archive events verify`` then checks the newest anchor: its signature (a key of this node's), and that the
event it names is still there with the hash it had. Truncation (the event is gone) and rewriting before the
anchor (its hash changed) are both caught.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from archive import db
from archive.codes import render
from archive.config import Settings
from archive.models import ChainHead, Event
from archive.sealing.keys import key_id_of, signer_for, trusted_key_ids, verify_signature
from archive.sealing.seals import now_iso, signature_block
from archive.sealing.tsa import request_token
from archive.storage import _fs

EXTENSION = "pearl-event-anchors"


def anchors_dir(settings: Settings) -> Path:
    return settings.ocfl_root / "extensions" / EXTENSION


def statement_bytes(statement: dict[str, Any]) -> bytes:
    return json.dumps(statement, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def anchor_chain(settings: Settings) -> Path | None:
    """Sign the chain head now and store the anchor (None while the log is empty). Idempotent per head."""
    with db.read_session(settings) as s:
        head = s.get(ChainHead, 1)
        if head is None or not head.last_event_id:
            return None
        sequence, last_hash = head.last_event_id, head.last_hash
    folder = anchors_dir(settings)
    path = folder / f"{sequence:012d}.json"
    if path.exists():
        return path
    statement = {"extension": EXTENSION, "sequence": sequence, "hash": last_hash, "anchoredAt": now_iso()}
    digest = hashlib.sha512(statement_bytes(statement)).digest()
    body = {"statement": statement, "signature": signature_block(signer_for(settings), digest)}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = settings.staging_dir / f".anchor-{secrets.token_hex(6)}"
    settings.staging_dir.mkdir(parents=True, exist_ok=True)
    _fs.write_durable(tmp, (json.dumps(body, indent=1) + "\n").encode())
    try:
        os.link(tmp, path)  # a concurrent anchor of the same head wins; both say the same
        _fs.fsync_dir(folder)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path


def timestamp_anchors(settings: Settings, *, limit: int = 50) -> int:
    """Fetch tokens for anchors that have none, newest first; returns how many were stored."""
    folder = anchors_dir(settings)
    if not settings.tsa_url or not folder.is_dir():
        return 0
    done = 0
    for path in sorted(folder.glob("*.json"), reverse=True)[:limit]:
        token_path = path.with_suffix(".tsr")
        if token_path.exists():
            continue
        statement = json.loads(path.read_bytes())["statement"]
        token = request_token(settings, statement_bytes(statement))
        _fs.replace_atomically(token_path, token, settings.staging_dir)
        done += 1
    return done


def newest_anchor(settings: Settings) -> Path | None:
    folder = anchors_dir(settings)
    found = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return found[-1] if found else None


def _problem(code: str, variant: str | None = None, **params: Any) -> dict[str, Any]:
    zh, en = render(code, params, variant)
    return {"code": code, "message_zh": zh, "message_en": en, **{k: str(v) for k, v in params.items()}}


def check_anchor(settings: Settings, session: Session) -> dict[str, Any]:
    """The chain against the newest anchor: ``{"anchor": name|None, "ok": bool, "problem": {...}|None}``."""
    path = newest_anchor(settings)
    if path is None:
        return {"anchor": None, "ok": True, "problem": None}
    name = path.name
    try:
        body = json.loads(path.read_bytes())
        statement, sig = body["statement"], body["signature"]
        digest = hashlib.sha512(statement_bytes(statement)).digest()
        public = base64.b64decode(sig["publicKey"])
        good = verify_signature(sig["algorithm"], public, digest, base64.b64decode(sig["value"]))
        sequence, expected = int(statement["sequence"]), str(statement["hash"])
        key_id = key_id_of(sig["algorithm"], public)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"anchor": name, "ok": False, "problem": _problem("SIG020", anchor=name, reason=exc)}
    if not good:
        return {
            "anchor": name,
            "ok": False,
            "problem": _problem("SIG020", anchor=name, reason="bad signature"),
        }
    if key_id not in trusted_key_ids(settings):
        reason = f"signed by {key_id}, not a key of this node"
        return {"anchor": name, "ok": False, "problem": _problem("SIG020", anchor=name, reason=reason)}
    event = session.get(Event, sequence)
    if event is None:
        head = session.get(ChainHead, 1)
        last = head.last_event_id if head else 0
        problem = _problem("SIG021", "missing", anchor=name, sequence=sequence, last=last)
        return {"anchor": name, "ok": False, "problem": problem}
    if event.hash != expected:
        problem = _problem("SIG021", anchor=name, sequence=sequence, expected=expected, actual=event.hash)
        return {"anchor": name, "ok": False, "problem": problem}
    return {"anchor": name, "ok": True, "problem": None, "sequence": sequence}
