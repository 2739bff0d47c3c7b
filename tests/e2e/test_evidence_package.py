"""End to end: `archive evidence` writes a package that the outside tools re-verify, and that each of them
refuses once tampered with: bagit.py --validate, sha256sum -c, ocfl-validate.py (+ sha512sum of the
sidecars) and the chain script shipped in the package."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import bagit
import pytest
from lxml import etree
from sqlalchemy import select

from archive import db
from archive.config import Settings
from archive.evidence import unpack
from archive.home import store_for
from archive.models import Event
from archive.services import get_record
from tests.e2e.helpers import archive_cmd, ingest_json, simple_bag

TOOLS = Path(sys.executable).parent
REF = "GZ/GZ-1-0001"


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def bagit_ok(bag: Path) -> bool:
    return _run(TOOLS / "bagit.py", "--validate", ".", cwd=bag).returncode == 0


def sha256sum_ok(bag: Path) -> bool:
    return _run("sha256sum", "-c", "--quiet", "manifest-sha256.txt", cwd=bag).returncode == 0


def inventories(bag: Path) -> list[Path]:
    return sorted((bag / "data" / "ocfl").rglob("inventory.json"))


def ocfl_ok(bag: Path) -> bool:
    return all(
        _run(TOOLS / "ocfl-validate.py", inv, cwd=bag).returncode == 0
        and _run("sha512sum", "-c", "--quiet", "inventory.json.sha512", cwd=inv.parent).returncode == 0
        for inv in inventories(bag)
    )


def chain_ok(bag: Path) -> bool:
    # the system's python3, as an auditor would run it: the script needs nothing but the standard library
    return _run("python3", "data/verify_chain.py", cwd=bag).returncode == 0


def rebag(bag: Path) -> None:
    """Recompute the bag's manifests after an edit, so that only the tool under test can notice it."""
    bagit.Bag(str(bag)).save(manifests=True)


