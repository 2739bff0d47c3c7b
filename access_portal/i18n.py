"""Languages of the public pages: zh-CN first, English on request.

The language is chosen by ``?lang=en`` / ``?lang=zh`` (remembered in the ``lang`` cookie), then by the cookie,
and is otherwise Chinese: the portal serves the public of Guangdong first. Messages live in one small
catalogue, :data:`MESSAGES`; a key missing in English falls back to Chinese, and an unknown key shows as itself
so a typo is visible on the page rather than an error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Literal

from starlette.requests import Request

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
DEFAULT_LANG: Lang = "zh"
COOKIE = "lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

MESSAGES: dict[str, dict[str, str]] = {
    "site_name": {"zh": "广东档案公共查询", "en": "Guangdong Archives Public Access"},
    "tagline": {
        "zh": "查询本节点各档案馆的开放档案",
        "en": "Search the open records of the archives on this node",
    },
    "home": {"zh": "首页", "en": "Home"},
    "search": {"zh": "检索", "en": "Search"},
    "search_placeholder": {"zh": "题名、责任者、档号、全文……", "en": "Title, creator, code, full text…"},
    "archives": {"zh": "档案馆", "en": "Archives"},
    "open_records": {"zh": "开放档案", "en": "open records"},
    "catalogue": {"zh": "开放档案目录", "en": "Catalogue of open records"},
    "catalogue_note": {
        "zh": "依《档案法》第二十八条公布的开放档案目录，按形成日期由近及远排列。",
        "en": "Published under Archives Law art. 28; newest first by date of creation.",
    },
    "download_csv": {"zh": "下载 CSV", "en": "Download CSV"},
    "download_json": {"zh": "JSON", "en": "JSON"},
    "results": {"zh": "条结果", "en": "results"},
    "results_at_least": {"zh": "至少", "en": "at least"},
    "no_results": {"zh": "没有找到符合条件的开放档案。", "en": "No open records match."},
    "filters": {"zh": "筛选", "en": "Filters"},
    "clear_filters": {"zh": "清除筛选", "en": "Clear filters"},
    "facet_archive": {"zh": "档案馆", "en": "Archive"},
    "facet_level": {"zh": "级别", "en": "Level"},
    "facet_fonds": {"zh": "全宗", "en": "Fonds"},
    "facet_year": {"zh": "年代", "en": "Decade"},
    "facet_retention": {"zh": "保管期限", "en": "Retention"},
    "facet_format": {"zh": "格式", "en": "Format"},
    "year_range": {"zh": "年份", "en": "Years"},
    "year_from": {"zh": "起", "en": "from"},
    "year_to": {"zh": "止", "en": "to"},
    "apply": {"zh": "应用", "en": "Apply"},
    "sort": {"zh": "排序", "en": "Sort"},
    "sort_relevance": {"zh": "相关度", "en": "Relevance"},
    "sort_date_desc": {"zh": "日期（新→旧）", "en": "Date (newest)"},
    "sort_date_asc": {"zh": "日期（旧→新）", "en": "Date (oldest)"},
    "prev": {"zh": "上一页", "en": "Previous"},
    "next": {"zh": "下一页", "en": "Next"},
    "page": {"zh": "第 {page} 页", "en": "Page {page}"},
    "level_province": {"zh": "省级", "en": "Province"},
    "level_city": {"zh": "市级", "en": "City"},
    "level_county": {"zh": "县级", "en": "County"},
    "retention_permanent": {"zh": "永久", "en": "Permanent"},
    "retention_30y": {"zh": "30年", "en": "30 years"},
    "retention_10y": {"zh": "10年", "en": "10 years"},
    "decade": {"zh": "{decade}年代", "en": "{decade}s"},
    "archival_code": {"zh": "档号", "en": "Archival code"},
    "title": {"zh": "题名", "en": "Title"},
    "creator": {"zh": "责任者", "en": "Creator"},
    "date": {"zh": "日期", "en": "Date"},
    "retention": {"zh": "保管期限", "en": "Retention"},
    "fonds": {"zh": "全宗号", "en": "Fonds"},
    "description": {"zh": "摘要", "en": "Description"},
    "keywords": {"zh": "主题词", "en": "Keywords"},
    "language": {"zh": "语种", "en": "Language"},
    "archive": {"zh": "档案馆", "en": "Archive"},
    "files": {"zh": "文件", "en": "Files"},
    "file_name": {"zh": "文件名", "en": "File"},
    "format": {"zh": "格式", "en": "Format"},
    "size": {"zh": "大小", "en": "Size"},
    "checksum": {"zh": "SHA-256 校验值", "en": "SHA-256 checksum"},
    "role_original": {"zh": "原件", "en": "Original"},
    "role_access": {"zh": "利用件", "en": "Access copy"},
    "role_preservation": {"zh": "保存件", "en": "Preservation copy"},
    "download": {"zh": "下载", "en": "Download"},
    "not_downloadable": {"zh": "已提供利用件", "en": "Access copy provided"},
    "matches_in": {"zh": "命中", "en": "Matches"},
    "field_text": {"zh": "全文", "en": "Full text"},
    "field_description": {"zh": "摘要", "en": "Description"},
    "field_creator": {"zh": "责任者", "en": "Creator"},
    "field_keywords": {"zh": "主题词", "en": "Keywords"},
    "field_title": {"zh": "题名", "en": "Title"},
    "field_code": {"zh": "档号", "en": "Code"},
    "not_found_title": {"zh": "未找到", "en": "Not found"},
    "not_found_body": {
        "zh": "没有找到您要的页面或档案。档案可能不存在，或尚未向社会开放。",
        "en": "The page or record you asked for was not found. It may not exist, or it is not open to the public.",
    },
    "bad_request_title": {"zh": "请求参数有误", "en": "Bad request"},
    "bad_request_body": {
        "zh": "请求中的参数无法识别，请检查后重试。",
        "en": "Some parameters of the request could not be understood; please check them and try again.",
    },
    "unavailable_title": {"zh": "暂时无法检索", "en": "Search unavailable"},
    "unavailable_body": {
        "zh": "检索服务暂时不可用，请稍后再试。",
        "en": "The search service is temporarily unavailable; please try again later.",
    },
    "error_title": {"zh": "出错了", "en": "Something went wrong"},
    "error_body": {
        "zh": "服务器处理请求时出错，我们已记录此问题。请稍后再试。",
        "en": "The server failed to handle the request; the problem has been logged. Please try again later.",
    },
    "back_home": {"zh": "返回首页", "en": "Back to the home page"},
    "api_docs": {"zh": "开放接口（API）", "en": "API"},
    "footer": {
        "zh": "仅展示已向社会开放的档案（《中华人民共和国档案法》第二十七、二十八条）。",
        "en": "Only records open to the public are shown (Archives Law of the PRC, arts. 27–28).",
    },
    "switch_lang": {"zh": "English", "en": "中文"},
    "no_archives": {"zh": "本节点尚未登记档案馆。", "en": "No archives are registered on this node."},
    "total_open": {"zh": "共 {n} 件开放档案", "en": "{n} open records in all"},
    "catalogue_count": {"zh": "共 {n} 件", "en": "{n} records"},
    "text_partial": {"zh": "全文仅部分编入索引", "en": "Full text partly indexed"},
    # federation (issue 10)
    "scope": {"zh": "范围", "en": "Scope"},
    "scope_local": {"zh": "本馆", "en": "This node"},
    "scope_region": {"zh": "全省", "en": "Whole region"},
    "nodes_asked": {"zh": "已查询 {n} 个节点", "en": "{n} nodes asked"},
    "nodes_missing": {
        "zh": "以下档案馆此次未能查询，结果中可能缺少其馆藏：",
        "en": "These archives could not be asked this time; their holdings may be missing below:",
    },
    "status_timeout": {"zh": "超时未答", "en": "did not answer in time"},
    "status_unreachable": {"zh": "无法连接", "en": "unreachable"},
    "status_error": {"zh": "返回错误", "en": "answered with an error"},
    "status_refused": {"zh": "拒绝了本馆的查询", "en": "refused our query"},
    "status_skipped": {"zh": "多次失败，暂停查询", "en": "failing repeatedly, not asked for now"},
    "from_catalogue": {
        "zh": "其条目来自本馆保存的目录副本（截至 {time}），未含全文",
        "en": "its entries come from the harvested catalogue as of {time}, without full text",
    },
    "catalogue_hit": {"zh": "目录副本 · 截至 {time}", "en": "Catalogue copy as of {time}"},
    "held_by": {"zh": "保管单位", "en": "Held by"},
    "remote_note": {
        "zh": "本档案由 {name} 保管，经本馆向保管单位实时查询显示。",
        "en": "This record is held by {name}; it is shown here as that archive answers now.",
    },
    "holder_unavailable_title": {"zh": "保管单位暂时无法访问", "en": "Holding archive unavailable"},
}

from access_portal.staff_messages import STAFF_MESSAGES  # noqa: E402  (the workspace's block, joined here)

if set(STAFF_MESSAGES) & set(MESSAGES):
    raise RuntimeError(f"message keys defined twice: {sorted(set(STAFF_MESSAGES) & set(MESSAGES))}")
MESSAGES.update(STAFF_MESSAGES)

from access_portal.review_messages import REVIEW_MESSAGES  # noqa: E402  (opening review's pages)

if set(REVIEW_MESSAGES) & set(MESSAGES):
    raise RuntimeError(f"message keys defined twice: {sorted(set(REVIEW_MESSAGES) & set(MESSAGES))}")
MESSAGES.update(REVIEW_MESSAGES)


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
