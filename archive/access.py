"""Access rules: whether a record is open to the public (Archives Law of the PRC, 2020, art. 27).

Art. 27: records held by an archive are, as a rule, opened to society 25 years after they were formed
(满二十五年); records may be opened earlier, and records touching state security or major interests may be
held back longer. This module turns that rule and the archivist's request into one :class:`AccessDecision`.
It is pure: no database, no clock (``today`` is passed in), so every exit and the review screen decide alike.

The rules, in order:

1. **Classified records are never opened automatically.** A security class (密级) other than
   公开/none — 内部, 秘密, 机密, 绝密 — gives ``restricted`` with basis ``classified``, whatever was
   requested. An archivist asking to open a classified record is a contradiction; the metadata reader reports
   it as an input error, and this function still answers ``restricted``/``classified``. A security class
   this module does not know is treated as classified (fail safe).
2. ``requested == "restricted"`` → ``restricted``, basis ``archivist-restricted``.
3. ``requested == "open"`` → ``open``, basis ``archivist-open`` — even for a record younger than 25 years:
   art. 27 allows opening earlier, and that is the archivist's call.
4. ``requested == "auto"``:

   - no date → ``restricted``, basis ``date-unknown`` (nobody can say when 25 years have passed);
   - ``review_on <= today`` → ``open``, basis ``law-art27-open``;
   - otherwise → ``restricted``, basis ``law-art27-not-yet``.

``review_on`` is the day the N-year rule reaches the record: the **last** day its (possibly partial) date can
mean, plus N calendar years. A record dated "1999" (last day 1999-12-31) opens on 2024-12-31; "1999-02"
(last day 1999-02-28) on 2024-02-28; "2000-02-29" on 2025-03-01 (a 29 February anniversary in a common
year falls on 1 March, never a day early). ``review_on`` is given whenever the record is unclassified and
its date is known — for an archivist's decision too, as the day a restriction is due for review — and is
``None`` otherwise.

:func:`is_public` is the single predicate every public exit (pages, API, search index, federation, OAI-PMH)
uses to decide whether a record may be shown.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

AccessStatus = Literal["open", "restricted"]
Requested = Literal["open", "restricted", "auto"]

REQUESTS: tuple[str, ...] = ("open", "restricted", "auto")
#: Canonical security classes, least to most secret.
SECURITY_CLASSES: tuple[str, ...] = ("内部", "秘密", "机密", "绝密")

# Keys are compared after NFKC, case folding and removal of spaces, hyphens and underscores.
_UNCLASSIFIED = frozenset(
    {"", "公开", "无", "无密级", "非密", "不涉密", "非涉密", "public", "none", "unclassified", "/", "—"}
)
_CLASSES = {
    "内部": "内部",
    "国内": "内部",
    "internal": "内部",
    "秘密": "秘密",
    "secret": "秘密",
    "机密": "机密",
    "confidential": "机密",
    "绝密": "绝密",
    "topsecret": "绝密",
}
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_security_class(text: str | None) -> str | None:
    """The canonical security class, or ``None`` for an unclassified record.

    公开/无/非密/public/none/empty → ``None``; 内部/国内/internal → 内部; 秘密/secret → 秘密;
    机密/confidential → 机密; 绝密/top secret → 绝密. A marking with its term (``机密★10年``) counts by the
    part before the star. Raises :class:`ValueError` for anything else.
    """
    if text is None:
        return None
    key = unicodedata.normalize("NFKC", text)
    key = re.split(r"[★☆]", key, maxsplit=1)[0].strip().casefold()
    if key in _UNCLASSIFIED:
        return None
    key = _SEPARATORS.sub("", key)
    if key in _UNCLASSIFIED:
        return None
    if key in _CLASSES:
        return _CLASSES[key]
    raise ValueError(f"unknown security class {text!r}")


def add_years(day: date, years: int) -> date:
    """``day`` plus calendar years; 29 February moves to 1 March in a common year (never a day early)."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return date(day.year + years, 3, 1)


def is_public(status: str) -> bool:
    """The one test every public exit applies: only ``open`` records are ever shown."""
    return status == "open"


@dataclass(frozen=True)
class AccessDecision:
    status: AccessStatus
    #: archivist-open | archivist-restricted | law-art27-open | law-art27-not-yet | classified | date-unknown
    basis: str
    reason_zh: str
    reason_en: str
    review_on: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "basis": self.basis,
            "reason_zh": self.reason_zh,
            "reason_en": self.reason_en,
            "review_on": self.review_on.isoformat() if self.review_on else None,
        }


def decide_access(
    *,
    requested: str,
    security_class: str | None,
    date_end: date | None,
    today: date,
    open_after_years: int = 25,
) -> AccessDecision:
    """Decide whether a record is open; see the module docstring for the rules."""
    if requested not in REQUESTS:
        raise ValueError(f"requested must be one of {', '.join(REQUESTS)}, not {requested!r}")
    if open_after_years < 0:
        raise ValueError("open_after_years must not be negative")
    years = open_after_years
    try:
        cls = normalise_security_class(security_class)
    except ValueError:
        cls = (security_class or "").strip()  # unknown marking: treat as classified
    if cls is not None:
        return AccessDecision(
            "restricted",
            "classified",
            f"密级为「{cls}」，涉密档案不自动开放",
            f"Security class {cls!r}: classified records are never opened automatically",
        )
    review_on = add_years(date_end, years) if date_end is not None else None
    if requested == "open":
        return AccessDecision(
            "open",
            "archivist-open",
            "档案员决定开放（《档案法》第二十七条允许提前开放）",
            "Opened by the archivist (Archives Law art. 27 allows opening before the term)",
            review_on,
        )
    if requested == "restricted":
        return AccessDecision(
            "restricted",
            "archivist-restricted",
            "档案员决定控制使用，暂不开放",
            "Restricted by the archivist",
            review_on,
        )
    if review_on is None:
        return AccessDecision(
            "restricted",
            "date-unknown",
            f"形成日期不详，无法判断是否已满{years}年，暂不开放",
            f"Date unknown, so it cannot be told whether {years} years have passed; not opened",
        )
    if review_on <= today:
        return AccessDecision(
            "open",
            "law-art27-open",
            f"自形成之日起已满{years}年（{review_on.isoformat()} 起），依《档案法》第二十七条开放",
            f"{years} years have passed since it was formed (from {review_on.isoformat()}); "
            "open under Archives Law art. 27",
            review_on,
        )
    return AccessDecision(
        "restricted",
        "law-art27-not-yet",
        f"自形成之日起未满{years}年，将于 {review_on.isoformat()} 满期",
        f"Less than {years} years since it was formed; the term ends on {review_on.isoformat()}",
        review_on,
    )
