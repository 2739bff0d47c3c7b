"""The peer registry (table ``peers``): adding a node by URL and key fingerprint, listing, removing, key
lookups for signature checks, nonces, and the key-rotation announcement.

Trust is explicit and mutual: a node answers signed calls only from peers it has added, and asks only those
in a regional query. A running portal reads the table on each request, so ``archive peers add/remove``
takes effect without a restart.

``archive peers add URL --fingerprint FP`` fetches ``GET URL/federation/v1/node`` (the one unsigned
federation endpoint), computes the fingerprint of the key it carries, and stores nothing unless it equals
``FP`` (compared without the ``SHA256:`` prefix and base64 padding). Adding a node that is already a peer
updates its name, URL, archives and key — the way to accept a rotated key a peer could not announce.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Engine, bindparam, create_engine, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from archive import db
from archive.config import Settings
from archive.federation.errors import (
    BadDescriptor,
    FingerprintMismatch,
    PeerIsSelf,
    PeerUnreachable,
    UnknownPeer,
)
from archive.federation.identity import (
    NodeIdentity,
    fingerprint_of,
    has_identity,
    load_identity,
    normalise_url,
    public_key_from_b64,
)
from archive.federation.models import Peer, SeenNonce
from archive.federation.signing import SignatureAuth
from archive.models import utcnow

log = logging.getLogger(__name__)

DESCRIPTOR_PATH = "/federation/v1/node"
ANNOUNCE_PATH = "/federation/v1/announce"
FETCH_TIMEOUT = 10.0


def same_fingerprint(a: str, b: str) -> bool:
    def norm(v: str) -> str:
        v = v.strip()
        return (v[7:] if v.upper().startswith("SHA256:") else v).rstrip("=")

    return norm(a) == norm(b) and bool(norm(a))


def check_descriptor(url: str, data: Any) -> dict[str, Any]:
    """A peer's descriptor with its fingerprint recomputed from its key (never taken on its word)."""
    if not isinstance(data, dict):
        raise BadDescriptor(url, "not a JSON object")
    for name in ("node_id", "name", "url", "public_key"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise BadDescriptor(url, f"field {name!r} missing")
    if len(data["node_id"]) > 64:
        raise BadDescriptor(url, "node_id too long")
    try:
        public_key_from_b64(data["public_key"])
    except ValueError as exc:
        raise BadDescriptor(url, f"public_key: {exc}") from None
    archives = data.get("archives") or []
    if not isinstance(archives, list):
        raise BadDescriptor(url, "archives is not a list")
    return {
        "node_id": data["node_id"],
        "name": data["name"][:255],
        "url": data["url"],
        "public_key": data["public_key"],
        "fingerprint": fingerprint_of(base64.b64decode(data["public_key"])),
        "archives": [a for a in archives if isinstance(a, dict)],
    }


def fetch_descriptor(url: str, timeout: float = FETCH_TIMEOUT) -> dict[str, Any]:
    base = normalise_url(url)
    try:
        response = httpx.get(base + DESCRIPTOR_PATH, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise PeerUnreachable(base, type(exc).__name__ + (f": {exc}" if str(exc) else "")) from None
    if response.status_code != 200:
        raise PeerUnreachable(base, f"HTTP {response.status_code} from {DESCRIPTOR_PATH}")
    try:
        data = response.json()
    except ValueError:
        raise BadDescriptor(base, "not JSON") from None
    return check_descriptor(base, data)


def add_peer(settings: Settings, url: str, fingerprint: str) -> dict[str, Any]:
    """Fetch the node at ``url``, check its key against ``fingerprint``, and store it as a peer."""
    base = normalise_url(url)
    desc = fetch_descriptor(base)
    if not same_fingerprint(fingerprint, desc["fingerprint"]):
        raise FingerprintMismatch(base, fingerprint, desc["fingerprint"])
    if has_identity(settings) and load_identity(settings).node_id == desc["node_id"]:
        raise PeerIsSelf(base)
    with db.write_session(settings) as s:
        peer = s.execute(select(Peer).where(Peer.node_id == desc["node_id"])).scalar_one_or_none()
        if peer is None:
            peer = Peer(node_id=desc["node_id"], archives=[])
            s.add(peer)
        elif peer.public_key != desc["public_key"]:
            peer.key_changed_at = utcnow()
        peer.name, peer.url = desc["name"], base
        peer.public_key, peer.fingerprint = desc["public_key"], desc["fingerprint"]
        peer.archives = desc["archives"]
        peer.last_contact_at, peer.last_status, peer.last_error = utcnow(), "ok", None
        s.flush()
        return peer_summary(peer)


def list_peers(session: Session) -> Sequence[Peer]:
    return session.execute(select(Peer).order_by(Peer.name, Peer.node_id)).scalars().all()


def get_peer(session: Session, node_id: str) -> Peer:
    peer = session.execute(select(Peer).where(Peer.node_id == node_id)).scalar_one_or_none()
    if peer is None:
        raise UnknownPeer(node_id)
    return peer


def remove_peer(settings: Settings, node_id: str) -> None:
    with db.write_session(settings) as s:
        if not s.execute(delete(Peer).where(Peer.node_id == node_id)).rowcount:  # type: ignore[attr-defined]
            raise UnknownPeer(node_id)


def peer_summary(peer: Peer) -> dict[str, Any]:
    return {
        "node_id": peer.node_id,
        "name": peer.name,
        "url": peer.url,
        "fingerprint": peer.fingerprint,
        "archives": [a.get("code") for a in peer.archives or [] if isinstance(a, dict)],
        "added_at": peer.added_at.isoformat() if peer.added_at else None,
        "last_contact": peer.last_contact_at.isoformat() if peer.last_contact_at else None,
        "status": peer.last_status,
        "last_error": peer.last_error,
    }


def peer_public_key(session: Session, node_id: str) -> Ed25519PublicKey | None:
    key = session.execute(_KEY_OF, {"node_id": node_id}).scalar_one_or_none()
    return _parsed_key(key) if key else None


_KEY_OF = select(Peer.public_key).where(Peer.node_id == bindparam("node_id"))


def peer_key(settings: Settings, node_id: str) -> Ed25519PublicKey | None:
    """The public key of peer ``node_id`` for a signature check, read from the catalogue on every call (a
    removed peer is refused at once; a rotated key applies at once), on a pooled connection: an ORM session
    costs ~10 times as much CPU as the query itself."""
    with db.get_engine(settings).connect() as conn:
        key = conn.execute(_KEY_OF, {"node_id": node_id}).scalar_one_or_none()
    return _parsed_key(key) if key else None


@functools.lru_cache(maxsize=1024)
def _parsed_key(b64: str) -> Ed25519PublicKey:
    """The key object of a stored base64 key (a pure function of the text, so it may be kept)."""
    return public_key_from_b64(b64)


def record_contact(settings: Settings, node_id: str, status: str, error: str | None = None) -> None:
    """Note the outcome of the last call to a peer (``archive peers list`` shows it)."""
    values: dict[str, Any] = {"last_status": status, "last_error": error}
    if status == "ok":
        values["last_contact_at"] = utcnow()
    with db.write_session(settings) as s:
        s.execute(update(Peer).where(Peer.node_id == node_id).values(**values))


# -- nonces -------------------------------------------------------------------------------------------------

_CLEAN_EVERY = 60.0
_last_clean: dict[str, float] = {}
_NONCE_ENGINES: dict[str, Engine] = {}


def _nonce_engine(settings: Settings) -> Engine:
    """The engine nonces are written with. On SQLite, its own connections with ``synchronous=NORMAL``: in
    WAL mode a commit then costs no fsync (~10 ms on this machine's disk, on every signed call) and stays
    atomic; what a power cut can lose is the last nonces, whose signatures expire within minutes anyway.
    On PostgreSQL the transaction sets ``synchronous_commit`` off for the same reason (see below)."""
    url = settings.db_url
    if not url.startswith("sqlite"):
        return db.get_engine(settings)
    engine = _NONCE_ENGINES.get(url)
    if engine is None:
        engine = create_engine(url, connect_args={"timeout": db.SQLITE_BUSY_MS / 1000})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {db.SQLITE_BUSY_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        _NONCE_ENGINES[url] = engine
    return engine


_INSERT_NONCE = insert(SeenNonce)


def remember_nonce(settings: Settings, key_id: str, nonce: str, expires: dt.datetime) -> bool:
    """Store a signature's nonce until it expires; False when it is already there (a replay: the unique
    constraint decides, also between worker processes). Expired nonces are deleted at most once a minute
    per process, in the same transaction."""
    import time

    now = time.monotonic()
    engine = _nonce_engine(settings)

    def write(conn: Connection) -> None:
        if now - _last_clean.get(settings.db_url, 0.0) > _CLEAN_EVERY:
            conn.execute(delete(SeenNonce).where(SeenNonce.expires_at < utcnow()))
            _last_clean[settings.db_url] = now
        conn.execute(_INSERT_NONCE, {"key_id": key_id, "nonce": nonce, "expires_at": expires})

    try:
        if engine.dialect.name == "sqlite":  # autocommit connections: the transaction is ours to open
            with engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    write(conn)
                    conn.exec_driver_sql("COMMIT")
                except BaseException:
                    conn.exec_driver_sql("ROLLBACK")
                    raise
        else:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
                write(conn)
    except IntegrityError:
        return False
    return True


# -- key rotation -----------------------------------------------------------------------------------------


def announce_key(settings: Settings, old: NodeIdentity, new: NodeIdentity) -> list[dict[str, Any]]:
    """Tell every peer the node's new key, in a call signed with the old one; returns each peer's outcome.
    A peer that misses it refuses the node's calls until its operator runs ``archive peers add`` again."""
    body = {
        "node_id": new.node_id,
        "name": new.name,
        "url": new.url,
        "public_key": new.public_key_b64,
        "fingerprint": new.fingerprint,
    }
    with db.read_session(settings) as s:
        peers = [(p.node_id, p.name, p.url) for p in list_peers(s)]
    results = []
    auth = SignatureAuth(old, settings.federation_signature_ttl)
    with httpx.Client(timeout=FETCH_TIMEOUT) as client:
        for node_id, name, url in peers:
            try:
                r = client.post(url + ANNOUNCE_PATH, json=body, auth=auth)
                ok, detail = r.status_code == 200, f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                ok, detail = False, type(exc).__name__
            results.append({"node_id": node_id, "name": name, "announced": ok, "detail": detail})
    return results


def accept_announcement(settings: Settings, node_id: str, data: Any) -> dict[str, Any]:
    """Store the new key a peer announced (the call was verified with its current key)."""
    if not isinstance(data, dict) or data.get("node_id") != node_id:
        raise BadDescriptor(node_id, "announcement for another node")
    try:
        raw_key = data["public_key"]
        public_key_from_b64(raw_key)
    except (KeyError, TypeError, ValueError):
        raise BadDescriptor(node_id, "public_key") from None
    fingerprint = fingerprint_of(base64.b64decode(raw_key))
    with db.write_session(settings) as s:
        peer = get_peer(s, node_id)
        if peer.public_key != raw_key:
            peer.public_key, peer.fingerprint, peer.key_changed_at = raw_key, fingerprint, utcnow()
        if isinstance(data.get("name"), str) and data["name"]:
            peer.name = data["name"][:255]
        log.info("peer %s announced a new key %s", node_id, fingerprint)
        return peer_summary(peer)
