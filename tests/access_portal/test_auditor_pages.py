"""The auditor's workspace: fixity audit runs, 四性检测 reports, the event log and its chain, a record's
history and exports; who sees what (the role matrix) and that an auditor cannot change anything."""

from __future__ import annotations

import io
import re
import socket
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import bagit
import pytest
from lxml import etree
from sqlalchemy import select, update

from access_portal.app import create_app
from archive import db
from archive.checks import run_cycle
from archive.checks.services import list_runs
from archive.config import Settings
from archive.models import Event
from preservation.audit import run_audit
from tests.access_portal import TestClient
from tests.access_portal.staffweb import add_people, csrf_of, sign_in
from tests.e2e.helpers import ingest_json, simple_bag

REC = "/staff/records/GZ/GZ-1-0001"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Routes an auditor may post to: signing in and out, and asking for a fixity audit.
AUDITOR_MAY_POST = {"/staff/login", "/staff/logout", "/staff/audits"}


@pytest.fixture
def node(home: Settings, tmp_path: Path) -> dict[str, str]:
    """A node with two GZ records, a fixity audit of GZ, a full 四性检测 cycle, and the staff of staffweb."""
    bag = simple_bag(
        tmp_path / "bag",
        [
            ("卷一", "GZ-1-0001", "会议纪要", "第一次会议\n".encode()),
            ("卷二", "GZ-1-0002", "通知", b"notice\n"),
        ],
    )
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    audit = run_audit(home, archive="GZ")
    cycle = run_cycle(home, "full")
    add_people(home)
    with db.read_session(home) as s:
        [receipt] = list_runs(s, stage="receipt")
    return {"audit": audit.run_id, "cycle": cycle.run_id, "receipt": receipt["run_id"]}


def client_for(settings: Settings, login: str | None) -> TestClient:
    client = TestClient(create_app(settings))
    if login:
        assert sign_in(client, login).status_code == 303
    return client


def test_an_auditor_reads_every_page_and_export(home: Settings, node: dict[str, str]) -> None:
    with client_for(home, "aud") as c:
        audits = c.get("/staff/audits")
        assert audits.status_code == 200 and node["audit"] in audits.text
        run = c.get(f"/staff/audits/{node['audit']}")
        assert run.status_code == 200 and 'id="audit-failures"' in run.text
        assert c.get(f"/staff/audits/{node['audit']}/report.csv").status_code == 200
        assert c.get(f"/staff/audits/{node['audit']}/../run.json").status_code == 404

        listing = c.get("/staff/reports")
        assert node["cycle"] in listing.text and node["receipt"] in listing.text
        assert node["receipt"] in c.get("/staff/reports", params={"stage": "receipt"}).text
        assert node["cycle"] not in c.get("/staff/reports", params={"stage": "receipt"}).text
        page = c.get(f"/staff/reports/{node['cycle']}")
        assert page.status_code == 200 and "固化信息有效性检测" in page.text and 'id="item-1-1"' in page.text
        pdf = c.get(f"/staff/reports/{node['cycle']}/report.pdf")
        assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
        assert c.get(f"/staff/reports/{node['cycle']}/report.csv").text.lstrip("\ufeff").startswith("code,")
        summary = c.get("/staff/reports/summary", params={"archive": "GZ"})
        assert summary.status_code == 200 and "authenticity" in summary.text

        everything = c.get("/staff/events")
        one = c.get("/staff/events", params={"record": "GZ/GZ-1-0001"})
        ingestion = c.get("/staff/events", params={"type": "ingestion"})
        rows = lambda r: len(re.findall(r"<tr><td class=\"num\">", r.text))  # noqa: E731
        assert rows(everything) > rows(one) > 0 and rows(ingestion) < rows(everything)
        assert "urn:pearl-archive:GZ:GZ-1-0002" not in one.text
        assert c.get("/staff/events", params={"since": "not a date"}).status_code == 400
        assert 'data-ok="true"' in c.get("/staff/events/verify").text

        history = c.get(f"{REC}/history")
        assert history.status_code == 200 and "ingestion" in history.text
        premis = etree.fromstring(c.get(f"{REC}/premis.xml").content)
        assert premis.tag == "{http://www.loc.gov/premis/v3}premis"
        mets = etree.fromstring(c.get(f"{REC}/mets.xml").content)
        assert mets.get("OBJID") == "urn:pearl-archive:GZ:GZ-1-0001"
        package = c.get(f"{REC}/evidence.zip")
        assert package.status_code == 200 and package.headers["content-type"] == "application/zip"
        cycle_package = c.get(f"/staff/reports/{node['cycle']}/evidence.zip")
        assert cycle_package.status_code == 200
    for body, where in ((package.content, "record"), (cycle_package.content, "cycle")):
        folder = Path(home.home_dir) / f"unzipped-{where}"
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            zf.extractall(folder)
        [bag_dir] = list(folder.iterdir())
        assert bagit.Bag(str(bag_dir)).is_valid()
    assert not list(home.staging_dir.glob("evidence-*"))  # the temporary packages went once sent
    with db.read_session(home) as s:
        taken = s.execute(select(Event).where(Event.event_type == "dissemination")).scalars().all()
    assert {e.agent for e in taken} == {"aud"} and len(taken) == 2


