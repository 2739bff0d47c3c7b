"""Seals of OCFL versions: the signature of each version's ``inventory.json`` digest and its RFC 3161
token, kept in the object's ``extensions/pearl-inventory-seals/`` (see ``docs/ocfl-extension-seals.md``)::

    <object>/extensions/pearl-inventory-seals/v1.seal.json   what was signed, by which key, the signature
    <object>/extensions/pearl-inventory-seals/v1.tsr         the TSA's TimeStampResp (DER) over the same digest

The signature is made inside the OCFL commit (:class:`VersionSealer` is the store's ``sealer``), so a version
never exists unsigned; the token is fetched afterwards from the outbox (:mod:`archive.sealing.outbox`).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archive.config import Settings
from archive.sealing.keys import Signer, signer_for
from archive.storage import _fs

EXTENSION = "pearl-inventory-seals"
DIGEST_ALGORITHM = "sha512"


def seal_relpath(version: str) -> str:
    return f"extensions/{EXTENSION}/{version}.seal.json"


def token_relpath(version: str) -> str:
    return f"extensions/{EXTENSION}/{version}.tsr"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def signature_block(signer: Signer, digest: bytes) -> dict[str, str]:
    return {
        "algorithm": signer.algorithm,
        "keyId": signer.key_id,
        "publicKey": base64.b64encode(signer.public_key_der).decode(),
        "value": base64.b64encode(signer.sign(digest)).decode(),
    }


def seal_bytes(signer: Signer, object_id: str, version: str, inventory: bytes) -> bytes:
    digest = hashlib.sha512(inventory).digest()
    body = {
        "extension": EXTENSION,
        "object": object_id,
        "version": version,
        "inventoryDigest": {"algorithm": DIGEST_ALGORITHM, "value": digest.hex()},
        "signature": signature_block(signer, digest),
        "sealedAt": now_iso(),
    }
    return (json.dumps(body, ensure_ascii=False, indent=1) + "\n").encode()


@dataclass(frozen=True)
class Sealed:
    """One sealed version, as the outbox keeps it."""

    object_id: str
    version: str
    digest: str
    sealed_at: str
    algorithm: str
    key_id: str

    def item(self) -> dict[str, Any]:
        return {
            "object_id": self.object_id,
            "version": self.version,
            "digest": self.digest,
            "sealed_at": self.sealed_at,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "logged": False,
            "token": False,
        }


def sealed_from(seal: Mapping[str, Any]) -> Sealed:
    return Sealed(
        object_id=str(seal["object"]),
        version=str(seal["version"]),
        digest=str(seal["inventoryDigest"]["value"]),
        sealed_at=str(seal["sealedAt"]),
        algorithm=str(seal["signature"]["algorithm"]),
        key_id=str(seal["signature"]["keyId"]),
    )


class VersionSealer:
    """The OCFL store's ``sealer``: signs each committed version's inventory digest and remembers what it
    sealed until the caller's catalogue transaction hands it to the outbox (:meth:`take`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._signer: Signer | None = None
        self._sealed: dict[tuple[str, str], Sealed] = {}

    @property
    def signer(self) -> Signer:
        if self._signer is None:
            self._signer = signer_for(self.settings)
        return self._signer

    def __call__(self, object_id: str, version: str, inventory: bytes) -> dict[str, bytes]:
        data = seal_bytes(self.signer, object_id, version, inventory)
        self._sealed[(object_id, version)] = sealed_from(json.loads(data))
        return {seal_relpath(version): data}

    def take(self, object_ids: list[str] | None = None) -> list[Sealed]:
        """Forget and return what was sealed (of these objects, or all)."""
        keys = [k for k in self._sealed if object_ids is None or k[0] in object_ids]
        return [self._sealed.pop(k) for k in keys]


def take_sealed(store: Any, object_ids: list[str] | None = None) -> list[Sealed]:
    """What ``store``'s sealer sealed and nobody took yet (nothing for a store without one)."""
    sealer = getattr(store, "sealer", None)
    return sealer.take(object_ids) if isinstance(sealer, VersionSealer) else []


def read_seal(object_dir: Path, version: str) -> dict[str, Any] | None:
    try:
        data = json.loads((object_dir / seal_relpath(version)).read_bytes())
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def ensure_sealed(
    settings: Settings, object_dir: Path, object_id: str, version: str, staging: Path
) -> Sealed:
    """The seal of a committed version, made now if a crash left the version without one (a version is
    committed before its seal is written only for v2 and later)."""
    found = read_seal(object_dir, version)
    if found is not None:
        return sealed_from(found)
    inventory = (object_dir / version / "inventory.json").read_bytes()
    data = seal_bytes(signer_for(settings), object_id, version, inventory)
    dest = object_dir / seal_relpath(version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    _fs.replace_atomically(dest, data, staging)
    return sealed_from(json.loads(data))


def write_tokens(tokens: list[tuple[Path, str, bytes]], staging: Path) -> None:
    """Store tokens (object directory, version, TimeStampResp) beside their seals, durably: all staged in one
    transaction directory and made durable together (one ``syncfs`` for many), then renamed into place."""
    if not tokens:
        return
    txn = staging / f"seal-tokens-{uuid.uuid4().hex}"
    txn.mkdir(parents=True)
    try:
        staged = []
        for i, (obj, version, token) in enumerate(tokens):
            _fs.write_staged(txn / str(i), token)
            staged.append((txn / str(i), obj / token_relpath(version)))
        _fs.fsync_tree(txn)
        parents = []
        for tmp, dest in staged:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(tmp, dest)
            parents.append(dest.parent)
        _fs.fsync_dirs(dict.fromkeys(parents))
    finally:
        shutil.rmtree(txn, ignore_errors=True)


def has_token(object_dir: Path, version: str) -> bool:
    return os.path.isfile(object_dir / token_relpath(version))
