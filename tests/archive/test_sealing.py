"""Signed, timestamped versions (archive/sealing): seals at commit, the TSA outbox, ``archive verify``,
event-chain anchors and evidence renewal, against a real TSA (OpenSSL ``ts``, :mod:`tests.tsa`)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from archive import db
from archive.config import Settings, get_settings
from archive.events import verify_chain
from archive.home import store_for
from archive.models import ChainHead, Event, Record
from archive.sealing import keys
from archive.sealing.anchors import check_anchor, newest_anchor
from archive.sealing.evidence import (
    latest_renewal,
    leaf_hash,
    merkle_proof,
    merkle_root,
    renew_evidence,
    verify_proof,
)
from archive.sealing.outbox import SIGNATURE, status
from archive.sealing.seals import seal_relpath, token_relpath
from archive.sealing.service import sync_all
from archive.sealing.verify import verify_record
from archive.storage import validate_root
from archive.storage.inventory import sidecar_bytes
from ingest.pipeline import ingest
from tests.e2e.helpers import archive_cmd, free_port, ingest_json, simple_bag
from tests.tsa import TestTsa
from tests.tsa import tsa as tsa  # the fixtures, re-exported for pytest
from tests.tsa import tsa_home as tsa_home

#: two records, plus the transfer's own OCFL object: three sealed versions per ingest
SEALED = 3
RECORDS = [("r1", "GZ-2024-001", "第一件", "一".encode() * 100), ("r2", "GZ-2024-002", "第二件", b"second")]


def _ingest(settings: Settings, tmp_path: Path, name: str = "bag") -> None:
    result = ingest(simple_bag(tmp_path / name, RECORDS), "GZ", settings)
    assert result.status == "stored", result.problems


def _object_dir(settings: Settings, code: str = "GZ-2024-001") -> Path:
    with db.read_session(settings) as s:
        oid = s.execute(select(Record.ocfl_object_id).where(Record.archival_code == code)).scalar_one()
    return store_for(settings).object_path(oid)


def _codes(report: dict[str, object], key: str = "failures") -> set[str]:
    return {p["code"] for p in report[key]}  # type: ignore[attr-defined]


# -- SM2 with SM3, cross-checked against OpenSSL --------------------------------------------------------------


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).decode()
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode()


def test_sm2_signatures_verify_with_openssl_and_back(
    tmp_path: Path, home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_SIGNATURE_ALGORITHM", "sm2")
    signer = keys.signer_for(get_settings())
    assert signer.algorithm == keys.SM2
    digest = hashlib.sha512(b"inventory.json bytes").digest()
    (tmp_path / "msg.bin").write_bytes(digest)
    # ours → OpenSSL (default SM2 id 1234567812345678, SM3)
    (tmp_path / "ours.pub").write_bytes(_pem("PUBLIC KEY", signer.public_key_der))
    (tmp_path / "ours.sig").write_bytes(signer.sign(digest))
    # OpenSSL 3.0's own default id is empty: name GB/T 32918's default id explicitly
    sm2_id = ("-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678")
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "ours.pub", *sm2_id]
    done = subprocess.run(
        [*verify, "-in", "msg.bin", "-sigfile", "ours.sig"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (tmp_path / "other.bin").write_bytes(hashlib.sha512(b"another inventory").digest())
    done = subprocess.run(
        [*verify, "-in", "other.bin", "-sigfile", "ours.sig"], cwd=tmp_path, capture_output=True
    )
    assert done.returncode != 0  # OpenSSL really checks
    # OpenSSL → ours
    run = lambda *a: subprocess.run(["openssl", *a], cwd=tmp_path, check=True, capture_output=True)  # noqa: E731
    run("genpkey", "-algorithm", "SM2", "-out", "theirs.pem")
    run("pkey", "-in", "theirs.pem", "-pubout", "-outform", "DER", "-out", "theirs.pub.der")
    run("pkeyutl", "-sign", "-inkey", "theirs.pem", *sm2_id, "-in", "msg.bin", "-out", "theirs.sig")
    public = (tmp_path / "theirs.pub.der").read_bytes()
    signature = (tmp_path / "theirs.sig").read_bytes()
    assert keys.verify_signature(keys.SM2, public, digest, signature)
    assert not keys.verify_signature(keys.SM2, public, hashlib.sha512(b"x").digest(), signature)
    assert not keys.verify_signature(keys.SM2, signer.public_key_der, digest, signature)


def test_sm2_node_seals_and_verifies(tmp_path: Path, home: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVE_SIGNATURE_ALGORITHM", "sm2")
    settings = get_settings()
    _ingest(settings, tmp_path)
    seal = json.loads((_object_dir(settings) / seal_relpath("v1")).read_bytes())
    assert seal["signature"]["algorithm"] == "sm2-sm3"
    report = verify_record(settings, "GZ/GZ-2024-001")
    assert report["ok"], report["failures"]


# -- seals at commit, the outbox, the TSA -------------------------------------------------------------------


def test_every_version_is_signed_at_commit_and_verifies(tmp_path: Path, home: Settings) -> None:
    _ingest(home, tmp_path)
    obj = _object_dir(home)
    seal = json.loads((obj / seal_relpath("v1")).read_bytes())
    inventory = (obj / "v1" / "inventory.json").read_bytes()
    assert seal["inventoryDigest"]["value"] == hashlib.sha512(inventory).hexdigest()
    assert seal["signature"]["keyId"] in keys.trusted_key_ids(home)
    report = verify_record(home, "GZ/GZ-2024-001")
    assert report["ok"], report["failures"]
    assert _codes(report, "warnings") == {"SIG013"}  # no TSA configured: no token yet, a warning
    assert status(home)["versions_without_token"] == SEALED


def test_tsa_down_during_ingest_token_added_later(
    tmp_path: Path, home: Settings, tsa: TestTsa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_TSA_URL", f"http://127.0.0.1:{free_port()}/down")  # nothing listens
    monkeypatch.setenv("ARCHIVE_TSA_TRUST", str(tsa.ca_pem))
    down = get_settings()
    code, result = ingest_json(simple_bag(tmp_path / "bag", RECORDS), "GZ")  # `archive ingest`, TSA down
    assert code == 0 and result["status"] == "stored", result
    report = sync_all(down)
    assert report["error"]["code"] == "SIG002" and report["waiting"] == SEALED
    gap = status(down)
    assert gap["versions_without_token"] == SEALED and gap["oldest_age_seconds"] >= 0 and gap["last_error"]
    assert not (_object_dir(down) / token_relpath("v1")).exists()

    monkeypatch.setenv("ARCHIVE_TSA_URL", tsa.url)
    up = get_settings()
    report = sync_all(up)
    assert report["error"] is None and report["timestamped"] == SEALED, report
    assert status(up)["versions_without_token"] == 0
    verified = verify_record(up, "GZ/GZ-2024-001")
    assert verified["ok"] and not verified["warnings"], verified
    assert verified["versions"][0]["timestamp"]
    with db.read_session(up) as s:
        kinds = [
            d or "" for d in s.execute(select(Event.detail).where(Event.event_type == SIGNATURE)).scalars()
        ]
        assert sum("signed" in k for k in kinds) == SEALED and sum("RFC 3161" in k for k in kinds) == SEALED
        assert verify_chain(s).ok
    assert sync_all(up)["timestamped"] == 0  # nothing twice


def test_seals_cli(tmp_path: Path, tsa_home: Settings) -> None:
    _ingest(tsa_home, tmp_path)
    gap = archive_cmd("seals", "status", "--json")
    assert gap.returncode == 0 and json.loads(gap.stdout)["versions_without_token"] == SEALED
    done = archive_cmd("seals", "sync", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["timestamped"] == SEALED
    ok = archive_cmd("verify", "GZ/GZ-2024-001")
    assert ok.returncode == 0 and "all 1 version(s) verified" in ok.stdout, ok.stdout + ok.stderr
    unknown = archive_cmd("verify", "GZ/NO-SUCH")
    assert unknown.returncode == 1 and "ARC004" in unknown.stderr


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("signature", "SIG012"),
        ("token", "SIG014"),
        ("token_bytes", "SIG015"),
        ("inventory", "SIG016"),
        ("content", "SIG010"),
        ("seal", "SIG011"),
    ],
)
def test_verify_names_each_tampering(tmp_path: Path, tsa_home: Settings, tamper: str, code: str) -> None:
    _ingest(tsa_home, tmp_path)
    sync_all(tsa_home)
    obj = _object_dir(tsa_home)
    seal_path, token_path = obj / seal_relpath("v1"), obj / token_relpath("v1")
    if tamper == "signature":
        seal = json.loads(seal_path.read_bytes())
        raw = bytearray(base64.b64decode(seal["signature"]["value"]))
        raw[5] ^= 1
        seal["signature"]["value"] = base64.b64encode(bytes(raw)).decode()
        seal_path.write_text(json.dumps(seal))
    elif tamper == "token":  # a good token, but of another record's inventory
        token_path.write_bytes((_object_dir(tsa_home, "GZ-2024-002") / token_relpath("v1")).read_bytes())
    elif tamper == "token_bytes":  # the signed timestamp info changed: the TSA's signature breaks
        token = bytearray(token_path.read_bytes())
        at = token.find(b"\x18\x0f")  # GeneralizedTime of genTime
        token[at + 5] = token[at + 5] ^ 1
        token_path.write_bytes(bytes(token))
    elif tamper in ("inventory", "content"):
        inventory = json.loads((obj / "v1" / "inventory.json").read_bytes())
        if tamper == "inventory":
            inventory["versions"]["v1"]["message"] = "rewritten"
            data = json.dumps(inventory, indent=2).encode()
            for d in (obj, obj / "v1"):
                (d / "inventory.json").write_bytes(data)
                (d / "inventory.json.sha512").write_bytes(sidecar_bytes(data))
        else:
            content = next(p for ps in inventory["manifest"].values() for p in ps if p.endswith(".txt"))
            (obj / content).write_bytes(b"bit rot")
    else:
        seal_path.unlink()
    proc = archive_cmd("verify", "GZ/GZ-2024-001", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert code in _codes(report), report["failures"]
    assert not report["ok"]
    assert json.loads(archive_cmd("verify", "GZ/GZ-2024-002", "--json").stdout)["ok"]


def test_token_from_an_untrusted_tsa_fails(
    tmp_path: Path, tsa_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest(tsa_home, tmp_path)
    sync_all(tsa_home)
    with TestTsa.start(tmp_path / "other-tsa") as other:  # a real TSA, but its CA is not in the trust store
        monkeypatch.setenv("ARCHIVE_TSA_TRUST", str(other.ca_pem))
        report = verify_record(get_settings(), "GZ/GZ-2024-001")
    assert "SIG015" in _codes(report)


# -- event-chain anchors ------------------------------------------------------------------------------------


def test_ingest_anchors_the_chain_and_verify_passes(tmp_path: Path, tsa_home: Settings) -> None:
    _ingest(tsa_home, tmp_path)
    anchor = newest_anchor(tsa_home)
    assert anchor is not None and anchor.parent.parent.parent == tsa_home.ocfl_root
    sync_all(tsa_home)
    assert newest_anchor(tsa_home).with_suffix(".tsr").exists()  # type: ignore[union-attr]
    proc = archive_cmd("events", "verify", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout)["anchor"]["ok"]


def test_truncated_chain_with_rewritten_head_is_caught(tmp_path: Path, home: Settings) -> None:
    _ingest(home, tmp_path)
    anchored = json.loads(newest_anchor(home).read_bytes())["statement"]["sequence"]  # type: ignore[union-attr]
    with db.write_session(home) as s:
        keep = anchored - 3
        kept = s.get(Event, keep)
        assert kept is not None
        s.execute(delete(Event).where(Event.id > keep))
        s.execute(update(ChainHead).where(ChainHead.id == 1).values(last_event_id=keep, last_hash=kept.hash))
    with db.read_session(home) as s:
        assert verify_chain(s).ok  # the chain alone cannot tell
        found = check_anchor(home, s)
    assert not found["ok"] and found["problem"]["code"] == "SIG021"
    proc = archive_cmd("events", "verify")
    assert proc.returncode == 1 and "SIG021" in proc.stderr, proc.stdout + proc.stderr


def test_rewriting_before_the_anchor_is_caught(tmp_path: Path, home: Settings) -> None:
    from archive.events import chain_hash

    _ingest(home, tmp_path)
    with db.write_session(home) as s:  # rewrite an early event and re-hash everything after it
        rows = s.execute(select(Event).order_by(Event.id)).scalars().all()
        rows[1].detail = "nothing happened here"
        prev = rows[1].prev_hash
        for row in rows[1:]:
            row.prev_hash = prev
            row.hash = chain_hash(prev, row)
            prev = row.hash
        s.execute(update(ChainHead).where(ChainHead.id == 1).values(last_hash=prev))
    with db.read_session(home) as s:
        assert verify_chain(s).ok
        found = check_anchor(home, s)
    assert not found["ok"] and found["problem"]["code"] == "SIG021"


def test_forged_anchor_is_refused(tmp_path: Path, home: Settings) -> None:
    _ingest(home, tmp_path)
    path = newest_anchor(home)
    assert path is not None
    body = json.loads(path.read_bytes())
    body["statement"]["hash"] = "0" * 64
    path.write_text(json.dumps(body))
    with db.read_session(home) as s:
        assert check_anchor(home, s)["problem"]["code"] == "SIG020"


# -- evidence renewal ---------------------------------------------------------------------------------------


def test_renew_evidence_proves_every_inventory(tmp_path: Path, tsa_home: Settings) -> None:
    _ingest(tsa_home, tmp_path)
    sync_all(tsa_home)
    first = renew_evidence(tsa_home)
    assert first["timestamped"] and first["leaves"] == SEALED
    folder = latest_renewal(tsa_home)
    assert folder is not None and folder.is_relative_to(tsa_home.ocfl_root)
    leaves = json.loads((folder / "leaves.json").read_bytes())
    root = bytes.fromhex(json.loads((folder / "root.json").read_bytes())["statement"]["root"])
    hashes = [leaf_hash(leaf) for leaf in leaves]
    assert merkle_root(hashes) == root
    obj = _object_dir(tsa_home)
    digest = hashlib.sha512((obj / "v1" / "inventory.json").read_bytes()).hexdigest()
    index = next(i for i, leaf in enumerate(leaves) if leaf[2] == digest)
    assert verify_proof(hashes[index], merkle_proof(hashes, index), root)
    forged = [*leaves[index][:2], hashlib.sha512(b"another inventory").hexdigest(), *leaves[index][3:]]
    assert not verify_proof(leaf_hash(forged), merkle_proof(hashes, index), root)
    # the next renewal covers the previous one (through the command, as an operator runs it)
    proc = archive_cmd("evidence", "renew", "--json")
    assert proc.returncode == 0, proc.stderr
    second = json.loads(proc.stdout)
    assert second["leaves"] == SEALED + 1
    newest = latest_renewal(tsa_home)
    assert newest is not None and newest != folder
    chained = json.loads((newest / "leaves.json").read_bytes())[-1]
    assert chained[2] == hashlib.sha512((folder / "root.json").read_bytes()).hexdigest()
    # seals, tokens, anchors and renewals keep the root valid for an independent OCFL validator
    ok, messages = validate_root(tsa_home.ocfl_root)
    assert ok, messages


def test_merkle_proofs_for_odd_trees() -> None:
    for n in (1, 2, 3, 5, 8, 13):
        hashes = [hashlib.sha512(str(i).encode()).digest() for i in range(n)]
        root = merkle_root(hashes)
        for i in range(n):
            assert verify_proof(hashes[i], merkle_proof(hashes, i), root)


def test_key_files_are_private(home: Settings, tmp_path: Path) -> None:
    _ingest(home, tmp_path)
    mode = os.stat(keys.sealing_dir(home) / "ed25519-key.pem").st_mode & 0o777
    assert mode == 0o600


# -- versions made by migrations, and PostgreSQL --------------------------------------------------------------


def test_migration_versions_are_sealed_and_timestamped(tmp_path: Path, tsa_home: Settings) -> None:
    from preservation.migrate import migrate
    from tests.preservation.helpers import ingest_files, object_id
    from tests.preservation.samples import make_image

    ids = ingest_files(tsa_home, tmp_path, {"b.png": make_image(tmp_path / "b.png", "PNG")}, code="R-9")
    assert migrate(tsa_home, ids["b.png"], "image-tiff").version == "v2"
    obj = store_for(tsa_home).object_path(object_id(tsa_home, ids["b.png"]))
    seal = json.loads((obj / seal_relpath("v2")).read_bytes())
    assert (
        seal["inventoryDigest"]["value"]
        == hashlib.sha512((obj / "v2" / "inventory.json").read_bytes()).hexdigest()
    )
    assert sync_all(tsa_home)["error"] is None
    report = verify_record(tsa_home, "GZ/R-9")
    assert report["ok"] and not report["warnings"], report
    assert [v["version"] for v in report["versions"]] == ["v1", "v2"]


def test_outbox_and_anchors_on_both_databases(
    tmp_path: Path, any_home: Settings, tsa: TestTsa, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARCHIVE_TSA_URL", tsa.url)
    monkeypatch.setenv("ARCHIVE_TSA_TRUST", str(tsa.ca_pem))
    settings = get_settings()
    _ingest(settings, tmp_path)
    assert status(settings)["versions_without_token"] == SEALED
    assert sync_all(settings)["timestamped"] == SEALED
    assert status(settings)["versions_without_token"] == 0
    with db.read_session(settings) as s:
        assert verify_chain(s).ok and check_anchor(settings, s)["ok"]
    assert verify_record(settings, "GZ/GZ-2024-002")["ok"]


def test_backfill_seals_versions_stored_without_a_seal(tsa_home: Settings) -> None:
    from archive.sealing.verify import verify_object
    from archive.storage import OcflStore

    bare = OcflStore(tsa_home.ocfl_root, tsa_home.staging_dir)  # no sealer: as before sealing existed
    builder = bare.begin_object("urn:pearl-archive:GZ:old")
    builder.add_bytes("data/a.txt", b"stored long ago")
    bare.commit(builder, message="old", user_name="old")
    assert _codes(verify_object(tsa_home, "urn:pearl-archive:GZ:old")) == {"SIG011"}
    proc = archive_cmd("seals", "sync", "--backfill", "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["backfilled"] == 1 and report["timestamped"] == 1
    checked = verify_object(tsa_home, "urn:pearl-archive:GZ:old")
    assert checked["ok"] and not checked["warnings"], checked
    assert json.loads(archive_cmd("seals", "sync", "--backfill", "--json").stdout)["backfilled"] == 0
