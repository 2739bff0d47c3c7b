"""四性检测 reports as an HTML page and a PDF with its Chinese font embedded.

    html = report_html(report)            # a whole page; report_body_html(report) is the part staff pages embed
    pdf = report_pdf(report, font_path)   # reportlab, the TrueType CJK font subset-embedded

``report`` is the JSON of a check run (:mod:`archive.checks.report`). The PDF is rendered with reportlab's
``invariant`` mode, so the same report gives the same bytes, and the same sha256, every time. The font is a
TrueType one (reportlab embeds TrueType outlines, not the CFF ones of Noto CJK): ``ARCHIVE_REPORT_FONT``, or the
first of :data:`FONT_CANDIDATES` present (``fonts-arphic-uming`` from Debian).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

FONT_CANDIDATES = (
    Path("/usr/share/fonts/truetype/arphic/uming.ttc"),
    Path("/usr/share/fonts/truetype/arphic/ukai.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
)
PROPERTY_ZH = {"authenticity": "真实性", "integrity": "完整性", "usability": "可用性", "security": "安全性"}
STATUS_ZH = {"pass": "通过", "fail": "不通过", "warn": "警告", "manual": "人工", "n/a": "不适用"}
STAGE_ZH = {"receipt": "移交与接收", "preservation": "长期保存"}


@cache
def _env() -> Environment:
    env = Environment(loader=PackageLoader("archive.evidence"), autoescape=select_autoescape(["html"]))
    env.globals.update(PROPERTY_ZH=PROPERTY_ZH, STATUS_ZH=STATUS_ZH, STAGE_ZH=STAGE_ZH)
    return env


def counts(report: dict[str, Any]) -> dict[str, int]:
    """How many items have each status."""
    out = dict.fromkeys(STATUS_ZH, 0)
    for item in report.get("items", []):
        out[item["status"]] = out.get(item["status"], 0) + 1
    return out


def report_body_html(report: dict[str, Any]) -> str:
    return _env().get_template("report_body.html").render(report=report, counts=counts(report))


def report_html(report: dict[str, Any]) -> str:
    return _env().get_template("report.html").render(report=report, body=report_body_html(report))


def find_font(configured: Path | None = None) -> Path | None:
    if configured is not None:
        return configured
    return next((p for p in FONT_CANDIDATES if p.is_file()), None)


@cache
def _register_font(path: str) -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    name = "ReportCJK"
    pdfmetrics.registerFont(
        TTFont(name, path, subfontIndex=0) if path.endswith(".ttc") else TTFont(name, path)
    )
    return name


def _title(report: dict[str, Any]) -> str:
    stage = STAGE_ZH.get(report.get("stage", ""), report.get("stage", ""))
    subject = report.get("transfer") or report.get("archive") or "全部档案馆 / all archives"
    return f"四性检测报告 / DA/T 70-2018 check report — {stage} — {subject}"


def report_pdf(report: dict[str, Any], font: Path) -> bytes:
    """The report as a PDF (A4): a summary, one table row per item, then every listed failure."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    face = _register_font(str(font))
    body = ParagraphStyle("body", fontName=face, fontSize=8.5, leading=11, wordWrap="CJK")
    head = ParagraphStyle("head", parent=body, fontSize=14, leading=18, spaceAfter=6)
    sub = ParagraphStyle("sub", parent=body, fontSize=11, leading=14, spaceBefore=8, spaceAfter=4)

    def p(text: object, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape("" if text is None else str(text)), style)

    c = counts(report)
    story: list[Any] = [
        p(_title(report), head),
        p(
            f"运行号 run {report.get('run_id')} · 时间 {report.get('created')} · 范围 scope {report.get('scope')}"
            f" · 结论 status {STATUS_ZH.get(report.get('status', ''), '')} {report.get('status')}"
        ),
        p(
            f"档案 records {report.get('records')} · 文件 files {report.get('files')}"
            + (f" · 抽样种子 seed {report['seed']} ({report.get('fraction')})" if report.get("seed") else "")
        ),
        p(" · ".join(f"{STATUS_ZH[k]} {k}: {v}" for k, v in c.items())),
        Spacer(1, 4 * mm),
    ]
    rows: list[list[Any]] = [
        [
            p(h)
            for h in (
                "检测项 item",
                "名称 name",
                "属性 property",
                "结果 status",
                "检查 checked",
                "失败 failed",
            )
        ]
    ]
    shade: list[tuple[Any, ...]] = []
    for n, item in enumerate(report.get("items", []), start=1):
        prop = item.get("property", "")
        rows.append(
            [
                p(item["code"] + (" *" if item.get("uncertain") else "")),
                p(f"{item.get('name_zh')}\n{item.get('name_en')}"),
                p(f"{PROPERTY_ZH.get(prop, prop)} {prop}"),
                p(f"{STATUS_ZH.get(item['status'], '')} {item['status']}"),
                p(item.get("checked", "")),
                p(item.get("failure_count", len(item.get("failures", [])))),
            ]
        )
        if item["status"] == "fail":
            shade.append(("BACKGROUND", (0, n), (-1, n), colors.Color(1, 0.88, 0.88)))
        elif item["status"] == "warn":
            shade.append(("BACKGROUND", (0, n), (-1, n), colors.Color(1, 0.96, 0.8)))
    table = Table(rows, colWidths=[15 * mm, 66 * mm, 27 * mm, 24 * mm, 25 * mm, 25 * mm], repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                *shade,
            ]
        )
    )
    story += [
        table,
        p("* 项号待与 DA/T 70-2018 原文核对 / item number not yet confirmed against the standard"),
    ]
    failing = [i for i in report.get("items", []) if i.get("failures")]
    if failing:
        story.append(p("失败明细 / Failures", sub))
    for item in failing:
        story.append(p(f"{item['code']} {item.get('name_zh')} / {item.get('name_en')}", sub))
        for f in item["failures"]:
            story.append(p(f"• {f.get('record') or '—'}  {f.get('path') or ''}  {f.get('detail')}"))
        if item.get("more_failures"):
            story.append(
                p(f"…另有 {item['more_failures']} 条 / {item['more_failures']} more (failures.jsonl)")
            )
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=14 * mm,
        rightMargin=14 * mm,
        topMargin=14 * mm,
        bottomMargin=14 * mm,
        title=_title(report),
        author="pearl-archive",
        invariant=1,
    )
    doc.build(story)
    return out.getvalue()
