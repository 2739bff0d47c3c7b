from __future__ import annotations

from datetime import date

import pytest

from archive.access import (
    AccessDecision,
    add_years,
    decide_access,
    is_public,
    normalise_security_class,
)

TODAY = date(2025, 6, 1)


def decide(
    requested: str = "auto",
    security_class: str | None = None,
    date_end: date | None = None,
    today: date = TODAY,
    years: int = 25,
) -> AccessDecision:
    return decide_access(
        requested=requested,
        security_class=security_class,
        date_end=date_end,
        today=today,
        open_after_years=years,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("公开", None),
        ("无", None),
        ("非密", None),
        ("Public", None),
        ("NONE", None),
        ("\u3000公开\u3000", None),
        ("内部", "内部"),
        ("国内", "内部"),
        ("Internal", "内部"),
        ("秘密", "秘密"),
        ("secret", "秘密"),
        ("机密", "机密"),
        ("Confidential", "机密"),
        ("绝密", "绝密"),
        ("Top Secret", "绝密"),
        ("top-secret", "绝密"),
        ("机密★10年", "机密"),
    ],
)
def test_normalise_security_class(text: str | None, expected: str | None) -> None:
    assert normalise_security_class(text) == expected


@pytest.mark.parametrize("text", ["高度机密", "restricted", "open", "1"])
def test_unknown_security_class_raises(text: str) -> None:
    with pytest.raises(ValueError):
        normalise_security_class(text)


def test_auto_opens_on_the_anniversary_of_the_last_possible_day() -> None:
    year_end = date(1999, 12, 31)  # "1999"
    assert decide(date_end=year_end, today=date(2024, 12, 30)).status == "restricted"
    opened = decide(date_end=year_end, today=date(2024, 12, 31))
    assert (opened.status, opened.basis, opened.review_on) == ("open", "law-art27-open", date(2024, 12, 31))


def test_auto_too_young_is_restricted_with_review_date() -> None:
    d = decide(date_end=date(2010, 5, 31))
    assert (d.status, d.basis, d.review_on) == ("restricted", "law-art27-not-yet", date(2035, 5, 31))
    assert "2035-05-31" in d.reason_zh and "2035-05-31" in d.reason_en


def test_leap_day_anniversary_is_never_early() -> None:
    assert add_years(date(2000, 2, 29), 25) == date(2025, 3, 1)
    assert add_years(date(2000, 2, 29), 4) == date(2004, 2, 29)
    assert decide(date_end=date(2000, 2, 29), today=date(2025, 2, 28)).status == "restricted"
    assert decide(date_end=date(2000, 2, 29), today=date(2025, 3, 1)).status == "open"


def test_auto_without_date_is_restricted() -> None:
    d = decide(date_end=None)
    assert (d.status, d.basis, d.review_on) == ("restricted", "date-unknown", None)


def test_archivist_open_even_when_young() -> None:
    d = decide("open", date_end=date(2020, 1, 1))
    assert (d.status, d.basis) == ("open", "archivist-open")
    assert d.review_on == date(2045, 1, 1)
    assert decide("open").status == "open"


def test_archivist_restricted_even_when_old() -> None:
    d = decide("restricted", date_end=date(1950, 12, 31))
    assert (d.status, d.basis) == ("restricted", "archivist-restricted")


@pytest.mark.parametrize("requested", ["auto", "open", "restricted"])
@pytest.mark.parametrize("cls", ["内部", "秘密", "机密", "绝密", "confidential", "某种未知密级"])
def test_classified_is_never_opened(requested: str, cls: str) -> None:
    d = decide(requested, security_class=cls, date_end=date(1900, 12, 31))
    assert (d.status, d.basis, d.review_on) == ("restricted", "classified", None)


def test_public_security_class_is_not_classified() -> None:
    assert decide("auto", security_class="公开", date_end=date(1950, 1, 1)).status == "open"


def test_open_after_years_is_configurable() -> None:
    assert decide(date_end=date(2014, 12, 31), years=10).status == "open"
    assert decide(date_end=date(2015, 12, 31), years=30).review_on == date(2045, 12, 31)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        decide("maybe")
    with pytest.raises(ValueError):
        decide(years=-1)


def test_as_dict_and_frozen() -> None:
    d = decide(date_end=date(2010, 5, 31))
    assert d.as_dict() == {
        "status": "restricted",
        "basis": "law-art27-not-yet",
        "reason_zh": d.reason_zh,
        "reason_en": d.reason_en,
        "review_on": "2035-05-31",
    }
    with pytest.raises(AttributeError):
        d.status = "open"  # type: ignore[misc]


def test_is_public() -> None:
    assert is_public("open")
    assert not is_public("restricted")
    assert not is_public("")
    assert not is_public("OPEN")
