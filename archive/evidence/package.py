"""Evidence packages: a zipped BagIt bag an outside auditor re-verifies with standard tools alone.

    summary = write_package(settings, session, out, Contents(title=..., events=..., object_ids=...))

The bag (one top folder inside the zip, named after the package) holds, under ``data/``:

* ``report/`` — the 四性检测 report(s) as JSON, HTML, PDF and CSV when the caller has them;
* ``events/events.json`` — every relevant event as the chain hashes it, with ``prev_hash`` and ``hash``, and the
  links (id, prev_hash, hash) of every event from the first relevant one up to the chain head at export time;
  ``events/premis.xml`` — the same events as PREMIS 3;
* ``ocfl/<object path>/`` — the inventories (root and every version) of the OCFL objects concerned, each with
  its ``.sha512`` sidecar, at their paths in the storage root;
* ``mets.xml`` (for a record), ``verify_chain.py`` (the chain recomputation, standard library only), and
  ``README.md`` (zh + en) saying how to re-verify it all with ``bagit.py --validate``, ``sha256sum -c``,
  ``ocfl-validate.py`` and ``python3 data/verify_chain.py``.

The zip is written beside ``out`` and linked into place, so a crash never leaves half a package under the
name asked for; an existing ``out`` is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from archive.config import Settings
from archive.events import GENESIS
from archive.evidence.errors import OutputExists
from archive.evidence.exports import events_json, premis_document
from archive.home import store_for
from archive.models import ChainHead, Event
from archive.storage import fsync_dir, object_relpath

SOFTWARE = "pearl-archive evidence 0.1"
ALGORITHMS = ("sha256", "sha512")


@dataclass
class Contents:
    """What goes into one package, gathered by the caller (a record's or a check cycle's front end)."""

    name: str  # the bag's folder name inside the zip, e.g. evidence-GZ-GZ·2020-0001
    title: str  # one line for bag-info.txt and the README, e.g. "GZ/GZ·2020-0001"
    events: Sequence[Event]
    object_ids: Sequence[str] = ()
    files: dict[str, bytes] = field(default_factory=dict)  # more payload, path under data/ → bytes


@dataclass
class PackageSummary:
    path: Path
    sha256: str
    size: int
    events: int
    links: int
    objects: int
    head_event_id: int
    head_hash: str
    payload: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.size,
            "events": self.events,
            "links": self.links,
            "objects": self.objects,
            "head_event_id": self.head_event_id,
            "head_hash": self.head_hash,
            "payload": self.payload,
        }


def chain_excerpt(session: Session, events: Sequence[Event]) -> dict[str, Any]:
    """The events with the chain links from the first of them up to the head (what verify_chain.py reads)."""
    head = session.get(ChainHead, 1)
    last_id, last_hash = (head.last_event_id, head.last_hash) if head else (0, GENESIS)
    first = min((ev.id for ev in events), default=last_id + 1)
    links = [
        [row.id, row.prev_hash, row.hash]
        for row in session.execute(
            select(Event.id, Event.prev_hash, Event.hash).where(Event.id >= first).order_by(Event.id)
        )
    ]
    return {
        "format": "pearl-archive event chain excerpt 1",
        "hash_rule": "sha256(prev_hash + '\\n' + canonical JSON: sorted keys, UTF-8, separators ',' ':')",
        "genesis": GENESIS,
        "head": {"last_event_id": last_id, "last_hash": last_hash},
        "links": links,
        "events": events_json(sorted(events, key=lambda ev: ev.id)),
    }


def _excerpt_json(excerpt: dict[str, Any]) -> bytes:
    """The excerpt as JSON, readable: the events indented, the links one per line (there may be millions)."""
    links = excerpt["links"]
    head = {k: v for k, v in excerpt.items() if k != "links"}
    text = json.dumps(head, ensure_ascii=False, indent=1)
    lines = ",\n".join(json.dumps(link) for link in links)
    return (text[: text.rindex("}")].rstrip() + f',\n "links": [\n{lines}\n ]\n}}\n').encode("utf-8")


def _inventories(settings: Settings, object_ids: Sequence[str]) -> dict[str, bytes]:
    """Every inventory.json (root and per version) and sidecar of these objects, keyed by payload path."""
    store = store_for(settings)
    found: dict[str, bytes] = {}
    for oid in object_ids:
        base = store.object_path(oid)
        rel = PurePosixPath("ocfl") / object_relpath(oid)
        for folder in [base, *sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("v"))]:
            for name in ("inventory.json", "inventory.json.sha512"):
                source = folder / name
                if source.is_file():
                    found[str(rel / folder.relative_to(base) / name)] = source.read_bytes()
    return found


def _readme(contents: Contents, inventories: Sequence[str], excerpt: dict[str, Any]) -> bytes:
    lines = []
    for path in inventories:
        if path.endswith("/inventory.json"):
            lines.append(f"    ocfl-validate.py '{path}'")
            lines.append(
                f"    (cd '{path.removesuffix('/inventory.json')}' && sha512sum -c inventory.json.sha512)"
            )
    ocfl = "\n".join(lines) or "    (no OCFL objects in this package / 本包不含 OCFL 对象)"
    head = excerpt["head"]
    text = README.format(
        title=contents.title,
        name=contents.name,
        ocfl=ocfl,
        events=len(excerpt["events"]),
        head_id=head["last_event_id"],
        head_hash=head["last_hash"],
    )
    return text.encode("utf-8")


def _write_bag(bag: Path, contents: Contents, payload: dict[str, bytes]) -> None:
    data = bag / "data"
    manifests: dict[str, list[str]] = {a: [] for a in ALGORITHMS}
    total = 0
    for rel, body in sorted(payload.items()):
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        total += len(body)
        for a in ALGORITHMS:
            manifests[a].append(f"{hashlib.new(a, body).hexdigest()}  data/{rel}\n")
    tags = {
        "bagit.txt": "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n",
        "bag-info.txt": (
            f"Bagging-Date: {dt.datetime.now(dt.UTC).date().isoformat()}\n"
            f"Bag-Software-Agent: {SOFTWARE}\n"
            f"External-Description: 电子档案证据包 / evidence package: {contents.title}\n"
            f"External-Identifier: {contents.name}\n"
            f"Payload-Oxum: {total}.{len(payload)}\n"
        ),
        **{f"manifest-{a}.txt": "".join(lines) for a, lines in manifests.items()},
    }
    for name, text in tags.items():
        (bag / name).write_text(text, encoding="utf-8")
    tag_lines = "".join(
        f"{hashlib.sha256((bag / name).read_bytes()).hexdigest()}  {name}\n" for name in sorted(tags)
    )
    (bag / "tagmanifest-sha256.txt").write_text(tag_lines, encoding="utf-8")


def _zip(bag: Path, out: Path) -> None:
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(bag.rglob("*")):
            if path.is_file():
                zf.write(path, str(PurePosixPath(bag.name) / path.relative_to(bag).as_posix()))


def write_package(settings: Settings, session: Session, out: Path, contents: Contents) -> PackageSummary:
    """Write the evidence bag of ``contents`` as the zip ``out`` (refused when ``out`` exists)."""
    out = out.resolve()
    if out.exists():
        raise OutputExists(path=str(out))
    excerpt = chain_excerpt(session, contents.events)
    inventories = _inventories(settings, contents.object_ids)
    script = resources.files("archive.evidence").joinpath("verify_chain.py").read_bytes()
    payload: dict[str, bytes] = {
        **contents.files,
        **inventories,
        "events/events.json": _excerpt_json(excerpt),
        "events/premis.xml": premis_document(None, contents.events, subject=contents.title),
        "verify_chain.py": script,
    }
    payload["README.md"] = _readme(contents, [f"data/{p}" for p in sorted(inventories)], excerpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".evidence-", dir=out.parent) as tmp:
        bag = Path(tmp) / contents.name
        _write_bag(bag, contents, payload)
        partial = Path(tmp) / "package.zip"
        _zip(bag, partial)
        with open(partial, "rb") as fh:
            os.fsync(fh.fileno())
        try:
            os.link(partial, out)  # atomic, and never replaces a file that appeared meanwhile
        except FileExistsError:
            raise OutputExists(path=str(out)) from None
        fsync_dir(out.parent)
    digest = hashlib.sha256()
    with open(out, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return PackageSummary(
        path=out,
        sha256=digest.hexdigest(),
        size=out.stat().st_size,
        events=len(excerpt["events"]),
        links=len(excerpt["links"]),
        objects=len(contents.object_ids),
        head_event_id=excerpt["head"]["last_event_id"],
        head_hash=excerpt["head"]["last_hash"],
        payload=sorted(payload),
    )


def unpack(zip_path: Path, into: Path) -> Path:
    """Unzip a package into ``into``; the bag's folder (for tests and the docs' examples)."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(into)
        top = {PurePosixPath(n).parts[0] for n in zf.namelist()}
    [name] = top
    return into / name


