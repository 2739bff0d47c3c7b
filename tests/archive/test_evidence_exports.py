"""PREMIS 3 and METS exports of a record: METS valid against the METS schema, every file's checksum and content
path true to the OCFL object, PREMIS events in chain order with their links and the elements in PREMIS 3's
order."""

from __future__ import annotations

import copy
import hashlib
from importlib import resources
from pathlib import Path

import pytest
from lxml import etree

from archive import db
from archive.config import Settings
from archive.evidence import record_events, record_mets, record_premis
from archive.home import store_for
from archive.services import get_record
from tests.e2e.helpers import ingest_json, simple_bag

DATA = Path(__file__).resolve().parents[1] / "data" / "mets"
NS = {
    "m": "http://www.loc.gov/METS/",
    "p": "http://www.loc.gov/premis/v3",
    "x": "http://www.w3.org/1999/xlink",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
    "dc": "http://purl.org/dc/elements/1.1/",
}
#: PREMIS 3's eventComplexType, in order.
EVENT_ORDER = [
    "eventIdentifier",
    "eventType",
    "eventDateTime",
    "eventDetailInformation",
    "eventOutcomeInformation",
    "linkingAgentIdentifier",
    "linkingObjectIdentifier",
]


class _LocalXlink(etree.Resolver):
    def resolve(self, url: str, pubid: str | None, context: object) -> object:
        if url.endswith("xlink.xsd"):
            return self.resolve_filename(str(DATA / "xlink.xsd"), context)
        return None


def mets_schema() -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_LocalXlink())
    source = resources.files("metsrw").joinpath("resources/mets.xsd")
    with resources.as_file(source) as path:
        return etree.XMLSchema(etree.parse(str(path), parser))


@pytest.fixture
def record_ref(home: Settings, tmp_path: Path) -> tuple[str, str]:
    bag = simple_bag(tmp_path / "bag", [("卷一", "GZ-1-0001", "会议纪要", "第一次会议\n".encode())])
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    return "GZ", "GZ-1-0001"


def test_mets_is_valid_and_true_to_the_object(home: Settings, record_ref: tuple[str, str]) -> None:
    with db.read_session(home) as s:
        record = get_record(s, *record_ref)
        mets = etree.fromstring(record_mets(home, s, record))
        object_id, title = record.ocfl_object_id, record.title
    checked = copy.deepcopy(mets)
    # The embedded PREMIS is processed laxly by the METS schema, but its xsi:type values need the PREMIS schema
    # to resolve, which is not shipped: the PREMIS part is checked on its own below.
    for el in checked.iterfind(".//p:object", NS):
        del el.attrib[f"{{{NS['xsi']}}}type"]
    schema = mets_schema()
    assert schema.validate(checked), schema.error_log
    assert mets.get("OBJID") == object_id and mets.get("TYPE") == "AIP"
    assert mets.findtext(".//m:dmdSec//dc:title", namespaces=NS) == title
    base = store_for(home).object_path(object_id)
    files = mets.findall(".//m:fileSec//m:file", NS)
    assert {f.getparent().get("USE") for f in files} == {"original", "metadata"}
    for f in files:
        content = base / f.find("m:FLocat", NS).get(f"{{{NS['x']}}}href")
        assert hashlib.sha512(content.read_bytes()).hexdigest() == f.get("CHECKSUM")
    pointed = {p.get("FILEID") for p in mets.iterfind(".//m:structMap//m:fptr", NS)}
    assert pointed == {f.get("ID") for f in files}
    assert mets.find(".//m:digiprovMD/m:mdWrap/m:xmlData/p:premis", NS) is not None


def test_premis_lists_the_record_its_files_and_its_events_in_chain_order(
    home: Settings, record_ref: tuple[str, str]
) -> None:
    with db.read_session(home) as s:
        record = get_record(s, *record_ref)
        premis = etree.fromstring(record_premis(s, record))
        events = record_events(s, record)
        chain = [(e.identifier, e.prev_hash, e.hash) for e in events]
        digests = {f.sha512 for f in record.files}
    assert premis.get("version") == "3.0"
    objects = premis.findall("p:object", NS)
    assert [o.get(f"{{{NS['xsi']}}}type") for o in objects] == ["premis:intellectualEntity", "premis:file"]
    assert {d.text for d in premis.iterfind(".//p:fixity/p:messageDigest", NS)} >= digests
    children = [etree.QName(c).localname for c in premis]
    assert children == sorted(children, key=["object", "event", "agent"].index)  # PREMIS 3's order
    found = premis.findall("p:event", NS)
    assert [e.findtext("p:eventIdentifier/p:eventIdentifierValue", namespaces=NS) for e in found] == [
        c[0] for c in chain
    ]
    for el, (_, prev_hash, this_hash) in zip(found, chain, strict=True):
        names = [etree.QName(c).localname for c in el]
        assert names == sorted(names, key=EVENT_ORDER.index)
        details = " ".join(d.text or "" for d in el.iterfind(".//p:eventDetail", NS))
        assert prev_hash in details and this_hash in details
    agents = {a.findtext("p:agentName", namespaces=NS) for a in premis.iterfind("p:agent", NS)}
    assert agents == {e.agent for e in events}
