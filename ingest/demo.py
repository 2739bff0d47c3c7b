"""``archive demo``: a small realistic region, sample transfers in real formats, ingested end to end.

The region is 广东省档案馆 (GD, province) → 广州市档案馆 (GZ, city) → 天河区档案馆 (GZ-TH, county). Each gets a
transfer: GD as a bag directory with a UTF-8 records.csv (Chinese headers), GZ as a .zip with a GB18030
records.csv (what Excel on a Chinese desktop writes), GZ-TH as a .tar.gz with English headers. The files are
real PDF, DOCX, TIFF, JPEG, plain text and CSV made on the spot. Some records are old enough to open under the
25-year rule, some are too recent, one is classified (秘密) and stays closed whatever its age. A fourth,
damaged transfer shows what a rejection looks like. Running the demo again ingests nothing twice.
"""

from __future__ import annotations

import csv
import io
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from archive import db, services
from archive.config import Settings
from archive.errors import UnknownArchive
from archive.home import init_home, is_initialised
from ingest.bagwriter import make_bag, write_payload
from ingest.pipeline import ingest

REGION = [
    ("GD", "广东省档案馆", "Guangdong Provincial Archives", "province", None),
    ("GZ", "广州市档案馆", "Guangzhou Municipal Archives", "city", "GD"),
    ("GZ-TH", "天河区档案馆", "Tianhe District Archives", "county", "GZ"),
]


def pdf(title: str, paragraphs: list[str]) -> bytes:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    buf = io.BytesIO()
    c = canvas.Canvas(buf, invariant=True)
    c.setTitle(title)
    c.setFont("STSong-Light", 16)
    c.drawString(72, 760, title)
    c.setFont("STSong-Light", 11)
    y = 730
    for para in paragraphs:
        for i in range(0, len(para), 38):
            c.drawString(72, y, para[i : i + 38])
            y -= 18
        y -= 8
    c.showPage()
    c.save()
    return buf.getvalue()


def docx(title: str, paragraphs: list[str]) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    document.add_heading(title, level=1)
    for para in paragraphs:
        document.add_paragraph(para)
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()


def image(fmt: str, seed: int, size: tuple[int, int] = (320, 200)) -> bytes:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, (230 - seed * 20, 220, 200 + seed * 10))
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 16):
        draw.line([(i, 0), (size[0] - i, size[1])], fill=(40 + seed * 30, 60, 90), width=2)
    draw.rectangle([20, 20, 120, 90], outline=(120, 20, 20), width=4)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"compression": "tiff_lzw"} if fmt == "TIFF" else {"quality": 90}))
    return buf.getvalue()


