"""PREMIS 3 and METS documents of a record, for auditors and evidence packages.

``premis_document`` lists the record (a PREMIS intellectual entity), each of its files (PREMIS ``file``
objects with their fixity and format), every event about it with its place in the hash chain, and the
agents. ``mets_document`` describes the record's AIP, its OCFL object: Dublin Core description, the PREMIS
document as digital provenance, every file of the head version with its checksum and its content path in
the object, and one structural map.

METS is written with lxml rather than ``metsrw``: metsrw is AGPL-3.0 (this project is Apache-2.0 and the
portal serves these documents over a network) and its writer follows Archivematica's METS profile; the
document here is plain METS 1.x, read back in the tests.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from lxml import etree

from archive.events import timestamp
from archive.models import Event, File, Record

PREMIS_NS = "http://www.loc.gov/premis/v3"
METS_NS = "http://www.loc.gov/METS/"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DC_NS = "http://purl.org/dc/elements/1.1/"
PREMIS_LOCATION = "http://www.loc.gov/premis/v3 https://www.loc.gov/standards/premis/premis.xsd"
METS_LOCATION = "http://www.loc.gov/METS/ https://www.loc.gov/standards/mets/mets.xsd"
SOFTWARE = "pearl-archive"

_P = f"{{{PREMIS_NS}}}"
_M = f"{{{METS_NS}}}"


def record_ref(record: Record) -> str:
    return f"{record.archive.code}/{record.archival_code}"


def agent_type(event: Event) -> str:
    """``person`` for staff actions (their events say so), ``software`` for everything else."""
    return str((event.outcome_detail or {}).get("agent_type") or "software")


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = text
    return el


def _identifier(parent: etree._Element, kind: str, id_type: str, value: str) -> None:
    ident = _sub(parent, f"{_P}{kind}Identifier")
    _sub(ident, f"{_P}{kind}IdentifierType", id_type)
    _sub(ident, f"{_P}{kind}IdentifierValue", value)


def _premis_file(root: etree._Element, record: Record, f: File) -> None:
    obj = _sub(root, f"{_P}object", **{f"{{{XSI_NS}}}type": "premis:file"})
    _identifier(obj, "object", "OCFL logical path", f"{record.ocfl_object_id}#{f.logical_path}")
    chars = _sub(obj, f"{_P}objectCharacteristics")
    _sub(chars, f"{_P}compositionLevel", "0")
    for algorithm, value in (("SHA-256", f.sha256), ("SHA-512", f.sha512)):
        fixity = _sub(chars, f"{_P}fixity")
        _sub(fixity, f"{_P}messageDigestAlgorithm", algorithm)
        _sub(fixity, f"{_P}messageDigest", value)
    _sub(chars, f"{_P}size", str(f.size))
    fmt = _sub(chars, f"{_P}format")
    designation = _sub(fmt, f"{_P}formatDesignation")
    _sub(designation, f"{_P}formatName", f.format_name or f.mime or "unknown")
    if f.format_version:
        _sub(designation, f"{_P}formatVersion", f.format_version)
    if f.puid:
        registry = _sub(fmt, f"{_P}formatRegistry")
        _sub(registry, f"{_P}formatRegistryName", "PRONOM")
        _sub(registry, f"{_P}formatRegistryKey", f.puid)
    _sub(obj, f"{_P}originalName", f.bag_path or f.logical_path)
    if f.derived_from_id is not None:
        rel = _sub(obj, f"{_P}relationship")
        _sub(rel, f"{_P}relationshipType", "derivation")
        _sub(rel, f"{_P}relationshipSubType", "is derived from")
        related = _sub(rel, f"{_P}relatedObjectIdentifier")
        _sub(related, f"{_P}relatedObjectIdentifierType", "catalogue file id")
        _sub(related, f"{_P}relatedObjectIdentifierValue", str(f.derived_from_id))


def _premis_event(root: etree._Element, ev: Event) -> None:
    el = _sub(root, f"{_P}event")
    _identifier(el, "event", "UUID", ev.identifier)
    _sub(el, f"{_P}eventType", ev.event_type)
    _sub(el, f"{_P}eventDateTime", timestamp(ev.occurred_at))
    if ev.detail:
        _sub(_sub(el, f"{_P}eventDetailInformation"), f"{_P}eventDetail", ev.detail)
    chain = f"event log position {ev.id}; prev_hash {ev.prev_hash}; hash {ev.hash}"
    _sub(_sub(el, f"{_P}eventDetailInformation"), f"{_P}eventDetail", chain)
    outcome = _sub(el, f"{_P}eventOutcomeInformation")
    _sub(outcome, f"{_P}eventOutcome", ev.outcome)
    if ev.outcome_detail:
        note = json.dumps(ev.outcome_detail, ensure_ascii=False, sort_keys=True)
        _sub(_sub(outcome, f"{_P}eventOutcomeDetail"), f"{_P}eventOutcomeDetailNote", note)
    agent = _sub(el, f"{_P}linkingAgentIdentifier")
    _sub(agent, f"{_P}linkingAgentIdentifierType", "local")
    _sub(agent, f"{_P}linkingAgentIdentifierValue", ev.agent)
    _sub(
        agent, f"{_P}linkingAgentRole", "executing program" if agent_type(ev) == "software" else "implementer"
    )
    obj = _sub(el, f"{_P}linkingObjectIdentifier")
    _sub(obj, f"{_P}linkingObjectIdentifierType", ev.object_type)
    _sub(obj, f"{_P}linkingObjectIdentifierValue", ev.object_id)


def premis_element(
    record: Record | None, events: Sequence[Event], *, subject: str | None = None
) -> etree._Element:
    """The ``premis:premis`` element: the record and its files (when given), the events, their agents."""
    root = etree.Element(f"{_P}premis", {"version": "3.0"}, nsmap={"premis": PREMIS_NS, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", PREMIS_LOCATION)
    entity = _sub(root, f"{_P}object", **{f"{{{XSI_NS}}}type": "premis:intellectualEntity"})
    if record is not None:
        _identifier(entity, "object", "OCFL object id", record.ocfl_object_id)
        _identifier(entity, "object", "archival code (档号)", record_ref(record))
        for f in record.files:
            _premis_file(root, record, f)
    else:
        _identifier(entity, "object", "local", subject or "events")
    agents: dict[str, str] = {}
    for ev in events:
        _premis_event(root, ev)
        agents.setdefault(ev.agent, agent_type(ev))
    for name, kind in agents.items():
        agent = _sub(root, f"{_P}agent")
        _identifier(agent, "agent", "local", name)
        _sub(agent, f"{_P}agentName", name)
        _sub(agent, f"{_P}agentType", kind)
    return root


def premis_document(record: Record | None, events: Sequence[Event], *, subject: str | None = None) -> bytes:
    """A PREMIS 3 document (UTF-8 XML) of the record, its files and these events (in chain order)."""
    return etree.tostring(
        premis_element(record, events, subject=subject),
        xml_declaration=True,
        encoding="UTF-8",
        pretty_print=True,
    )


def _content_paths(inventory: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Logical path of the head version → (sha512, first content path in the object)."""
    head = inventory["versions"][inventory["head"]]["state"]
    manifest = inventory["manifest"]
    return {logical: (digest, manifest[digest][0]) for digest, paths in head.items() for logical in paths}


