"""The one catalogue of page texts (access_portal/messages.toml): every key a template or handler asks for is in
it, in both languages with the same fields, and the texts the pages show are the ones it holds."""

from __future__ import annotations

import re
import string
from pathlib import Path

from access_portal.i18n import LANGS, MESSAGES, translate

PORTAL = Path(__file__).resolve().parents[2] / "access_portal"
#: ``t("key")`` in templates and handlers; a key ending in ``_`` is a prefix joined to a value (``t("role_" ~ r)``)
USE = re.compile(r"""\bt\(\s*["']([a-z0-9_]+)["']""")


def used_keys() -> set[str]:
    files = [*PORTAL.rglob("*.html"), *PORTAL.rglob("*.py")]
    return {m[1] for path in files for m in USE.finditer(path.read_text(encoding="utf-8"))}


def test_every_key_the_pages_use_is_in_the_catalogue() -> None:
    used = used_keys()
    assert len(used) > 150  # the scan finds the pages' keys (public, workspace, review)
    missing = sorted(k for k in used if not k.endswith("_") and k not in MESSAGES)
    assert missing == []
    empty_prefixes = sorted(p for p in used if p.endswith("_") and not any(k.startswith(p) for k in MESSAGES))
    assert empty_prefixes == []


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_each_entry_has_both_languages_with_the_same_fields() -> None:
    wrong = [
        key
        for key, entry in MESSAGES.items()
        if set(entry) != set(LANGS)
        or not all(entry[lang].strip() for lang in LANGS)
        or fields(entry["zh"]) != fields(entry["en"])
    ]
    assert wrong == []


def test_public_workspace_and_review_texts_in_one_catalogue() -> None:
    assert translate("zh", "site_name") == "广东档案公共查询"
    assert translate("en", "staff_site") == "Archives workspace"
    assert translate("zh", "nav_reviews") == "开放审核"
    assert translate("en", "decision_done", n=3) == "3 records decided."
    assert translate("zh", "in_review", id=7, state="待审核") == "该档案在开放审核中（第 7 号，待审核）。"
    assert translate("en", "no-such-key") == "no-such-key"