def test_chain_verification_from_the_page_finds_an_edited_event(home: Settings, node: dict[str, str]) -> None:
    with db.write_session(home) as s:
        target = s.execute(select(Event.id).where(Event.event_type == "ingestion").limit(1)).scalar_one()
        s.execute(update(Event).where(Event.id == target).values(outcome="failure"))
    with client_for(home, "aud") as c:
        page = c.get("/staff/events/verify")
    assert 'data-ok="false"' in page.text and f"at event {target}" in page.text


def test_role_matrix(home: Settings, node: dict[str, str]) -> None:
    """GET answers per person: admin and auditor see all; the GZ archivist sees GZ's records and reports but
    no node-wide run nor the whole chain; the GD archivist is refused GZ's record; nobody signed in is sent
    to the sign-in page."""
    cycle, audit = node["cycle"], node["audit"]
    expected = {
        "/staff/audits": dict(anon=303, root=200, aud=200, gz=200, gd=200),
        f"/staff/audits/{audit}": dict(anon=303, root=200, aud=200, gz=200, gd=404),
        "/staff/reports": dict(anon=303, root=200, aud=200, gz=200, gd=200),
        "/staff/reports/summary": dict(anon=303, root=200, aud=200, gz=200, gd=200),
        f"/staff/reports/{cycle}": dict(anon=303, root=200, aud=200, gz=404, gd=404),
        f"/staff/reports/{node['receipt']}": dict(anon=303, root=200, aud=200, gz=200, gd=404),
        f"/staff/reports/{cycle}/report.pdf": dict(anon=303, root=200, aud=200, gz=404, gd=404),
        "/staff/events": dict(anon=303, root=200, aud=200, gz=200, gd=200),
        "/staff/events/verify": dict(anon=303, root=200, aud=200, gz=403, gd=403),
        f"{REC}/history": dict(anon=303, root=200, aud=200, gz=200, gd=403),
        f"{REC}/premis.xml": dict(anon=303, root=200, aud=200, gz=200, gd=403),
        f"{REC}/mets.xml": dict(anon=303, root=200, aud=200, gz=200, gd=403),
        "/staff/records/GZ/NOPE/premis.xml": dict(anon=303, root=404, aud=404, gz=404, gd=403),
    }
    for who in ("anon", "root", "aud", "gz", "gd"):
        with client_for(home, None if who == "anon" else who) as c:
            for path, answers in expected.items():
                got = c.get(path, follow_redirects=False).status_code
                assert got == answers[who], (who, path, got)
            if who == "gd":  # an archivist's event log holds their own archives' records only
                assert "urn:pearl-archive:GZ:" not in c.get("/staff/events").text


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "GZ", path)


def app_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path, methods) of every route, through the routers the app includes."""
    for route in routes:
        if hasattr(route, "original_router"):  # an included router (FastAPI ≥ 0.16x)
            yield from app_routes(route.original_router.routes, prefix + route.include_context.prefix)
        elif hasattr(route, "path"):
            yield prefix + route.path, set(getattr(route, "methods", None) or ())


def test_an_auditor_cannot_change_anything(home: Settings, node: dict[str, str]) -> None:
    """Every route that takes an unsafe method, in the whole app, refuses the auditor (403) with a valid CSRF
    token; only asking for a fixity audit (and signing out) goes through."""
    app = create_app(home)
    routes = [
        (method, _fill(path))
        for path, methods in app_routes(app.routes)
        for method in sorted(methods & UNSAFE)
        if path not in AUDITOR_MAY_POST and not path.startswith(("/federation", "/oai"))
    ]
    assert ("POST", "/staff/audits") not in routes and routes
    with client_for(home, "aud") as c:
        token = csrf_of(c)
        for method, path in routes:
            got = c.request(method, path, headers={"X-CSRF-Token": token}, follow_redirects=False)
            assert got.status_code in (401, 403), (method, path, got.status_code, got.text[:200])
        asked = c.post("/staff/audits", data={"archive": "GZ", "csrf_token": token}, follow_redirects=False)
        assert asked.status_code == 303
        assert (
            c.post("/staff/audits", data={"archive": "GZ"}, follow_redirects=False).status_code == 403
        )  # CSRF
    with client_for(home, "gz") as c:
        token = csrf_of(c)
        assert (
            c.post("/staff/audits", data={"archive": "", "csrf_token": token}).status_code == 403
        )  # node-wide
        assert c.post("/staff/audits", data={"archive": "GD", "csrf_token": token}).status_code == 403
    with db.read_session(home) as s:
        [requested] = s.execute(
            select(Event).where(Event.event_type == "fixity check", Event.agent == "aud")
        ).scalars()
    assert requested.object_id == "GZ" and requested.outcome_detail["requested"] is True


def test_a_requested_audit_with_the_broker_down_is_a_503_and_logs_nothing(home: Settings) -> None:
    add_people(home)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = home.model_copy(update={"broker_url": f"redis://127.0.0.1:{port}/0"})
    with client_for(down, "aud") as c:
        token = csrf_of(c)
        answer = c.post("/staff/audits", data={"archive": "GZ", "csrf_token": token}, follow_redirects=False)
    assert answer.status_code == 503
    with db.read_session(home) as s:
        assert not s.execute(select(Event).where(Event.event_type == "fixity check")).scalars().all()
