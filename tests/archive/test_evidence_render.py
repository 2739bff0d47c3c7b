"""四性检测 reports as HTML and PDF: the PDF embeds its Chinese font and renders (pdftoppm, pdftotext)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import select

from archive import db
from archive.checks.models import CheckRun
from archive.checks.registry import registry
from archive.config import Settings
from archive.evidence import render_run, report_html, report_pdf
from archive.evidence.render import find_font
from archive.models import Event
from tests.e2e.helpers import ingest_json, simple_bag

FONT = find_font()
needs_font = pytest.mark.skipif(FONT is None, reason="no CJK TrueType font (fonts-arphic-uming)")


def sample_report() -> dict[str, Any]:
    items = []
    for check in registry().values():
        status = "manual" if not check.automatic else "pass"
        failures: list[dict[str, Any]] = []
        if check.code == "1-1":
            status = "fail"
            failures = [
                {"record": "GZ/GZ·2020-0001", "path": "originals/会议纪要.pdf", "detail": "<b>摘要值不符</b>"}
            ]
        items.append(
            {
                "code": check.code,
                "name_zh": check.name_zh,
                "name_en": check.name_en,
                "property": check.property,
                "status": status,
                "mode": check.mode,
                "uncertain": check.uncertain,
                "checked": 3,
                "failure_count": len(failures),
                "more_failures": 0,
                "note": None,
                "failures": failures,
            }
        )
    return {
        "run_id": "C20261207-000000-abcdef12",
        "stage": "preservation",
        "scope": "sample",
        "archive": "GZ",
        "transfer": None,
        "seed": 42,
        "fraction": 0.05,
        "created": "2026-12-07T00:00:00Z",
        "status": "fail",
        "records": 3,
        "files": 3,
        "items": items,
        "failures_file": None,
    }


def test_html_lists_every_item_and_escapes_details() -> None:
    report = sample_report()
    page = report_html(report)
    for item in report["items"]:
        assert f'id="item-{item["code"]}"' in page and item["name_zh"] in page
    assert "&lt;b&gt;摘要值不符&lt;/b&gt;" in page and "<b>摘要值不符" not in page
    assert "抽样种子 seed" in page


@needs_font
def test_pdf_embeds_the_chinese_font_and_renders(tmp_path: Path) -> None:
    assert FONT is not None
    report = sample_report()
    pdf = tmp_path / "report.pdf"
    pdf.write_bytes(report_pdf(report, FONT))
    assert report_pdf(report, FONT) == pdf.read_bytes()  # invariant: the same report, the same bytes
    fonts = subprocess.run(["pdffonts", pdf], capture_output=True, text=True, check=True).stdout
    assert any("UMing" in line and " yes yes " in line for line in fonts.splitlines())  # embedded, subset
    subprocess.run(["pdftoppm", "-f", "1", "-l", "1", "-r", "80", "-png", pdf, tmp_path / "page"], check=True)
    [png] = tmp_path.glob("page*.png")
    with Image.open(png) as image:
        inked = sum(image.convert("L").histogram()[:200])
    assert inked > 20_000  # a page of table and glyphs (a font that failed to load draws nothing)
    text = subprocess.run(["pdftotext", pdf, "-"], capture_output=True, text=True, check=True).stdout
    assert "四性检测报告" in text
    compact = "".join(text.split())
    for item in report["items"]:
        assert item["name_zh"] in compact, item["code"]
    assert "摘要值不符" in compact and "GZ/GZ·2020-0001" in compact


@needs_font
def test_a_stored_receipt_report_is_rendered_once_and_logged(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "bag", [("卷一", "GZ-1-0001", "会议纪要", "第一次会议\n".encode())])
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    with db.write_session(home) as s:
        run = s.execute(select(CheckRun).where(CheckRun.stage == "receipt")).scalar_one()
        first = render_run(home, s, run)
    assert first.pdf is not None and first.pdf_sha256 == hashlib.sha256(first.pdf.read_bytes()).hexdigest()
    assert first.pdf.parent == Path(run.report_file or "").parent
    with db.write_session(home) as s:
        stored = s.get(CheckRun, run.id)
        assert stored is not None
        again = render_run(home, s, stored)
    assert again.pdf_sha256 == first.pdf_sha256
    with db.read_session(home) as s:
        logged = [
            e
            for e in s.execute(
                select(Event).where(Event.event_type == "message digest calculation")
            ).scalars()
            if e.outcome_detail.get("run_id") == run.id
        ]
    assert len(logged) == 1 and logged[0].outcome_detail["pdf_sha256"] == first.pdf_sha256
    text = subprocess.run(["pdftotext", first.pdf, "-"], capture_output=True, text=True, check=True).stdout
    assert "移交与接收" in text and "固化信息有效性检测" in "".join(text.split())
