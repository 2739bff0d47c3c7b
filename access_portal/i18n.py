"""Languages of the public pages: zh-CN first, English on request.

The language is chosen by ``?lang=en`` / ``?lang=zh`` (remembered in the ``lang`` cookie), then by the cookie,
and is otherwise Chinese: the portal serves the public of Guangdong first. Every page text, the public pages'
and the staff workspace's, lives in one catalogue, ``messages.toml`` (:data:`MESSAGES`); a key missing in
English falls back to Chinese, and an unknown key shows as itself so a typo is visible on the page rather than
an error.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Literal

from starlette.requests import Request

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"
COOKIE = "lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}


def _catalogue() -> dict[str, dict[str, str]]:
    with resources.files("access_portal").joinpath("messages.toml").open("rb") as f:
        return tomllib.load(f)


#: Every page text, public and staff, by key: ``{"zh": ..., "en": ...}`` (``messages.toml``).
MESSAGES: dict[str, dict[str, str]] = _catalogue()


# Chinese names of the common formats, for the format facet and the file lists of Chinese pages (PRONOM names
# are English). A family is matched by PRONOM id on the record page, and by the PRONOM name the facets are
# keyed by (a pattern; a version it captures as ``v`` is kept, so PDF 1.4 and 1.7 stay two facet values);
# other formats keep their PRONOM name. DOC and DOCX differ only by PRONOM's name ("Microsoft Word Document"
# for 97-2003, "Microsoft Word for Windows" for 2007 on), hence the anchored patterns.
_FORMAT_FAMILIES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "PDF/A 长期保存版式文档",
        ("fmt/95", "fmt/354", "fmt/476", "fmt/477", "fmt/478", "fmt/479", "fmt/480", "fmt/481"),
        r"PDF/A",
    ),
    (
        "PDF 版式文档",
        ("fmt/14", "fmt/15", "fmt/16", "fmt/17", "fmt/18", "fmt/19", "fmt/20", "fmt/276", "fmt/1129"),
        r"Acrobat PDF (?P<v>\d+\.\d+)|Portable Document Format|Acrobat PDF",
    ),
    ("OFD 版式文档", (), r"\bOFD\b|Open Fixed-layout Document"),
    ("Word 文档（DOCX）", ("fmt/412",), r"^Microsoft Word for Windows$|Office Open XML Document|DOCX"),
    ("Word 文档（DOC）", ("fmt/37", "fmt/38", "fmt/39", "fmt/40"), r"Microsoft Word"),
    (
        "Excel 电子表格（XLSX）",
        ("fmt/214", "fmt/445"),
        r"^Microsoft Excel for Windows$|Office Open XML Workbook|XLSX",
    ),
    ("Excel 电子表格（XLS）", ("fmt/59", "fmt/61", "fmt/62"), r"Microsoft Excel"),
    (
        "PowerPoint 演示文稿（PPTX）",
        ("fmt/215",),
        r"^Microsoft PowerPoint for Windows$|Office Open XML Presentation|PPTX",
    ),
    ("PowerPoint 演示文稿（PPT）", ("fmt/125", "fmt/126"), r"PowerPoint"),
    ("RTF 文档", ("fmt/45", "fmt/50", "fmt/52", "fmt/53", "fmt/355"), r"Rich Text Format"),
    ("ODF 文本文档", ("fmt/136", "fmt/290", "fmt/291", "fmt/1756"), r"OpenDocument Text"),
    ("ODF 电子表格", ("fmt/137", "fmt/294", "fmt/295", "fmt/1755"), r"OpenDocument Spreadsheet"),
    (
        "JPEG 图像",
        (
            "fmt/41",
            "fmt/42",
            "fmt/43",
            "fmt/44",
            "fmt/645",
            "x-fmt/398",
            "x-fmt/390",
            "x-fmt/391",
            "fmt/1507",
        ),
        r"JPEG|JFIF|Exchangeable Image File",
    ),
    ("TIFF 图像", ("fmt/353", "fmt/7", "fmt/8", "fmt/9", "fmt/10"), r"Tagged Image File Format|\bTIFF\b"),
    ("PNG 图像", ("fmt/11", "fmt/12", "fmt/13"), r"Portable Network Graphics|\bPNG\b"),
    ("GIF 图像", ("fmt/3", "fmt/4"), r"Graphics Interchange Format|\bGIF\b"),
    (
        "BMP 图像",
        ("fmt/114", "fmt/115", "fmt/116", "fmt/117", "fmt/118", "fmt/119", "x-fmt/25", "x-fmt/270"),
        r"Bitmap|\bBMP\b",
    ),
    ("纯文本", ("x-fmt/111",), r"Plain Text"),
    ("CSV 表格", ("x-fmt/18",), r"Comma Separated Values"),
    ("XML 文档", ("fmt/101",), r"Extensible Markup Language"),
    (
        "WAV 音频",
        ("fmt/6", "fmt/141", "fmt/142", "fmt/143", "fmt/703", "fmt/704", "fmt/705", "fmt/712"),
        r"Waveform Audio|Broadcast WAVE|\bWAV\b|RF64",
    ),
    ("FLAC 音频", ("fmt/279",), r"Free Lossless Audio Codec|\bFLAC\b"),
    ("MP3 音频", ("fmt/134",), r"MPEG 1/2 Audio Layer 3|\bMP3\b"),
    ("MP4 视频", ("fmt/199",), r"MPEG-4 Media File|\bMP4\b"),
    ("AVI 视频", ("fmt/5",), r"Audio/Video Interleaved"),
    ("QuickTime 视频", ("x-fmt/384",), r"Quicktime"),
    ("Matroska 视频", ("fmt/569",), r"Matroska"),
    ("ZIP 压缩包", ("x-fmt/263",), r"^ZIP Format"),
)
FORMAT_ZH_BY_PUID: dict[str, str] = {puid: zh for zh, puids, _ in _FORMAT_FAMILIES for puid in puids}
_FORMAT_ZH_BY_NAME = tuple((re.compile(pattern, re.IGNORECASE), zh) for zh, _, pattern in _FORMAT_FAMILIES)


@functools.lru_cache(maxsize=1024)
def format_zh(name: str | None, puid: str | None = None) -> str | None:
    """The Chinese name of a format, by PRONOM id first and then by its PRONOM name; None if not common."""
    if puid and puid in FORMAT_ZH_BY_PUID:
        return FORMAT_ZH_BY_PUID[puid]
    if name:
        for pattern, zh in _FORMAT_ZH_BY_NAME:
            if found := pattern.search(name):
                version = found.groupdict().get("v")
                return f"{zh} {version}" if version else zh
    return None


def format_label(lang: str, name: str | None, puid: str | None = None) -> str:
    """How a format reads on a page: its Chinese name on Chinese pages where it has one, else as named."""
    if lang == "zh":
        zh = format_zh(name, puid)
        if zh:
            return zh
    return name or puid or ""


def resolve_lang(request: Request) -> Lang:
    """``?lang=`` first, then the cookie, then Chinese."""
    for value in (request.query_params.get("lang"), request.cookies.get(COOKIE)):
        if value in LANGS:
            return value
    return DEFAULT_LANG


def translate(lang: str, key: str, **params: object) -> str:
    entry = MESSAGES.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry[DEFAULT_LANG]
    return text.format(**params) if params else text


def label(lang: str, facet: str, value: str) -> str:
    """How a facet value reads: levels, retention periods and decades in words; other values as they are."""
    if facet == "year":
        return translate(lang, "decade", decade=value)
    if facet in ("level", "retention") and f"{facet}_{value}" in MESSAGES:
        return translate(lang, f"{facet}_{value}")
    if facet == "format":
        return format_label(lang, value)
    return value


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **params: object) -> str:
        return translate(lang, key, **params)

    return t
