"""This node's identity: an Ed25519 key pair, a node id, a name and its public URL, kept under
``$ARCHIVE_HOME/node/``:

- ``node.json`` — ``node_id``, ``name``, ``url`` and when the key was made (readable by anyone);
- ``node-key.pem`` — the private key (PKCS #8 PEM, file mode 0600, created with that mode so it is never
  readable by others even for an instant); never printed and never served;
- ``retired/`` — keys replaced by ``--rotate-key`` (also 0600), kept so an operator can tell which key signed
  what.

The node id is random and stays when the key is rotated, so peers keep knowing the node by it; it is the
``keyid`` of the node's signatures. The fingerprint is what OpenSSH prints for a key: ``SHA256:`` and the
unpadded base64 of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from archive.config import Settings
from archive.federation.errors import BadNodeUrl, NodeNotInitialised

KEY_FILE = "node-key.pem"
META_FILE = "node.json"


def node_dir(settings: Settings) -> Path:
    return settings.home_dir / "node"


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint_of(raw: bytes) -> str:
    """``SHA256:`` + unpadded base64 of sha256(raw public key), as ``ssh-keygen -l`` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def public_key_from_b64(value: str) -> Ed25519PublicKey:
    raw = base64.b64decode(value, validate=True)
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def normalise_url(url: str) -> str:
    """An absolute http(s) base URL without a trailing slash, query or fragment."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BadNodeUrl(url)
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise BadNodeUrl(url) from None
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


@dataclass(frozen=True)
class NodeIdentity:
    node_id: str
    name: str
    url: str
    private_key: Ed25519PrivateKey
    key_created_at: str

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_key_raw(self) -> bytes:
        return raw_public_key(self.public_key)

    @property
    def public_key_b64(self) -> str:
        return base64.b64encode(self.public_key_raw).decode()

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_key_raw)

    def descriptor(self, archives: list[dict[str, Any]]) -> dict[str, Any]:
        """What ``GET /federation/v1/node`` and ``archive node show --json`` say (no secret in it)."""
        return {
            "node_id": self.node_id,
            "name": self.name,
            "url": self.url,
            "public_key": self.public_key_b64,
            "fingerprint": self.fingerprint,
            "key_created_at": self.key_created_at,
            "archives": archives,
            "protocol": "pearl-federation/1",
        }


def _write_private(path: Path, key: Ed25519PrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(path.name + f".{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _write_meta(path: Path, meta: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def has_identity(settings: Settings) -> bool:
    d = node_dir(settings)
    return (d / META_FILE).is_file() and (d / KEY_FILE).is_file()


def init_identity(
    settings: Settings, url: str, name: str | None = None, *, rotate_key: bool = False
) -> tuple[NodeIdentity, NodeIdentity | None]:
    """Create this node's identity, or update its URL/name; a new key only with ``rotate_key`` (or when
    there is none). Returns the identity and, after a rotation, the previous one (to sign the announcement)."""
    base = normalise_url(url)
    d = node_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    previous: NodeIdentity | None = None
    if has_identity(settings):
        previous = load_identity(settings)
        meta = json.loads((d / META_FILE).read_text(encoding="utf-8"))
    else:
        meta = {"node_id": secrets.token_hex(8), "created_at": _now()}
    meta["url"] = base
    meta["name"] = name or meta.get("name") or urlsplit(base).hostname or base  # default: the host
    if previous is None or rotate_key:
        if previous is not None:
            retired = d / "retired"
            retired.mkdir(mode=0o700, exist_ok=True)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            _write_private(retired / f"node-key-{stamp}.pem", previous.private_key)
        _write_private(d / KEY_FILE, Ed25519PrivateKey.generate())
        meta["key_created_at"] = _now()
    _write_meta(d / META_FILE, meta)
    _CACHE.clear()
    return load_identity(settings), (previous if rotate_key else None)


_CACHE: dict[Path, tuple[tuple[int, int], NodeIdentity]] = {}


def load_identity(settings: Settings) -> NodeIdentity:
    """The node's identity; re-read when its files change (a running portal sees ``--rotate-key``)."""
    d = node_dir(settings)
    meta_path, key_path = d / META_FILE, d / KEY_FILE
    try:
        stamp = (meta_path.stat().st_mtime_ns, key_path.stat().st_mtime_ns)
    except FileNotFoundError:
        raise NodeNotInitialised(settings.home_dir) from None
    cached = _CACHE.get(d)
    if cached and cached[0] == stamp:
        return cached[1]
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise NodeNotInitialised(settings.home_dir)
    identity = NodeIdentity(
        node_id=str(meta["node_id"]),
        name=str(meta["name"]),
        url=str(meta["url"]),
        private_key=key,
        key_created_at=str(meta.get("key_created_at", "")),
    )
    _CACHE[d] = (stamp, identity)
    return identity
