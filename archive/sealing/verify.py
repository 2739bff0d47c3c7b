"""``archive verify ARCHIVE/CODE``: every version of one record's OCFL object, checked from storage alone.

Per version: each content file first stored in it against the inventory's sha512 (fixity); the version's
``inventory.json`` against the digest its seal signed; the signature (and that the key is one of this node's);
the RFC 3161 token (its imprint is that digest, its CMS signature and TSA certificate chain verify against
``ARCHIVE_TSA_TRUST``). The root ``inventory.json`` must be the head version's. A version still waiting for
its token (SIG013) is a warning, not a failure; everything else is a failure, named by its code.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from archive import db, services
from archive.codes import render
from archive.config import Settings
from archive.digests import hash_file
from archive.home import store_for
from archive.sealing.keys import key_id_of, trusted_key_ids, verify_signature
from archive.sealing.seals import read_seal, token_relpath
from archive.sealing.tsa import check_token, token_time
from archive.storage.inventory import INVENTORY, version_number

WARNINGS = {"SIG013"}


def _problem(code: str, **params: Any) -> dict[str, Any]:
    zh, en = render(code, params)
    return {"code": code, "message_zh": zh, "message_en": en, **{k: str(v) for k, v in params.items()}}


def verify_object(settings: Settings, object_id: str) -> dict[str, Any]:
    return verify_object_at(settings, store_for(settings).object_path(object_id), object_id)


def verify_object_at(
    settings: Settings, obj: Path, object_id: str, *, fixity: bool = True, trusted: set[str] | None = None
) -> dict[str, Any]:
    """:func:`verify_object` over the object folder ``obj`` wherever it is (the storage root, a drill's scratch
    copy restored from a replica); ``fixity=False`` leaves the content files to the caller's own fixity check;
    ``trusted``: this node's key ids, when the caller checks many objects (read once)."""
    trusted = trusted if trusted is not None else trusted_key_ids(settings)
    versions: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    try:
        root_bytes = (obj / INVENTORY).read_bytes()
        root = json.loads(root_bytes)
    except (OSError, ValueError) as exc:
        problems.append(_problem("SIG018", version="root", reason=exc))
        return _result(object_id, versions, problems)
    names = sorted(root.get("versions", {}), key=lambda v: version_number(v) or 0)
    # content paths by the version directory that holds them
    by_version: dict[str, list[tuple[str, str]]] = {}
    for digest, paths in root.get("manifest", {}).items():
        for p in paths:
            by_version.setdefault(p.split("/", 1)[0], []).append((p, digest))
    head = root.get("head")
    for name in names:
        found = _verify_version(settings, obj, name, by_version.get(name, []) if fixity else [], trusted)
        if (
            name == head
            and (obj / name / INVENTORY).is_file()
            and (obj / name / INVENTORY).read_bytes() != root_bytes
        ):
            found["problems"].append(_problem("SIG016", version="root"))
        versions.append(found)
        problems.extend(found["problems"])
    return _result(object_id, versions, problems)


def _result(object_id: str, versions: list[dict[str, Any]], problems: list[dict[str, Any]]) -> dict[str, Any]:
    failures = [p for p in problems if p["code"] not in WARNINGS]
    return {
        "object_id": object_id,
        "ok": not failures,
        "versions": versions,
        "failures": failures,
        "warnings": [p for p in problems if p["code"] in WARNINGS],
    }


def _verify_version(
    settings: Settings, obj: Path, version: str, contents: list[tuple[str, str]], trusted: set[str]
) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    report: dict[str, Any] = {"version": version, "files": len(contents), "problems": problems}
    for path, digest in sorted(contents):
        try:
            _size, digests = hash_file(obj / path, ("sha512",))
        except OSError as exc:
            problems.append(_problem("SIG010", version=version, path=path, reason=exc.strerror or exc))
            continue
        if digests["sha512"] != digest:
            problems.append(_problem("SIG010", version=version, path=path, reason="sha512 differs"))
    try:
        inventory_digest = hashlib.sha512((obj / version / INVENTORY).read_bytes()).digest()
    except OSError as exc:
        problems.append(_problem("SIG018", version=version, reason=exc.strerror or exc))
        return report
    try:
        seal = read_seal(obj, version)
    except ValueError as exc:
        problems.append(_problem("SIG012", version=version, reason=f"unreadable seal: {exc}"))
        return report
    if seal is None:
        problems.append(_problem("SIG011", version=version))
        return report
    try:
        signed, algorithm, key_id, good = _signature(seal)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(_problem("SIG012", version=version, reason=f"unreadable seal: {exc}"))
        return report
    report.update(algorithm=algorithm, key_id=key_id, sealed_at=seal.get("sealedAt"))
    if signed != inventory_digest:
        problems.append(_problem("SIG016", version=version))
    if not good:
        problems.append(_problem("SIG012", version=version, reason="signature does not match"))
    elif key_id not in trusted:
        problems.append(_problem("SIG017", version=version, key_id=key_id))
    try:
        token = (obj / token_relpath(version)).read_bytes()
    except FileNotFoundError:
        problems.append(_problem("SIG013", version=version))
        return report
    wrong = check_token(settings, token, signed)
    if wrong is None:
        report["timestamp"] = token_time(token)
    elif wrong[0] == "imprint":
        problems.append(_problem("SIG014", version=version))
    else:
        problems.append(_problem("SIG015", version=version, reason=wrong[1]))
    return report


def _signature(seal: Mapping[str, Any]) -> tuple[bytes, str, str, bool]:
    """(the digest the seal signed, algorithm, key id, whether the signature verifies with the seal's own
    public key); KeyError/TypeError/ValueError if the seal is malformed."""
    signed = bytes.fromhex(seal["inventoryDigest"]["value"])
    sig = seal["signature"]
    public = base64.b64decode(sig["publicKey"])
    good = verify_signature(sig["algorithm"], public, signed, base64.b64decode(sig["value"]))
    return signed, str(sig["algorithm"]), key_id_of(sig["algorithm"], public), good


def seal_vouches_for(
    settings: Settings, seal_data: bytes, inventory: bytes, *, trusted: set[str] | None = None
) -> bool:
    """Whether ``seal_data`` (a ``vN.seal.json``) vouches for ``inventory`` (the bytes of that version's
    ``inventory.json``, or of a root inventory whose head is that version): its signature verifies, it signed
    the sha512 of exactly these bytes, and its key is one of this node's (:func:`trusted_key_ids`; pass
    ``trusted`` to spare reading the keys again). Anything malformed vouches for nothing."""
    try:
        seal = json.loads(seal_data)
        signed, _algorithm, key_id, good = _signature(seal)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False
    keys = trusted if trusted is not None else trusted_key_ids(settings)
    return good and signed == hashlib.sha512(inventory).digest() and key_id in keys


def verify_record(settings: Settings, ref: str) -> dict[str, Any]:
    archive, code = services.split_record_ref(ref)
    with db.read_session(settings) as s:
        object_id = services.get_record(s, archive, code).ocfl_object_id
    return {"record": ref, **verify_object(settings, object_id)}