def table(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(rows)
    return buf.getvalue().encode("utf-8")


CN_HEADER = [
    "路径",
    "档号",
    "题名",
    "责任者",
    "日期",
    "保管期限",
    "密级",
    "开放状态",
    "全宗号",
    "摘要",
    "主题词",
]
EN_HEADER = [
    "path",
    "archival_code",
    "title",
    "creator",
    "date",
    "retention",
    "security_class",
    "access",
    "fonds",
    "description",
    "keywords",
]


def records_csv(header: list[str], rows: list[list[str]], encoding: str) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([header, *rows])
    return buf.getvalue().encode(encoding)


def gd_bag(root: Path) -> Path:
    plan = "珠江三角洲经济区规划范围包括广州、深圳、珠海、佛山、江门、东莞、中山等市，以及惠州、肇庆两市的部分地区。"
    files = {
        "data/0001 规划通知/关于珠江三角洲经济区规划的通知.pdf": pdf(
            "关于珠江三角洲经济区规划的通知",
            [plan, "各市人民政府、省府直属各单位：现将规划印发给你们，请认真贯彻执行。"],
        ),
        "data/0002 会议纪要/广东省档案工作会议纪要.docx": docx(
            "广东省档案工作会议纪要",
            ["会议研究了数字档案馆建设和档案信息资源共享。", "会议要求各地档案馆推进跨馆查阅服务。"],
        ),
        "data/0003 港口照片/黄埔港码头 1998.tif": image("TIFF", 1),
        "data/0003 港口照片/黄埔港码头 1998 (复制件).jpg": image("JPEG", 1),
        "data/0004 电报/省府电报.txt": "绝密电报正文：此件不得公开。\n".encode(),
    }
    write_payload(root, files)
    write_payload(
        root,
        {
            "data/metadata/records.csv": records_csv(
                CN_HEADER,
                [
                    [
                        "0001 规划通知",
                        "GD-001-1995-永久-0001",
                        "关于珠江三角洲经济区规划的通知",
                        "广东省人民政府办公厅",
                        "1995-03-12",
                        "永久",
                        "公开",
                        "自动",
                        "001",
                        "印发珠江三角洲经济区规划，明确范围和发展方向；省政府文书档案。",
                        "经济区；规划；珠江三角洲",
                    ],
                    [
                        "0002 会议纪要",
                        "GD-001-2016-30年-0002",
                        "广东省档案工作会议纪要",
                        "广东省档案局",
                        "2016-06",
                        "30年",
                        "",
                        "自动",
                        "001",
                        "数字档案馆建设与跨馆查阅。",
                        "档案工作；会议纪要",
                    ],
                    [
                        "0003 港口照片",
                        "GD-002-1998-永久-0003",
                        "黄埔港码头照片档案",
                        "广东省航运厅",
                        "1998",
                        "永久",
                        "",
                        "自动",
                        "002",
                        "黄埔港码头作业照片两张。",
                        "港口；黄埔港；照片",
                    ],
                    [
                        "0004 电报",
                        "GD-001-1990-永久-0004",
                        "省府电报（秘密）",
                        "广东省人民政府办公厅",
                        "19900815",
                        "永久",
                        "秘密",
                        "自动",
                        "001",
                        "密级文件，不随年限自动开放。",
                        "电报",
                    ],
                ],
                "utf-8-sig",
            )
        },
    )
    return make_bag(
        root,
        algorithms=("sha256", "sha512"),
        info={"Source-Organization": "广东省人民政府办公厅", "External-Description": "省府文书档案移交"},
    )


def gz_bag(root: Path) -> Path:
    files = {
        "data/城市总体规划/广州市城市总体规划说明.docx": docx(
            "广州市城市总体规划（1984—2000年）说明",
            ["广州是广东省省会，华南地区的政治、经济、文化中心。", "规划确定城市向东发展，建设天河新区。"],
        ),
        "data/统计资料/广州市主要经济指标 1999.csv": table(
            [["指标", "单位", "1999年"], ["地区生产总值", "亿元", "2056.74"], ["常住人口", "万人", "685.00"]]
        ),
        "data/市志/广州市志 摘录.txt": "广州古称番禺，秦汉以来即为岭南政治中心和对外贸易港口。\n".encode(),
        "data/市志/越秀山 全景.jpg": image("JPEG", 2),
    }
    write_payload(root, files)
    write_payload(
        root,
        {
            "data/metadata/records.csv": records_csv(
                CN_HEADER,
                [
                    [
                        "城市总体规划",
                        "GZ-010-1985-永久-0001",
                        "广州市城市总体规划（1984—2000年）说明",
                        "广州市城市规划局",
                        "1985",
                        "永久",
                        "公开",
                        "开放",
                        "010",
                        "城市向东发展，建设天河新区；城市建设档案。",
                        "城市规划；天河",
                    ],
                    [
                        "统计资料/广州市主要经济指标 1999.csv",
                        "GZ-020-1999-30年-0002",
                        "广州市主要经济指标（1999年）",
                        "广州市统计局",
                        "1999-12-31",
                        "30年",
                        "公开",
                        "自动",
                        "020",
                        "地区生产总值与人口。",
                        "统计；经济指标",
                    ],
                    [
                        "市志",
                        "GZ-030-2021-永久-0003",
                        "广州市志摘录与越秀山照片",
                        "广州市地方志办公室",
                        "2021-05-20",
                        "永久",
                        "",
                        "控制",
                        "030",
                        "尚在整理，暂不开放。",
                        "地方志；越秀山",
                    ],
                ],
                "gb18030",
            )
        },
    )
    return make_bag(root, algorithms=("sha256",), info={"Source-Organization": "广州市城市规划局"})


def th_bag(root: Path) -> Path:
    files = {
        "data/tianhe-sports-centre/天河体育中心建设报告.pdf": pdf(
            "天河体育中心建设报告",
            ["为迎接第六届全国运动会，天河体育中心于一九八七年建成。", "Tianhe Sports Centre, 1987."],
        ),
        "data/tianhe-sports-centre/site plan.tif": image("TIFF", 3),
        "data/district-founding/天河区成立公告.txt": "经国务院批准，设立广州市天河区。\nTianhe District founded.\n".encode(),
    }
    write_payload(root, files)
    write_payload(
        root,
        {
            "data/metadata/records.csv": records_csv(
                EN_HEADER,
                [
                    [
                        "tianhe-sports-centre",
                        "TH-001-1987-Y-0001",
                        "天河体育中心建设报告",
                        "天河区建设局",
                        "1987-08-01",
                        "permanent",
                        "none",
                        "auto",
                        "001",
                        "Construction of Tianhe Sports Centre for the 6th National Games.",
                        "体育中心; sports",
                    ],
                    [
                        "district-founding",
                        "TH-001-1985-Y-0002",
                        "天河区成立公告",
                        "天河区人民政府",
                        "1985-05",
                        "permanent",
                        "",
                        "auto",
                        "001",
                        "Founding notice of Tianhe District.",
                        "天河区; founding",
                    ],
                ],
                "utf-8",
            )
        },
    )
    return make_bag(root, algorithms=("sha512",))


def damaged_bag(root: Path) -> Path:
    write_payload(root, {"data/损坏/扫描件.txt": "原始内容\n".encode()})
    make_bag(root, algorithms=("sha256",))
    (root / "data/损坏/扫描件.txt").write_bytes("被改动的内容\n".encode())  # fixity now fails
    write_payload(root, {"data/未登记文件.txt": b"not in any manifest\n"})
    return root


def _zip(folder: Path) -> Path:
    target = folder.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(folder.rglob("*")):
            zf.write(p, p.relative_to(folder.parent).as_posix())
    return target


def _targz(folder: Path) -> Path:
    target = folder.parent / (folder.name + ".tar.gz")
    with tarfile.open(target, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return target


def _packed_name(folder: Path, pack: Callable[[Path], Path] | None) -> Path:
    if pack is _zip:
        return folder.with_suffix(".zip")
    if pack is _targz:
        return folder.parent / (folder.name + ".tar.gz")
    return folder


def build_bags(workdir: Path) -> list[tuple[str, Path]]:
    """Write the sample transfers once; a second run reuses them, so it recognises them as ingested."""
    done = workdir / ".complete"
    if workdir.exists() and not done.exists():
        shutil.rmtree(workdir)  # a half-written set from an interrupted run
    workdir.mkdir(parents=True, exist_ok=True)
    made: list[tuple[str, Path, Callable[[Path], Path], Callable[[Path], Path] | None]] = [
        ("GD", workdir / "gd-2024-001", gd_bag, None),
        ("GZ", workdir / "gz-2024-007", gz_bag, _zip),
        ("GZ-TH", workdir / "th-2024-003", th_bag, _targz),
        ("GZ-TH", workdir / "th-2024-004-damaged", damaged_bag, None),
    ]
    out: list[tuple[str, Path]] = []
    for archive, folder, build, pack in made:
        if not done.exists():
            folder.mkdir()
            build(folder)
            if pack:
                pack(folder)
        out.append((archive, _packed_name(folder, pack)))
    done.touch()
    return out


def run_demo(settings: Settings, workdir: Path | None, console: Console) -> dict[str, Any]:
    if not is_initialised(settings):
        init_home(settings)
        console.print(f"initialised {settings.home_dir}", highlight=False)
    with db.write_session(settings) as s:
        for code, name_zh, name_en, level, parent in REGION:
            try:
                services.get_archive(s, code)
            except UnknownArchive:
                services.add_archive(s, code, name_zh=name_zh, name_en=name_en, level=level, parent=parent)
                console.print(f"registered {code} {name_zh}", highlight=False)
    bags = build_bags(workdir or settings.home_dir / "demo-bags")
    summary: dict[str, Any] = {"stored": [], "rejected": []}
    for archive, bag in bags:
        result = ingest(bag, archive, settings)
        if result.stored:
            console.print(
                f"[green]stored[/]   {bag.name} → {archive}: {len(result.records)} records, "
                f"{result.files} files ({result.transfer_id})",
                highlight=False,
            )
            summary["stored"].append(result.transfer_id)
        elif any(p.code == "ING003" for p in result.problems):
            console.print(f"[dim]skipped[/]  {bag.name}: already ingested", highlight=False)
        else:
            codes = ", ".join(sorted({p.code for p in result.problems if p.severity == "error"}))
            console.print(
                f"[yellow]rejected[/] {bag.name} → {archive} as expected ({codes}); nothing stored",
                highlight=False,
            )
            summary["rejected"].append(result.transfer_id)
    console.print(try_next(bags[-1][1]), highlight=False)
    return summary


#: What the README's search example asks; the demo's open records answer it (tests/ingest/test_demo.py).
EXAMPLE_QUERY = "档案"


def try_next(damaged_bag: Path) -> str:
    """The closing hints: the portal first (where the public finds the records), then the archivist's commands."""
    return (
        "\n[bold]Try next[/]\n"
        "  archive serve                                   # the public portal, then open in a browser:\n"
        f"      http://127.0.0.1:8000/search?q={EXAMPLE_QUERY}\n"
        "      http://127.0.0.1:8000/records/GD/GD-001-1995-永久-0001\n"
        "  archive archives list\n"
        "  archive records list --archive GD\n"
        "  archive records show GD/GD-001-1995-永久-0001\n"
        "  archive transfers\n"
        "  archive events verify\n"
        f"  archive validate {damaged_bag}\n"
    )
