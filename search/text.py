"""Full text of a file for the search index: PDF, DOCX, plain text and CSV, always capped.

- PDF: ``pdftotext`` (poppler-utils) in a subprocess with a timeout; its output is read as it streams and the
  tool is stopped once the cap is reached, so a 2,000-page PDF costs no more than the cap.
- DOCX: ``word/document.xml`` read straight from the zip with a streaming XML parser and a cap on the bytes
  decompressed (a zip bomb stops at the cap).
- Plain text / CSV: the first bytes only, decoded as UTF-8 (with or without BOM), UTF-16 with a BOM, GB18030
  (which covers GB2312 and GBK) or Big5, in that order; undecodable bytes are replaced rather than fatal.

Extraction never raises for a bad file: :class:`Extracted` says what happened (``error``) and whether text was
left out (``truncated``). Other types (images, audio, unknown) yield no text.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import signal
import subprocess
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal
from xml.etree import ElementTree

Kind = Literal["pdf", "docx", "text"]

#: Most characters of text taken from one file (about 200 KB of Chinese text in UTF-8 is ~70 k chars; we
#: count characters so the cap means the same for every script).
MAX_FILE_CHARS = 200_000
#: Most bytes of DOCX XML decompressed.
MAX_XML_BYTES = 50_000_000

_PDF_MIMES = {"application/pdf", "application/x-pdf"}
_DOCX_MIMES = {"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
_TEXT_MIMES = {"text/plain", "text/csv", "text/tab-separated-values", "text/markdown"}
_PDF_PUIDS = {
    f"fmt/{n}"
    for n in (
        14,
        15,
        16,
        17,
        18,
        19,
        20,
        95,
        144,
        145,
        146,
        147,
        148,
        157,
        276,
        354,
        476,
        477,
        478,
        479,
        480,
        481,
        488,
        489,
        490,
        491,
        492,
        493,
        1129,
    )
}
_DOCX_PUIDS = {"fmt/412", "fmt/473", "fmt/523"}
_TEXT_PUIDS = {"x-fmt/111", "x-fmt/18", "x-fmt/13", "fmt/1474"}
_SUFFIXES: dict[str, Kind] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".txt": "text",
    ".csv": "text",
    ".tsv": "text",
    ".md": "text",
}
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


@dataclass(frozen=True)
class Extracted:
    text: str
    truncated: bool = False
    error: str | None = None


def kind_of(mime: str | None, puid: str | None, name: str | None = None) -> Kind | None:
    """Which extractor reads a file, from its identified MIME type / PUID, else its name; None for none."""
    mime = (mime or "").split(";")[0].strip().lower()
    if mime in _PDF_MIMES or puid in _PDF_PUIDS:
        return "pdf"
    if mime in _DOCX_MIMES or puid in _DOCX_PUIDS:
        return "docx"
    if mime in _TEXT_MIMES or puid in _TEXT_PUIDS:
        return "text"
    if name:
        return _SUFFIXES.get(Path(name).suffix.lower())
    return None


def extract_text(
    path: Path,
    *,
    mime: str | None = None,
    puid: str | None = None,
    name: str | None = None,
    limit: int = MAX_FILE_CHARS,
    timeout: float = 120.0,
) -> Extracted:
    kind = kind_of(mime, puid, name or path.name)
    if kind is None or limit <= 0:
        return Extracted("", truncated=kind is not None)
    try:
        if kind == "pdf":
            return pdf_text(path, limit, timeout)
        if kind == "docx":
            return docx_text(path, limit)
        return plain_text(path, limit)
    except (OSError, ValueError, zipfile.BadZipFile, ElementTree.ParseError, KeyError) as exc:
        return Extracted("", error=f"{type(exc).__name__}: {exc}")


def _finish(text: str, limit: int, more: bool) -> Extracted:
    text = text.replace("\x00", "")
    if len(text) > limit:
        return Extracted(text[:limit], truncated=True)
    return Extracted(text, truncated=more)


def pdf_text(path: Path, limit: int, timeout: float) -> Extracted:
    """Stream ``pdftotext`` output; stop the tool at the cap or when ``timeout`` seconds have passed."""
    byte_cap = limit * 4 + 4  # UTF-8 needs at most 4 bytes a character
    try:
        proc = subprocess.Popen(
            ["pdftotext", "-q", "-enc", "UTF-8", str(path), "-"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # so that a timeout stops the whole process group
        )
    except FileNotFoundError:
        return Extracted("", error="pdftotext is not installed (Debian: poppler-utils)")
    timer = threading.Timer(timeout, _kill_group, (proc,))
    timer.start()
    chunks: list[bytes] = []
    got = 0
    more = False
    try:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(65536):
            chunks.append(chunk)
            got += len(chunk)
            if got > byte_cap:
                more = True
                _kill_group(proc)
                break
        proc.stdout.close()
        code = proc.wait()
    finally:
        timed_out = not timer.is_alive() and not more and proc.returncode not in (0, None)
        timer.cancel()
        if proc.poll() is None:
            _kill_group(proc)
            proc.wait()
    data = b"".join(chunks)[:byte_cap]
    text = codecs.getincrementaldecoder("utf-8")("replace").decode(data).replace("\f", "\n")
    error = None
    if timed_out:
        error, more = f"pdftotext stopped after {timeout:g} s", True
    elif code != 0 and not more:
        error = f"pdftotext exit {code}"
    result = _finish(text, limit, more)
    return Extracted(result.text, result.truncated, error)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


class _CappedReader:
    """A file-like wrapper that reads at most ``cap`` bytes and remembers whether more was left."""

    def __init__(self, raw: IO[bytes], cap: int) -> None:
        self.raw, self.left, self.hit_cap = raw, cap, False

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            self.hit_cap = self.hit_cap or bool(self.raw.read(1))
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.raw.read(n)
        self.left -= len(data)
        return data


def docx_text(path: Path, limit: int) -> Extracted:
    with zipfile.ZipFile(path) as zf, zf.open("word/document.xml") as raw:
        reader = _CappedReader(raw, MAX_XML_BYTES)
        pieces: list[str] = []
        size = 0
        try:
            for _event, elem in ElementTree.iterparse(reader, events=("end",)):
                if elem.tag == f"{_W}t" and elem.text:
                    pieces.append(elem.text)
                    size += len(elem.text)
                elif elem.tag in (f"{_W}p", f"{_W}br", f"{_W}tab"):
                    pieces.append("\n" if elem.tag != f"{_W}tab" else "\t")
                    elem.clear()
                if size > limit:
                    return Extracted("".join(pieces)[:limit], truncated=True)
        except ElementTree.ParseError:
            if not reader.hit_cap:
                raise
    return _finish("".join(pieces).strip(), limit, reader.hit_cap)


_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode(data: bytes, *, final: bool = True) -> str:
    """Decode bytes of unknown encoding; with ``final=False`` a character cut at the end is dropped, not
    mangled."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return codecs.getincrementaldecoder(encoding)("replace").decode(data, final=final)
    candidates: list[str] = []
    for encoding in ("utf-8", "gb18030", "big5"):
        try:
            text = codecs.getincrementaldecoder(encoding)("strict").decode(data, final=final)
        except UnicodeDecodeError:
            continue
        if not _PRIVATE_USE.search(text):
            return text
        candidates.append(text)  # Big5 often decodes as GB18030 too, into private-use characters
    if candidates:
        return min(candidates, key=lambda t: len(_PRIVATE_USE.findall(t)))
    return codecs.getincrementaldecoder("utf-8")("replace").decode(data, final=final)


def plain_text(path: Path, limit: int) -> Extracted:
    byte_cap = limit * 4 + 4
    with open(path, "rb") as fh:
        data = fh.read(byte_cap + 1)
    more = len(data) > byte_cap
    return _finish(decode(data[:byte_cap], final=not more), limit, more)
