"""The OAI-PMH repository (``/oai``) on the portal test node: every verb, every error, deleted records,
resumption, and only open records — each answer validated against the OAI-PMH 2.0 schemas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from lxml import etree

from access_portal import oai
from archive import db
from tests.access_portal import (
    SECRET,
    SECRET_CODE,
    STALE,
    STALE_CODE,
    PortalHome,
    TestClient,
    client,
    open_records,
    portal_home,
)
from tests.oai_schema import NATIVE_XSD, NS, error_code, validated

__all__ = ["client", "portal_home"]


def ident(code: str, archive: str = "GZ") -> str:
    return f"oai:pearl-node:{archive}/{quote(code, safe='')}"


def get(client: TestClient, **params: str) -> etree._Element:
    response = client.get("/oai", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    return validated(response.content)


@pytest.fixture(scope="module")
def small_pages(portal_home: PortalHome) -> Iterator[TestClient]:
    from access_portal.app import create_app

    settings = portal_home.settings.model_copy(update={"oai_page_size": 3})
    with TestClient(create_app(settings)) as c:
        yield c


def walk(client: TestClient, verb: str, **params: str) -> tuple[list[etree._Element], list[dict[str, Any]]]:
    """Every item of a list across its pages, and each page's resumptionToken attributes."""
    items: list[etree._Element] = []
    tokens: list[dict[str, Any]] = []
    root = get(client, verb=verb, **params)
    while True:
        assert error_code(root) is None, etree.tostring(root)
        part = root.find(f"o:{verb}", NS)
        assert part is not None
        items += part.findall("o:record" if verb == "ListRecords" else "o:header", NS)
        token = part.find("o:resumptionToken", NS)
        if token is None:
            return items, tokens
        tokens.append({**token.attrib, "value": token.text})
        if not token.text:
            return items, tokens
        root = get(client, verb=verb, resumptionToken=token.text)


def header_id(item: etree._Element) -> str:
    header = item if item.tag.endswith("header") else item.find("o:header", NS)
    assert header is not None
    return str(header.findtext("o:identifier", namespaces=NS))


def test_identify(client: TestClient) -> None:
    root = get(client, verb="Identify")
    identify = root.find("o:Identify", NS)
    assert identify is not None
    assert identify.findtext("o:deletedRecord", namespaces=NS) == "persistent"
    assert identify.findtext("o:granularity", namespaces=NS) == "YYYY-MM-DDThh:mm:ssZ"
    assert identify.findtext("o:baseURL", namespaces=NS) == "http://testserver/oai"
    assert "广州市档案馆" in identify.findtext("o:repositoryName", namespaces=NS, default="")
    request = root.find("o:request", NS)
    assert request is not None and request.get("verb") == "Identify"


def test_list_records_open_and_deleted_only(portal_home: PortalHome, client: TestClient) -> None:
    for prefix in ("oai_dc", "pearl_archive"):
        items, _ = walk(client, "ListRecords", metadataPrefix=prefix)
        live = {header_id(r) for r in items if r.find("o:metadata", NS) is not None}
        deleted = [r for r in items if r.find("o:header", NS).get("status") == "deleted"]
        assert live == {ident(c, a) for a, c in open_records(portal_home.settings)}
        # closed after it had been open: listed as deleted, never with its metadata
        assert [header_id(r) for r in deleted] == [ident(STALE_CODE)]
        assert deleted[0].find("o:metadata", NS) is None
        text = b"".join(etree.tostring(r) for r in items).decode()
        assert SECRET not in text and STALE not in text and ident(SECRET_CODE) not in text


def test_native_format_carries_the_archival_fields(client: TestClient) -> None:
    root = get(
        client,
        verb="GetRecord",
        metadataPrefix="pearl_archive",
        identifier=ident("GD-001-1995-永久-0001", "GD"),
    )
    rec = root.find(".//pa:record", NS)
    assert rec is not None
    assert rec.findtext("pa:archivalCode", namespaces=NS) == "GD-001-1995-永久-0001"
    archive = rec.find("pa:archive", NS)
    assert archive is not None and archive.get("code") == "GD" and archive.text == "广东省档案馆"
    assert rec.findtext("pa:title", namespaces=NS)
    assert rec.findtext("pa:url", namespaces=NS, default="").endswith(
        "/records/GD/" + quote("GD-001-1995-永久-0001", safe="")
    )
    header = root.find(".//o:header", NS)
    assert header is not None and "archive:GD" in [s.text for s in header.findall("o:setSpec", NS)]


