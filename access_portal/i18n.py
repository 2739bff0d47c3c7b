"""Languages of the public pages: zh-CN first, English on request.

The language is chosen by ``?lang=en`` / ``?lang=zh`` (remembered in the ``lang`` cookie), then by the cookie,
and is otherwise Chinese: the portal serves the public of Guangdong first. Messages live in one small
catalogue, :data:`MESSAGES`; a key missing in English falls back to Chinese, and an unknown key shows as itself
so a typo is visible on the page rather than an error.
"""

from __future__ import annotations

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
    return value


def translator(lang: str) -> Callable[..., str]:
    def t(key: str, **params: object) -> str:
        return translate(lang, key, **params)

    return t
