"""Per-file checks that read content: present and whole, fixity, opens and renders, encryption, format.

One pass per file (:func:`examine`), run on a bounded thread pool by :mod:`archive.checks.run`; external
tools (``pdftoppm`` to render a PDF page, ``ffprobe`` for audio and video) run as child processes with
``ARCHIVE_TOOL_TIMEOUT``. Findings are keyed by the DA/T 70 item they belong to.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import stat
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from archive.checks.subjects import FileView
from archive.digests import hash_file

#: Files up to this size are read once: the bytes hashed are the bytes the opener looks at.
SMALL = 1 << 16
PDF_MIMES = frozenset({"application/pdf"})
ZIP_OFFICE = {
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "[Content_Types].xml",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "[Content_Types].xml",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "[Content_Types].xml",
    "application/vnd.oasis.opendocument.text": "mimetype",
    "application/vnd.oasis.opendocument.spreadsheet": "mimetype",
    "application/vnd.oasis.opendocument.presentation": "mimetype",
    "application/ofd": "OFD.xml",
}
OLE_OFFICE = frozenset(
    {
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/x-ole-storage",
    }
)
OLE_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: Archive formats whose compression is not openly specified (or not meant for long-term keeping).
PROPRIETARY = frozenset(
    {
        "application/x-rar",
        "application/vnd.rar",
        "application/x-rar-compressed",
        "application/x-ace-compressed",
    }
)
PROPRIETARY_PUIDS = frozenset({"x-fmt/264", "fmt/411", "fmt/613", "x-fmt/410"})


@dataclass
class Findings:
    """What one file showed, keyed by item code; ``opened`` False when no opener applies (n/a)."""

    by_item: dict[str, list[str]] = field(default_factory=dict)
    opened: bool = False

    def add(self, code: str, detail: str) -> None:
        self.by_item.setdefault(code, []).append(detail)


def _kind(f: FileView) -> str | None:
    mime = (f.mime or "").split(";")[0].strip().lower()
    if mime in PDF_MIMES or f.path.lower().endswith(".pdf"):
        return "pdf"
    if mime.startswith("image/"):
        return "image"
    if mime.startswith(("audio/", "video/")):
        return "av"
    if mime in ZIP_OFFICE:
        return "zip-office"
    if mime in OLE_OFFICE:
        return "ole-office"
    if mime.startswith("text/") or mime in ("application/xml", "application/json"):
        return "text"
    return None


def examine(
    f: FileView, *, rehash: bool, accepted: frozenset[str], timeout: float, probed: bool = False
) -> Findings:
    """``probed``: ``f.properties`` are what the ingest's identification found on these very bytes (at
    receipt), so a PDF is not opened a second time to learn its page count and encryption."""
    out = Findings()
    loc = f.location
    if loc is None:
        out.add("1-14", "not in the object's head version")
        return out
    try:
        st = os.stat(loc)
    except OSError:
        st = None
    if st is None or not stat.S_ISREG(st.st_mode):
        out.add("2-5", "file missing from storage")
        return out
    actual = st.st_size
    if actual != f.size:
        out.add("1-10", f"size {actual}, recorded {f.size}")
        if actual < f.size:
            out.add("2-5", f"truncated: {actual} of {f.size} bytes")
    mime = (f.mime or "").split(";")[0].strip().lower()
    kind = _kind(f)
    whole: bytes | None = None  # a small text file's bytes, read once for its digest and its encoding
    if rehash and "sha512" in f.digests:
        if kind == "text" and actual <= SMALL:
            with loc.open("rb") as fh:
                whole = fh.read()
            got = hashlib.sha512(whole).hexdigest()
        else:
            got = hash_file(loc, ("sha512",))[1]["sha512"]
        if got != f.digests["sha512"]:
            out.add("1-1", f"sha512 {got[:16]}…, recorded {f.digests['sha512'][:16]}…")
    if accepted and mime not in accepted and (f.puid or "") not in accepted:
        out.add("3-3", f"format {f.puid or '?'} ({mime or 'unknown'}) not on the accepted list")
    if mime in PROPRIETARY or (f.puid or "") in PROPRIETARY_PUIDS:
        out.add("3-4", f"proprietary compression ({f.puid or mime})")
    if kind is None:
        return out
    out.opened = True
    try:
        if kind == "pdf":
            _pdf(loc, f, out, timeout, probed)
        elif kind == "image":
            _image(loc, out)
        elif kind == "av":
            _av(loc, out, timeout)
        elif kind == "zip-office":
            _zip_office(loc, ZIP_OFFICE[mime], out)
        elif kind == "ole-office":
            with loc.open("rb") as fh:
                if fh.read(8) != OLE_MAGIC:
                    out.add("3-2", "not an OLE compound document")
        else:
            _text(loc, out, whole)
    except subprocess.TimeoutExpired:
        out.add("3-2", f"no answer within {timeout:g} s")
    except OSError as exc:
        out.add("3-2", f"cannot read: {exc}")
    return out


def _probed_pdf(f: FileView) -> tuple[int, bool] | None:
    """(pages, encrypted) as the ingest's own pikepdf probe found them (``ingest.identify``: the same
    library on the same bytes, moments before), when it opened the file; None otherwise."""
    pages, encrypted = f.properties.get("pages"), f.properties.get("encrypted")
    if isinstance(pages, int) and isinstance(encrypted, bool):
        return pages, encrypted
    return None


def _pdf(loc: Path, f: FileView, out: Findings, timeout: float, probed: bool) -> None:
    facts = _probed_pdf(f) if probed else None
    if probed and f.properties.get("encrypted") is True and f.properties.get("error") == "password required":
        out.add("3-4", "PDF is encrypted (password required)")
        return
    if facts is not None:
        pages, encrypted = facts
        if encrypted:
            out.add("3-4", "PDF is encrypted")
    else:
        import pikepdf

        try:
            with pikepdf.open(loc) as pdf:
                if pdf.is_encrypted:
                    out.add("3-4", "PDF is encrypted")
                pages = len(pdf.pages)
        except pikepdf.PasswordError:
            out.add("3-4", "PDF is encrypted (password required)")
            return
        except Exception as exc:  # qpdf could not open or repair it
            out.add("3-2", f"pikepdf: {str(exc)[:200]}")
            return
        recorded = f.properties.get("pages")
        if isinstance(recorded, int) and recorded != pages:
            out.add("1-10", f"pages {pages}, recorded {recorded}")
    if pages == 0:
        out.add("3-2", "PDF has no pages")
        return
    # page 1 at 18 dpi, the PNG to a pipe (no scratch folder per file)
    proc = subprocess.run(
        ["pdftoppm", "-f", "1", "-l", "1", "-r", "18", "-png", str(loc)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.startswith(PNG_MAGIC):
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        out.add("3-2", "page 1 does not render: " + (err[-1][:200] if err else f"exit {proc.returncode}"))


def _image(loc: Path, out: Findings) -> None:
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a large scan is not a decompression bomb here
            with Image.open(loc) as im:
                im.draft("RGB", (512, 512))
                im.load()
    except Exception as exc:
        out.add("3-2", f"image does not decode: {str(exc)[:200]}")


def _av(loc: Path, out: Findings, timeout: float) -> None:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(loc)],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        out.add("3-2", "ffprobe: " + (err[-1][:200] if err else f"exit {proc.returncode}"))


def _zip_office(loc: Path, member: str, out: Findings) -> None:
    try:
        with zipfile.ZipFile(loc) as z:
            infos = z.infolist()
            if any(i.flag_bits & 0x1 for i in infos):
                out.add("3-4", "encrypted members")
            if member not in z.namelist():
                out.add("3-2", f"no {member}: not an openable document")
    except zipfile.BadZipFile as exc:
        out.add("3-2", f"not a valid package: {exc}")


def _text(loc: Path, out: Findings, whole: bytes | None = None) -> None:
    if whole is not None:
        head = whole[:SMALL]
    else:
        with loc.open("rb") as fh:
            head = fh.read(SMALL)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            decoder = codecs.getincrementaldecoder(encoding)()
            decoder.decode(head, final=False)
            return
        except UnicodeDecodeError:
            continue
    out.add("3-2", "text in no known encoding")
