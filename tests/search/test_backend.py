"""The query analysis and highlighting both backends share (``search/backend.py``)."""

from __future__ import annotations

import unicodedata

import pytest

from search.backend import _fold_aligned, highlight, nfkc, normalise, parse_query


def _fold_each(text: str) -> str:
    """The definition :func:`_fold_aligned` must keep: each character NFKC-folded and case-folded where that
    leaves one character, else lower-cased, so positions line up with the text."""
    out = []
    for ch in text:
        folded = unicodedata.normalize("NFKC", ch).casefold()
        out.append(folded if len(folded) == 1 else ch.lower())
    return "".join(out)


@pytest.mark.parametrize(
    "text",
    [
        "广州港务局 Harbour Works 1985",  # NFKC-stable, one-to-one case folding: the fast path
        "Straße ǅ İstanbul ΣΑΣ",  # case folding that changes length (ß → ss, İ → i̇)
        "ＴＩＡＮＨＥ　报告（全角）",  # full-width forms
        "ﬁle ① ℃ e\u0301",  # ligature, circled digit, a combining sequence
        "𝐀𝐁 \U0002f800",  # outside the BMP
    ],
)
def test_folding_is_the_same_whichever_path(text: str) -> None:
    assert _fold_aligned(text) == _fold_each(text)


def test_folding_is_the_same_for_every_character_in_chinese_text() -> None:
    """The fast path replaces the characters NFKC changes one by one (full-width punctuation in archival
    text): each such character, and every other one of the BMP, between Chinese text and a full-width comma."""
    for cp in range(0x10000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        text = f"档案{chr(cp)}Ａ，广州ß"
        assert _fold_aligned(text) == _fold_each(text), hex(cp)


def test_highlight_marks_every_part_of_the_query() -> None:
    parsed = parse_query("港 harbour 广州")
    text = "广州港务局：Harbour works of 广州. Harbourside 港港"
    assert highlight(text, parsed, whole=True) == [
        "<mark>广州港</mark>务局：<mark>Harbour</mark> works of <mark>广州</mark>. Harbourside <mark>港港</mark>"
    ]
    assert highlight("<b>港</b> & 码头", parse_query("港"), whole=True) == [
        "&lt;b&gt;<mark>港</mark>&lt;/b&gt; &amp; 码头"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "广州港，码头：（一）ＡＢＣ１２３　全角",  # full-width punctuation, letters, digits, ideographic space
        "ﬁle ① ㈱ ㍻ ℃ ｶﾞ",  # ligature, circled digit, compatibility forms, half-width kana + voiced mark
        "豈 更 車",  # compatibility ideographs (CJK Compatibility block)
        "e\u0301 \u1100\u1161 A\u030a\u212b",  # combining sequences, conjoining jamo, Angstrom sign
        "𝐀𝐁 \U0002f800 plain",  # mathematical letters and a compatibility ideograph outside the BMP
        "already normal 文本",
    ],
)
def test_fast_nfkc_is_exactly_nfkc(text: str) -> None:
    assert nfkc(text) == unicodedata.normalize("NFKC", text)
    assert normalise(text) == unicodedata.normalize("NFKC", text).casefold()
