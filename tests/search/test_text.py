"""Full-text extraction: PDF, DOCX, plain text/CSV in several encodings, always capped, never raising."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from ingest.demo import docx, pdf
from search.text import MAX_FILE_CHARS, decode, extract_text, kind_of


def test_pdf_text(tmp_path: Path) -> None:
    path = tmp_path / "通知.pdf"
    path.write_bytes(
        pdf("关于珠江三角洲经济区规划的通知", ["规划范围包括广州、深圳。", "Tianhe Sports Centre"])
    )
    got = extract_text(path, mime="application/pdf")
    assert "珠江三角洲" in got.text and "Tianhe" in got.text
    assert (got.truncated, got.error) == (False, None)


def test_pdf_text_is_capped(tmp_path: Path) -> None:
    path = tmp_path / "long.pdf"
    path.write_bytes(pdf("长文", ["档案" * 300] * 20))
    got = extract_text(path, puid="fmt/17", limit=100)
    assert len(got.text) == 100 and got.truncated


def test_broken_pdf_gives_an_error_not_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nnot really a pdf")
    got = extract_text(path)
    assert got.text.strip() == "" and got.error


def test_docx_text(tmp_path: Path) -> None:
    path = tmp_path / "纪要.docx"
    path.write_bytes(docx("广东省档案工作会议纪要", ["会议研究了数字档案馆建设。", "跨馆查阅服务"]))
    got = extract_text(path, puid="fmt/412")
    assert "数字档案馆" in got.text and "跨馆查阅" in got.text and not got.truncated


def test_docx_text_is_capped_and_bad_docx_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "big.docx"
    path.write_bytes(docx("大", ["档案" * 1000] * 10))
    got = extract_text(path, limit=50)
    assert len(got.text) == 50 and got.truncated
    bad = tmp_path / "bad.docx"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("word/other.xml", "<x/>")
    bad.write_bytes(buf.getvalue())
    assert extract_text(bad).error
    (tmp_path / "notzip.docx").write_bytes(b"plain")
    assert extract_text(tmp_path / "notzip.docx").error


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16", "big5"])
def test_plain_text_encodings(tmp_path: Path, encoding: str) -> None:
    text = "廣州市檔案館 Guangzhou" if encoding == "big5" else "广州市档案馆，黄埔港 Guangzhou"
    path = tmp_path / "a.txt"
    path.write_bytes(text.encode(encoding))
    assert extract_text(path, mime="text/plain").text == text


def test_plain_text_cap_does_not_cut_a_character_in_half(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(("指标,单位\n" + "广州,亿元\n" * 50_000).encode())
    got = extract_text(path, puid="x-fmt/18", limit=1000)
    assert got.truncated and len(got.text) == 1000 and "\ufffd" not in got.text


def test_decode_drops_a_cut_character() -> None:
    data = "档案".encode()[:-1]
    assert decode(data, final=False) == "档"


def test_other_types_have_no_text(tmp_path: Path) -> None:
    path = tmp_path / "a.tif"
    path.write_bytes(b"II*\x00")
    assert extract_text(path, mime="image/tiff").text == ""
    assert kind_of("image/jpeg", "fmt/43", "x.jpg") is None
    assert kind_of(None, None, "说明.DOCX") == "docx"
    assert MAX_FILE_CHARS == 200_000


def test_pdftotext_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "pdftotext").write_text("#!/bin/sh\necho partial\nsleep 30\n")
    (fake / "pdftotext").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:/usr/bin:/bin")
    path = tmp_path / "slow.pdf"
    path.write_bytes(b"%PDF-1.4")
    got = extract_text(path, timeout=0.5)
    assert got.truncated and got.error and "stopped" in got.error