def mets_document(record: Record, inventory: dict[str, Any], events: Sequence[Event]) -> bytes:
    """METS of the record's AIP (its OCFL object at the inventory's head version)."""
    root = etree.Element(
        f"{_M}mets",
        nsmap={"mets": METS_NS, "xlink": XLINK_NS, "xsi": XSI_NS, "dc": DC_NS, "premis": PREMIS_NS},
        OBJID=record.ocfl_object_id,
        LABEL=record.title,
        TYPE="AIP",
    )
    root.set(f"{{{XSI_NS}}}schemaLocation", METS_LOCATION)
    created = str(inventory["versions"][inventory["head"]].get("created") or "")
    hdr = _sub(root, f"{_M}metsHdr", CREATEDATE=created) if created else _sub(root, f"{_M}metsHdr")
    agent = _sub(hdr, f"{_M}agent", ROLE="CREATOR", TYPE="OTHER", OTHERTYPE="SOFTWARE")
    _sub(agent, f"{_M}name", SOFTWARE)
    _sub(hdr, f"{_M}altRecordID", record_ref(record), TYPE="DH")  # 档号
    dmd = _sub(root, f"{_M}dmdSec", ID="dmd-1")
    dc = _sub(_sub(dmd, f"{_M}mdWrap", MDTYPE="DC"), f"{_M}xmlData")
    for tag, value in (
        ("identifier", record_ref(record)),
        ("title", record.title),
        ("creator", record.creator),
        ("date", record.date_text),
        ("description", record.description),
        ("subject", record.keywords),
        ("language", record.language),
        ("rights", record.access_status),
    ):
        if value:
            _sub(dc, f"{{{DC_NS}}}{tag}", value)
    amd = _sub(root, f"{_M}amdSec", ID="amd-1")
    prov = _sub(amd, f"{_M}digiprovMD", ID="premis-1")
    _sub(_sub(prov, f"{_M}mdWrap", MDTYPE="PREMIS"), f"{_M}xmlData").append(premis_element(record, events))
    by_path = {f.logical_path: f for f in record.files}
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for logical, (sha512, content) in sorted(_content_paths(inventory).items()):
        f = by_path.get(logical)
        groups.setdefault(f.role if f else "metadata", []).append((logical, sha512, content))
    file_sec = _sub(root, f"{_M}fileSec")
    pointers: list[tuple[str, str]] = []
    for use, entries in sorted(groups.items()):
        grp = _sub(file_sec, f"{_M}fileGrp", USE=use)
        for logical, sha512, content in entries:
            file_id = f"file-{len(pointers) + 1}"
            attrs = {"ID": file_id, "ADMID": "amd-1", "CHECKSUM": sha512, "CHECKSUMTYPE": "SHA-512"}
            f = by_path.get(logical)
            if f is not None:
                attrs["SIZE"] = str(f.size)
                if f.mime:
                    attrs["MIMETYPE"] = f.mime
            el = _sub(grp, f"{_M}file", **attrs)
            loc = _sub(el, f"{_M}FLocat", LOCTYPE="OTHER", OTHERLOCTYPE="OCFL content path")
            loc.set(f"{{{XLINK_NS}}}href", content)
            loc.set(f"{{{XLINK_NS}}}title", logical)
            pointers.append((file_id, logical))
    struct = _sub(root, f"{_M}structMap", TYPE="logical")
    div = _sub(struct, f"{_M}div", TYPE="record", LABEL=record.title, DMDID="dmd-1", ADMID="amd-1")
    for file_id, logical in pointers:
        _sub(_sub(div, f"{_M}div", TYPE="file", LABEL=logical), f"{_M}fptr", FILEID=file_id)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def events_json(events: Iterable[Event]) -> list[dict[str, Any]]:
    """Events as the chain hashes them (``canonical``), with their place in the chain."""
    return [
        {
            "id": ev.id,
            "record_id": ev.record_id,
            "prev_hash": ev.prev_hash,
            "hash": ev.hash,
            "canonical": {
                "identifier": ev.identifier,
                "event_type": ev.event_type,
                "occurred_at": timestamp(ev.occurred_at),
                "outcome": ev.outcome,
                "detail": ev.detail,
                "outcome_detail": ev.outcome_detail or {},
                "agent": ev.agent,
                "object_type": ev.object_type,
                "object_id": ev.object_id,
                "transfer_id": ev.transfer_id,
            },
        }
        for ev in events
    ]