def make_package(settings: Settings, tmp_path: Path) -> Path:
    bag = simple_bag(
        tmp_path / "transfer",
        [
            ("卷一", "GZ-1-0001", "会议纪要", "第一次会议\n".encode()),
            ("卷二", "GZ-1-0002", "通知", b"notice\n"),
        ],
    )
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    proc = archive_cmd("evidence", REF, str(tmp_path / "evidence.zip"), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    zip_bytes = (tmp_path / "evidence.zip").read_bytes()
    assert summary["sha256"] == hashlib.sha256(zip_bytes).hexdigest()
    with db.read_session(settings) as s:
        [logged] = s.execute(select(Event).where(Event.event_type == "dissemination")).scalars()
        assert logged.object_id == REF and logged.outcome_detail["sha256"] == summary["sha256"]
    return unpack(tmp_path / "evidence.zip", tmp_path / "unzipped")


@pytest.fixture
def package(home: Settings, tmp_path: Path) -> Path:
    """A record's package on SQLite (the tampering tests; the catalogue plays no part once it is written)."""
    return make_package(home, tmp_path)


def test_package_reverifies_with_the_outside_tools(any_home: Settings, tmp_path: Path) -> None:
    package = make_package(any_home, tmp_path)
    assert bagit_ok(package)
    assert sha256sum_ok(package)
    assert len(inventories(package)) == 2  # the object's root inventory and v1's
    assert ocfl_ok(package)
    chain = _run("python3", "data/verify_chain.py", cwd=package)
    assert chain.returncode == 0, chain.stdout
    doc = json.loads((package / "data" / "events" / "events.json").read_text())
    kinds = {e["canonical"]["event_type"] for e in doc["events"]}
    assert {"validation", "message digest calculation", "format identification", "ingestion"} <= kinds
    assert all(e["canonical"]["object_type"] == "transfer" or e["record_id"] for e in doc["events"])
    assert doc["head"]["last_hash"] in chain.stdout
    receipt = package / "data" / "report" / "receipt"  # the transfer's receipt report, in every form
    assert {p.name for p in receipt.iterdir()} >= {"report.json", "report.csv", "report.html", "report.pdf"}
    readme = (package / "data" / "README.md").read_text()
    for command in (
        "bagit.py --validate .",
        "sha256sum -c manifest-sha256.txt",
        "ocfl-validate.py",
        "verify_chain.py",
    ):
        assert command in readme
    premis = etree.parse(str(package / "data" / "events" / "premis.xml"))
    ns = {"p": "http://www.loc.gov/premis/v3"}
    assert len(premis.findall("p:event", ns)) == len(doc["events"])


def test_an_edited_payload_file_fails_bagit_and_sha256sum(package: Path) -> None:
    mets = package / "data" / "mets.xml"
    mets.write_bytes(mets.read_bytes().replace(b"GZ-1-0001", b"GZ-1-0009", 1))
    assert not bagit_ok(package)
    assert not sha256sum_ok(package)


def test_an_edited_inventory_fails_ocfl_validate_and_its_sidecar(package: Path) -> None:
    inv = next(p for p in inventories(package) if p.parent.name != "v1")
    doc = json.loads(inv.read_text())
    digest = next(iter(doc["manifest"]))
    doc["manifest"]["0" * 128] = doc["manifest"].pop(digest)  # a content file "replaced" in the record
    inv.write_text(json.dumps(doc))
    rebag(package)
    assert bagit_ok(package) and sha256sum_ok(package)
    assert _run(TOOLS / "ocfl-validate.py", inv, cwd=package).returncode == 1
    assert _run("sha512sum", "-c", "inventory.json.sha512", cwd=inv.parent).returncode == 1


def test_a_sidecar_alone_catches_a_still_valid_edit(package: Path) -> None:
    inv = next(p for p in inventories(package) if p.parent.name != "v1")
    doc = json.loads(inv.read_text())
    doc["versions"]["v1"]["message"] = "edited"  # still a valid inventory: only the sidecar can tell
    inv.write_text(json.dumps(doc))
    rebag(package)
    assert bagit_ok(package)
    assert not ocfl_ok(package)


def test_an_edited_event_fails_the_chain_script(package: Path, tmp_path: Path) -> None:
    assert chain_ok(package)
    for edit in ("outcome", "drop event", "drop link", "reorder"):
        bag = shutil.copytree(package, tmp_path / edit.replace(" ", "-") / package.name)
        path = bag / "data" / "events" / "events.json"
        doc = json.loads(path.read_text())
        if edit == "outcome":
            doc["events"][1]["canonical"]["outcome"] = "failure"
        elif edit == "drop event":  # an event removed with its link: its neighbours no longer join
            gone = doc["events"].pop(1)
            doc["links"] = [link for link in doc["links"] if link[0] != gone["id"]]
        elif edit == "drop link":
            del doc["links"][len(doc["links"]) // 2]
        else:
            first, second = doc["events"][0], doc["events"][1]
            first["hash"], second["hash"] = second["hash"], first["hash"]
        path.write_text(json.dumps(doc, ensure_ascii=False))
        rebag(bag)
        assert bagit_ok(bag), edit
        assert not chain_ok(bag), edit


def test_refusals_are_coded(home: Settings, tmp_path: Path) -> None:
    taken = tmp_path / "taken.zip"
    taken.write_bytes(b"")
    bag = simple_bag(tmp_path / "t", [("卷一", "GZ-1-0001", "纪要", b"x\n")])
    assert ingest_json(bag, "GZ")[0] == 0
    cases = {
        (REF, str(taken)): (2, "EVD001"),
        ("no-slash", str(tmp_path / "a.zip")): (2, "EVD002"),
        (REF,): (2, "EVD002"),
        ("GZ/NOPE", str(tmp_path / "b.zip")): (1, "ARC004"),
        ("--cycle", "no-such-run", str(tmp_path / "c.zip")): (1, "CHK002"),
    }
    for args, (code, error) in cases.items():
        proc = archive_cmd("evidence", *args, "--json")
        assert proc.returncode == code, (args, proc.stdout, proc.stderr)
        assert json.loads(proc.stdout)["error"]["code"] == error
        assert "Traceback" not in proc.stderr
    assert taken.read_bytes() == b""  # never overwritten
    assert not (tmp_path / "a.zip").exists() and not list(tmp_path.glob(".evidence-*"))
    with db.read_session(home) as s:
        object_dir = store_for(home).object_path(get_record(s, "GZ", "GZ-1-0001").ocfl_object_id)
    shutil.rmtree(object_dir)  # storage lost the record's object: no package pretends otherwise
    lost = archive_cmd("evidence", REF, str(tmp_path / "d.zip"), "--json")
    assert lost.returncode == 1 and json.loads(lost.stdout)["error"]["code"] == "EVD004"
    assert not (tmp_path / "d.zip").exists()


def test_premis_and_mets_on_stdout(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "t", [("卷一", "GZ-1-0001", "纪要", b"x\n")])
    assert ingest_json(bag, "GZ")[0] == 0
    premis = archive_cmd("evidence", "premis", REF)
    mets = archive_cmd("evidence", "mets", REF)
    assert premis.returncode == mets.returncode == 0
    assert etree.fromstring(premis.stdout.encode()).tag == "{http://www.loc.gov/premis/v3}premis"
    assert etree.fromstring(mets.stdout.encode()).tag == "{http://www.loc.gov/METS/}mets"


def test_cycle_package_carries_the_report_and_the_failing_records(any_home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(
        tmp_path / "transfer",
        [
            ("卷一", "GZ-1-0001", "会议纪要", "第一次会议\n".encode()),
            ("卷二", "GZ-1-0002", "通知", b"notice\n"),
        ],
    )
    assert ingest_json(bag, "GZ")[0] == 0
    [stored] = [p for p in any_home.ocfl_root.rglob("会议纪要.txt")]
    stored.chmod(0o644)
    stored.write_bytes("第一次会议（改）\n".encode())  # bit rot in one record
    check = archive_cmd("check", "--cycle", "full", "--json")
    assert check.returncode == 1, check.stderr
    run_id = json.loads(check.stdout)["run_id"]
    proc = archive_cmd("evidence", "--cycle", run_id, str(tmp_path / "cycle.zip"), "--json")
    assert proc.returncode == 0, proc.stderr
    package = unpack(tmp_path / "cycle.zip", tmp_path / "unzipped")
    assert bagit_ok(package) and sha256sum_ok(package) and ocfl_ok(package) and chain_ok(package)
    report_dir = package / "data" / "report"
    assert {p.name for p in report_dir.iterdir()} >= {
        "report.json",
        "report.csv",
        "report.html",
        "report.pdf",
    }
    report = json.loads((report_dir / "report.json").read_text())
    assert report["run_id"] == run_id and report["status"] == "fail"
    with db.read_session(any_home) as s:
        run_sha = s.execute(
            select(Event.outcome_detail).where(Event.event_type == "validation").order_by(Event.id.desc())
        ).first()
    assert run_sha is not None
    assert (
        hashlib.sha256((report_dir / "report.json").read_bytes()).hexdigest() == run_sha[0]["report_sha256"]
    )
    assert len(inventories(package)) == 2  # the failing record's object only (root + v1)
    events = json.loads((package / "data" / "events" / "events.json").read_text())["events"]
    assert any(e["canonical"]["outcome_detail"].get("run_id") == run_id for e in events)
    assert any(e["canonical"]["event_type"] == "ingestion" for e in events)  # the failing record's history
    rendered = archive_cmd("evidence", "report", run_id, "--json")
    assert rendered.returncode == 0, rendered.stderr
    pdf_sha = json.loads(rendered.stdout)["pdf_sha256"]
    assert pdf_sha == hashlib.sha256((report_dir / "report.pdf").read_bytes()).hexdigest()
    logged = [e for e in events if e["canonical"]["outcome_detail"].get("pdf_sha256")]
    assert [e["canonical"]["outcome_detail"]["pdf_sha256"] for e in logged] == [pdf_sha]