README = """\
# 电子档案证据包 / Evidence package: {title}

本包为 BagIt 包（RFC 8493），由 pearl-archive 导出，供外部审计员独立复核，无需访问档案系统。
This package is a BagIt bag (RFC 8493) exported by pearl-archive for outside auditors, who can re-verify it
with standard tools alone, without access to the archive.

## 内容 / Contents

- `data/report/` — 四性检测报告（JSON、HTML、PDF、CSV，如有） / the 四性检测 (DA/T 70-2018) report(s), if any
- `data/events/events.json` — {events} 个相关事件（含链接 prev_hash、hash）及从第一个事件到导出时链头的全部链接 /
  the {events} relevant events as hashed (with prev_hash and hash) and every chain link from the first of them
  up to the chain head at export time
- `data/events/premis.xml` — 同一批事件的 PREMIS 3 XML / the same events as PREMIS 3 XML
- `data/ocfl/` — 相关 OCFL 对象的清单（inventory.json）及其 .sha512 校验文件 / the OCFL inventories and
  their sidecars
- `data/mets.xml` — 档案信息包的 METS（仅单件档案） / METS of the AIP (record packages only)
- `data/verify_chain.py` — 事件链重算脚本（仅用 Python 标准库） / the chain recomputation script (Python
  standard library only)

## 如何复核 / How to re-verify

先解压 / First unzip:

    unzip {name}.zip && cd {name}

1. 包的完整性 / the bag itself (PyPI `bagit`):

    bagit.py --validate .

2. 每个文件的 SHA-256 / every file's SHA-256 (GNU coreutils):

    sha256sum -c manifest-sha256.txt

3. OCFL 清单：每份清单符合 OCFL 1.1，且与其 .sha512 校验文件相符 / the OCFL inventories: each is a valid
   OCFL 1.1 inventory (PyPI `ocfl-py`) and matches its sidecar (GNU coreutils):

{ocfl}

4. 事件链 / the event chain: 重算每个事件的哈希并检查链接 / recomputes every event's hash and checks the links:

    python3 data/verify_chain.py

导出时链头为事件 {head_id}，哈希 {head_hash}。档案系统中该事件的哈希应与此相同（`archive events verify --json`
复核整条链）。 / At export the chain head was event {head_id} with hash {head_hash}; the archive's own event
log must hold that hash at that event (`archive events verify --json` re-checks the whole chain there).

任何一步失败即说明包在导出后被改动。 / A failure at any step means the package changed after it was exported.
"""