def test_get_record_deleted_and_never_public(client: TestClient) -> None:
    root = get(client, verb="GetRecord", metadataPrefix="oai_dc", identifier=ident(STALE_CODE))
    header = root.find(".//o:header", NS)
    assert header is not None and header.get("status") == "deleted"
    assert root.find(".//o:metadata", NS) is None
    for identifier in (ident(SECRET_CODE), ident("GZ-000-NOPE"), "oai:other-node:GZ/x", "garbage"):
        root = get(client, verb="GetRecord", metadataPrefix="oai_dc", identifier=identifier)
        assert error_code(root) == "idDoesNotExist"
        request = root.find("o:request", NS)
        assert request is not None and request.get("identifier") == identifier


def test_list_metadata_formats(client: TestClient) -> None:
    root = get(client, verb="ListMetadataFormats")
    prefixes = [e.text for e in root.iterfind(".//o:metadataPrefix", NS)]
    assert prefixes == ["oai_dc", "pearl_archive"]
    schema_url = root.xpath(
        "//o:metadataFormat[o:metadataPrefix='pearl_archive']/o:schema/text()", namespaces=NS
    )
    assert schema_url == ["http://testserver/oai/pearl_archive.xsd"]
    served = client.get("/oai/pearl_archive.xsd")
    assert served.status_code == 200 and served.content == NATIVE_XSD.read_bytes()
    assert (
        error_code(get(client, verb="ListMetadataFormats", identifier=ident(SECRET_CODE))) == "idDoesNotExist"
    )
    assert error_code(get(client, verb="ListMetadataFormats", identifier=ident(STALE_CODE))) is None


def test_list_sets_per_archive_and_fonds(client: TestClient) -> None:
    root = get(client, verb="ListSets")
    specs = [e.text for e in root.iterfind(".//o:setSpec", NS)]
    assert {"archive:GD", "archive:GZ", "archive:GZ-TH"} <= set(specs)
    assert any(s and s.startswith("archive:GZ:fonds:") for s in specs)
    # the fonds of the classified record (never public) is not listed; the stale one's (public once) is
    assert "archive:GZ:fonds:099" not in specs and "archive:GZ:fonds:098" in specs
    assert error_code(get(client, verb="ListSets", resumptionToken="x")) == "badResumptionToken"


def test_sets_select(portal_home: PortalHome, client: TestClient) -> None:
    items, _ = walk(client, "ListIdentifiers", metadataPrefix="oai_dc", set="archive:GD")
    assert items and all(header_id(h).startswith("oai:pearl-node:GD/") for h in items)
    for h in items:
        assert "archive:GD" in [s.text for s in h.findall("o:setSpec", NS)]
    fonds = get(client, verb="ListIdentifiers", metadataPrefix="oai_dc", set="archive:GZ:fonds:098")
    assert [header_id(h) for h in fonds.iterfind(".//o:header", NS)] == [ident(STALE_CODE)]
    for unknown in ("archive:NOPE", "archive:GZ:fonds:NOPE", "other:thing"):
        root = get(client, verb="ListIdentifiers", metadataPrefix="oai_dc", set=unknown)
        assert error_code(root) == "noRecordsMatch"


