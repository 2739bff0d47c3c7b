"""Validation of OAI-PMH answers against the published schemas (tests/data/oai, see SOURCES.md), offline."""

from __future__ import annotations

import functools
from pathlib import Path

from lxml import etree

DATA = Path(__file__).resolve().parent / "data" / "oai"
NATIVE_XSD = Path(__file__).resolve().parents[1] / "access_portal" / "static" / "oai" / "pearl_archive.xsd"
NS = {
    "o": "http://www.openarchives.org/OAI/2.0/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    "pa": "urn:pearl-archive:oai:record:1",
}


@functools.cache
def schema() -> etree.XMLSchema:
    """OAI-PMH.xsd with every metadata format's schema loaded too, so ``metadata`` (``processContents=
    "strict"``) is validated against oai_dc.xsd or pearl_archive.xsd."""
    wrapper = f"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:test:wrapper">
      <xs:import namespace="http://www.openarchives.org/OAI/2.0/" schemaLocation="{(DATA / "OAI-PMH.xsd").as_uri()}"/>
      <xs:import namespace="http://www.openarchives.org/OAI/2.0/oai_dc/"
                 schemaLocation="{(DATA / "oai_dc.xsd").as_uri()}"/>
      <xs:import namespace="urn:pearl-archive:oai:record:1" schemaLocation="{NATIVE_XSD.as_uri()}"/>
    </xs:schema>"""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.fromstring(wrapper.encode(), parser, base_url=str(DATA) + "/"))


def validated(xml: bytes) -> etree._Element:
    """The parsed answer; fails the test with the schema's messages when it does not validate."""
    root = etree.fromstring(xml, etree.XMLParser(no_network=True, resolve_entities=False))
    s = schema()
    if not s.validate(root):
        raise AssertionError(f"not valid OAI-PMH: {s.error_log}\n{xml[:2000]!r}")
    # the root must be the OAI-PMH element itself (the wrapper's imports also allow a bare dc or record)
    assert root.tag == "{http://www.openarchives.org/OAI/2.0/}OAI-PMH"
    return root


def error_code(root: etree._Element) -> str | None:
    err = root.find("o:error", NS)
    return None if err is None else str(err.get("code"))