def test_resumption_across_pages(
    portal_home: PortalHome, small_pages: TestClient, client: TestClient
) -> None:
    everything, none = walk(client, "ListIdentifiers", metadataPrefix="oai_dc")
    assert none == []  # one page at the default size: no token at all
    items, tokens = walk(small_pages, "ListRecords", metadataPrefix="pearl_archive")
    ids = [header_id(r) for r in items]
    assert ids == [header_id(h) for h in everything] and len(set(ids)) == len(ids)
    assert len(tokens) == -(-len(ids) // 3)
    assert [int(t["cursor"]) for t in tokens] == [3 * i for i in range(len(tokens))]
    assert {int(t["completeListSize"]) for t in tokens} == {len(ids)}
    assert all(t["value"] and t["expirationDate"].endswith("Z") for t in tokens[:-1])
    assert tokens[-1]["value"] is None and "expirationDate" not in tokens[-1]


def test_resumption_token_errors(portal_home: PortalHome, small_pages: TestClient) -> None:
    first = get(small_pages, verb="ListIdentifiers", metadataPrefix="oai_dc")
    token = first.findtext(".//o:resumptionToken", namespaces=NS)
    assert token
    payload, mac = token.split(".")
    forged = payload[:-2] + ("AA" if not payload.endswith("AA") else "BB") + "." + mac
    for bad in (forged, token + "x", "nonsense", "a.b.c", ""):
        root = get(small_pages, verb="ListIdentifiers", resumptionToken=bad)
        assert error_code(root) == "badResumptionToken", bad
    root = get(small_pages, verb="ListRecords", resumptionToken=token)  # issued for ListIdentifiers
    assert error_code(root) == "badResumptionToken"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    with db.read_session(portal_home.settings) as s:
        xml = oai.respond(
            portal_home.settings,
            s,
            [("verb", "ListIdentifiers"), ("resumptionToken", token)],
            "http://x/oai",
            later,
        )
    assert error_code(validated(xml.encode())) == "badResumptionToken"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "badVerb"),
        ({"verb": "Nonsense"}, "badVerb"),
        ({"verb": "ListRecords"}, "badArgument"),
        ({"verb": "Identify", "extra": "1"}, "badArgument"),
        ({"verb": "GetRecord", "metadataPrefix": "oai_dc"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "resumptionToken": "x"}, "badArgument"),
        (
            {
                "verb": "ListRecords",
                "metadataPrefix": "oai_dc",
                "from": "2020-01-01",
                "until": "2021-01-01T00:00:00Z",
            },
            "badArgument",
        ),
        (
            {"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2021-01-02", "until": "2021-01-01"},
            "badArgument",
        ),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2021-13-45"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "from": "2021-01-01T00:00:00"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai dc"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "oai_dc", "set": "a b"}, "badArgument"),
        ({"verb": "ListRecords", "metadataPrefix": "marc21"}, "cannotDisseminateFormat"),
        (
            {"verb": "GetRecord", "metadataPrefix": "marc21", "identifier": ident(STALE_CODE)},
            "cannotDisseminateFormat",
        ),
        ({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from": "2999-01-01"}, "noRecordsMatch"),
        (
            {"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "until": "1999-01-01T00:00:00Z"},
            "noRecordsMatch",
        ),
    ],
)
def test_errors(client: TestClient, params: dict[str, str], code: str) -> None:
    root = get(client, **params)
    assert error_code(root) == code
    request = root.find("o:request", NS)
    assert request is not None
    if code in ("badVerb", "badArgument"):
        assert dict(request.attrib) == {}  # the spec: no attributes after badVerb/badArgument
    else:
        assert request.get("verb") == params["verb"]


def test_repeated_arguments_and_post(client: TestClient) -> None:
    assert error_code(validated(client.get("/oai?verb=Identify&verb=Identify").content)) == "badVerb"
    repeated = client.get("/oai?verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc")
    assert error_code(validated(repeated.content)) == "badArgument"
    posted = client.post(
        "/oai",
        content=b"verb=ListIdentifiers&metadataPrefix=oai_dc",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert posted.status_code == 200
    got = validated(posted.content)
    assert [header_id(h) for h in got.iterfind(".//o:header", NS)] == [
        header_id(h)
        for h in get(client, verb="ListIdentifiers", metadataPrefix="oai_dc").iterfind(".//o:header", NS)
    ]


def test_from_until_on_the_last_public_change(client: TestClient) -> None:
    headers = list(get(client, verb="ListIdentifiers", metadataPrefix="oai_dc").iterfind(".//o:header", NS))
    stamps = sorted({str(h.findtext("o:datestamp", namespaces=NS)) for h in headers})
    first, last = stamps[0], stamps[-1]
    both = get(client, verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": first, "until": last})
    assert len(both.findall(".//o:header", NS)) == len(headers)
    after = (dt.datetime.strptime(last, "%Y-%m-%dT%H:%M:%SZ") + dt.timedelta(seconds=1)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert error_code(get(client, verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": after})) == (
        "noRecordsMatch"
    )
    day = first[:10]
    same_day = get(client, verb="ListIdentifiers", metadataPrefix="oai_dc", **{"from": day, "until": day})
    assert len(same_day.findall(".//o:header", NS)) == sum(
        1 for h in headers if str(h.findtext("o:datestamp", namespaces=NS)).startswith(day)
    )
