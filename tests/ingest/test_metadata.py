from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import pytest

from ingest.metadata import (
    RECORDS_CSV,
    RecordSpec,
    bag_path,
    decode_csv,
    parse_partial_date,
    read_records,
    split_keywords,
)
from ingest.problems import Problem, catalogue, errors, warnings

FILES = ["data/会议纪要/第1次 会议.pdf", "data/会议纪要/第2次 会议.pdf", "data/报告.docx"]

ZH_CSV = (
    "路径,档号,题名,责任者,日期,保管期限,密级,开放状态,全宗号,摘要,主题词,语种\n"
    "会议纪要,GZ001-WS·2020-Y-0001,2020年局务会议纪要,广州市档案局,2020-03,永久,公开,开放,GZ001,"
    "局务会议,会议；纪要,中文\n"
    "data/报告.docx,0001-2020-永久-002,年度工作报告,办公室,20201231,30年,,自动,GZ001,,,\n"
)
EN_CSV = (
    "Path,Archival Code,TITLE,creator,date,retention,security_class,access,"
    "fonds,description,keywords,language\n"
    "data/会议纪要/,GZ001-A-1,Minutes 2020,Archives Bureau,2020,permanent,none,open,GZ001,d,a; b,en\n"
    '报告.docx,GZ001-A-2,"Report, annual",Office,2019-12-31,10y,internal,restricted,GZ001,,,\n'
)


def make_bag(
    tmp_path: Path, files: Iterable[str] = FILES, csv: bytes | None = None
) -> tuple[Path, list[str]]:
    paths = list(files)
    for rel in paths:
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"content of " + rel.encode())
    if csv is not None:
        target = tmp_path / RECORDS_CSV
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(csv)
        paths.append(RECORDS_CSV)
    return tmp_path, paths


def read(
    tmp_path: Path, csv: str | bytes, files: Iterable[str] = FILES
) -> tuple[list[RecordSpec], list[Problem]]:
    data = csv.encode("utf-8") if isinstance(csv, str) else csv
    return read_records(*make_bag(tmp_path, files, data))


def codes(problems: Iterable[Problem]) -> list[str]:
    return [p.code for p in problems]


def by_code(problems: Iterable[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


# --- encodings ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "prefix", "label"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", b"\xef\xbb\xbf", "utf-8-sig"),
        ("utf-16-le", b"\xff\xfe", "utf-16-le"),
        ("utf-16-be", b"\xfe\xff", "utf-16-be"),
        ("gb18030", b"", "gb18030"),
    ],
)
def test_encodings(tmp_path: Path, encoding: str, prefix: bytes, label: str) -> None:
    text = ZH_CSV.replace("\n", "\r\n")
    specs, problems = read(tmp_path, prefix + text.encode(encoding))
    assert problems == []
    assert [s.archival_code for s in specs] == ["GZ001-WS·2020-Y-0001", "0001-2020-永久-002"]
    assert {s.encoding for s in specs} == {label}
    minutes, report = specs
    assert minutes.title == "2020年局务会议纪要"
    assert minutes.files == ["data/会议纪要/第1次 会议.pdf", "data/会议纪要/第2次 会议.pdf"]
    assert (minutes.date_start, minutes.date_end) == (date(2020, 3, 1), date(2020, 3, 31))
    assert minutes.retention == "permanent"
    assert minutes.security_class is None
    assert minutes.access_requested == "open"
    assert minutes.keywords == ["会议", "纪要"]
    assert (minutes.creator, minutes.fonds, minutes.description, minutes.language) == (
        "广州市档案局",
        "GZ001",
        "局务会议",
        "中文",
    )
    assert report.files == ["data/报告.docx"]
    assert (report.date_start, report.date_end) == (date(2020, 12, 31), date(2020, 12, 31))
    assert report.retention == "30y"
    assert report.access_requested == "auto"
    assert (report.row, report.creator, report.description, report.keywords) == (3, "办公室", None, [])


def test_gb18030_is_not_mistaken_for_utf8_and_vice_versa() -> None:
    text = "路径,档号,题名\n报告.docx,A-1,广州市档案馆\n"
    assert decode_csv(text.encode("gb18030")) == (text, "gb18030")
    assert decode_csv(text.encode("utf-8")) == (text, "utf-8")
    # a GB18030 name outside GB2312 (镕) is still fine among ordinary text
    rare = "path,archival_code,title\n报告.docx,A-1,朱镕基同志讲话稿\n"
    assert decode_csv(rare.encode("gb18030")) == (rare, "gb18030")


@pytest.mark.parametrize(
    "data",
    [
        "path,archival_code,title\nr.pdf,A-1,Résumés et idées\n".encode("latin-1"),
        "path,archival_code,title\nr.pdf,A-1,Café crème\n".encode("latin-1"),
        "path,archival_code,title\nr.pdf,A-1,Zürich Straße\n".encode("cp1252"),
        "路径,档号,题名\n报告.docx,A-1,广州\n".encode("utf-16-le"),  # UTF-16 without BOM
        "路徑,檔號,題名\n報告.docx,A-1,廣州\n".encode("big5"),
        bytes(range(256)),
    ],
)
def test_undecodable_is_refused(tmp_path: Path, data: bytes) -> None:
    specs, problems = read(tmp_path, data)
    assert specs == []
    assert codes(problems) == ["META001"]
    assert problems[0].path == RECORDS_CSV


def test_gb18030_needs_a_known_header() -> None:
    assert decode_csv("名称,内容\n报告,广州\n".encode("gb18030")) is None


def test_bad_bytes_after_bom_are_refused() -> None:
    assert decode_csv(b"\xef\xbb\xbfpath,\xff\xfe\n") is None


# --- columns and rows --------------------------------------------------------------------------------------


def test_english_headers_and_quoted_commas(tmp_path: Path) -> None:
    specs, problems = read(tmp_path, EN_CSV)
    assert problems == []
    minutes, report = specs
    assert minutes.path == "data/会议纪要/"
    assert len(minutes.files) == 2
    assert minutes.keywords == ["a", "b"]
    assert report.title == "Report, annual"
    assert report.security_class == "内部"
    assert report.access_requested == "restricted"
    assert report.retention == "10y"


def test_excel_quirks(tmp_path: Path) -> None:
    text = (
        "\ufeff 路径 ,档号*, 题名 ,,\r\n"
        "\u3000会议纪要\u3000 ,  A-1 ,\u3000纪要 ,,\r\n"
        ",,,,\r\n"
        "报告.docx,A-2,报告,,\r\n"
        ",,,,\r\n"
        ",,,,\r\n"
    )
    specs, problems = read(tmp_path, text.encode("gb18030"))
    assert problems == []
    assert [(s.row, s.archival_code, s.title) for s in specs] == [(2, "A-1", "纪要"), (4, "A-2", "报告")]


def test_tab_and_semicolon_delimiters(tmp_path: Path) -> None:
    tab = "路径\t档号\t题名\n会议纪要\tA-1\t纪要, 第一\n报告.docx\tA-2\t报告\n"
    specs, problems = read(tmp_path / "tab", tab)
    assert problems == []
    assert specs[0].title == "纪要, 第一"
    semi = "path;archival_code;title\n会议纪要;A-1;Minutes, 1st\n报告.docx;A-2;Report\n"
    specs, problems = read(tmp_path / "semi", semi)
    assert problems == []
    assert specs[0].title == "Minutes, 1st"


def test_unknown_and_unnamed_columns_are_warnings(tmp_path: Path) -> None:
    text = "路径,档号,题名,备注,\n会议纪要,A-1,纪要,x,y\n报告.docx,A-2,报告,,\n"
    specs, problems = read(tmp_path, text)
    assert len(specs) == 2
    assert errors(problems) == []
    assert codes(warnings(problems)) == ["META016", "META021"]
    assert by_code(problems, "META016")[0].params == {"column": "备注"}
    assert by_code(problems, "META021")[0].params == {"column_number": 5}


def test_column_given_twice(tmp_path: Path) -> None:
    text = "路径,档号,题名,title\n会议纪要,A-1,纪要,Minutes\n报告.docx,A-2,报告,Report\n"
    _, problems = read(tmp_path, text)
    assert codes(problems) == ["META019"]
    assert problems[0].params == {"column": "title", "first": "题名", "second": "title"}


def test_missing_required_columns(tmp_path: Path) -> None:
    _, problems = read(tmp_path, "路径,责任者\n会议纪要,局\n报告.docx,局\n")
    assert codes(problems) == ["META003", "META003"]
    assert [p.params["column"] for p in problems] == ["档号/archival_code", "题名/title"]
    assert {p.dat for p in problems} == {"2-4"}


def test_missing_path_column_skips_file_checks(tmp_path: Path) -> None:
    _, problems = read(tmp_path, "档号,题名\nA-1,纪要\n")
    assert codes(problems) == ["META003"]


@pytest.mark.parametrize("text", ["", "\r\n\r\n", "路径,档号,题名\n", "路径,档号,题名\n,,\n\n"])
def test_empty_csv(tmp_path: Path, text: str) -> None:
    specs, problems = read(tmp_path, text)
    assert specs == []
    assert codes(problems) == ["META015"]


def test_unbalanced_quote(tmp_path: Path) -> None:
    text = '路径,档号,题名\n会议纪要,A-1,纪要\n报告.docx,A-1,"报告\n'
    specs, problems = read(tmp_path, text)
    # the row before the fault is still checked; META014 is not reported since the rest is unread
    assert codes(problems) == ["META002"]
    assert problems[0].params["row"] == 3
    assert len(specs) == 1


def test_unquoted_comma_makes_too_many_values(tmp_path: Path) -> None:
    text = "路径,档号,题名\n会议纪要,A-1,纪要,第一次\n报告.docx,A-2,报告,,\n"
    _, problems = read(tmp_path, text)
    assert codes(problems) == ["META020"]
    assert problems[0].params == {"row": 2, "count": 4, "columns": 3}


def test_multiline_cell_keeps_line_numbers(tmp_path: Path) -> None:
    text = '路径,档号,题名,摘要\n会议纪要,A-1,纪要,"第一行\n第二行"\n报告.docx,,报告,\n'
    specs, problems = read(tmp_path, text)
    assert specs[0].description == "第一行\n第二行"
    assert [(p.code, p.params.get("row")) for p in problems] == [("META004", 4)]


# --- values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("2020", date(2020, 1, 1), date(2020, 12, 31)),
        ("2020-02", date(2020, 2, 1), date(2020, 2, 29)),
        ("2021-02", date(2021, 2, 1), date(2021, 2, 28)),
        ("2020-03-05", date(2020, 3, 5), date(2020, 3, 5)),
        ("20200305", date(2020, 3, 5), date(2020, 3, 5)),
        ("2020.03.05", date(2020, 3, 5), date(2020, 3, 5)),
        ("2020/3/5", date(2020, 3, 5), date(2020, 3, 5)),
        ("2020年3月5日", date(2020, 3, 5), date(2020, 3, 5)),
        ("2020年3月", date(2020, 3, 1), date(2020, 3, 31)),
        ("２０２０－０３", date(2020, 3, 1), date(2020, 3, 31)),
        ("1990~1995", date(1990, 1, 1), date(1995, 12, 31)),
        ("1990-05 至 1990-07-02", date(1990, 5, 1), date(1990, 7, 2)),
    ],
)
def test_dates(text: str, start: date, end: date) -> None:
    assert parse_partial_date(text) == (start, end)


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-30",
        "2023-13",
        "20230230",
        "2020-3/5",
        "20",
        "0000",
        "2020-00",
        "1995~1990",
        "1990~",
        "三月",
        "2020年13月",
    ],
)
def test_malformed_dates(text: str) -> None:
    assert parse_partial_date(text) is None


def test_keywords() -> None:
    assert split_keywords("档案；开放; 通知，会议,纪要、年度") == [
        "档案",
        "开放",
        "通知",
        "会议",
        "纪要",
        "年度",
    ]
    assert split_keywords("档案 开放\u3000通知") == ["档案", "开放", "通知"]
    assert split_keywords("digital archives") == ["digital archives"]
    assert split_keywords("digital archives; OCFL") == ["digital archives", "OCFL"]
    assert split_keywords("") == []


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("会议纪要", "data/会议纪要"),
        ("data/会议纪要/", "data/会议纪要"),
        ("./会议纪要/第1次 会议.pdf", "data/会议纪要/第1次 会议.pdf"),
        ("data\\会议纪要\\第1次 会议.pdf", "data/会议纪要/第1次 会议.pdf"),
        ("data/data/x", "data/data/x"),
        ("data", "data"),
        ("/data/", "data"),
    ],
)
def test_bag_path(written: str, meant: str) -> None:
    assert bag_path(written) == meant


def test_value_spellings(tmp_path: Path) -> None:
    text = (
        "路径,档号,题名,保管期限,开放状态,密级\n"
        "会议纪要/第1次 会议.pdf,A-1,一,定期30年,控制,秘密★5年\n"
        "会议纪要/第2次 会议.pdf,A-2,二,D10,Auto,非密\n"
        "报告.docx,A-3,三,Permanent,OPEN,\n"
    )
    specs, problems = read(tmp_path, text)
    assert problems == []
    assert [(s.retention, s.access_requested, s.security_class) for s in specs] == [
        ("30y", "restricted", "秘密"),
        ("10y", "auto", None),
        ("permanent", "open", None),
    ]


def test_legacy_retention_is_mapped_with_a_warning(tmp_path: Path) -> None:
    text = "路径,档号,题名,保管期限\n会议纪要,A-1,纪要,长期\n报告.docx,A-2,报告,短期\n"
    specs, problems = read(tmp_path, text)
    assert [s.retention for s in specs] == ["30y", "10y"]
    assert codes(problems) == ["META017", "META017"]
    assert all(p.severity == "warning" for p in problems)


# --- every problem, with its line --------------------------------------------------------------------------


def test_every_row_problem_is_reported(tmp_path: Path) -> None:
    files = [*FILES, "data/照片/1.jpg", "data/照片/2.jpg", "data/遗漏.txt", "data/metadata/说明.txt"]
    text = (
        "路径,档号,题名,日期,保管期限,开放状态,密级\n"  # 1
        "会议纪要,A-1,纪要,2023-02-30,永久,,\n"  # 2 malformed date
        "报告.docx,,,2020,永远,也许,\n"  # 3 missing code and title, unknown retention and access
        "照片,A-3,照片,2020,,开放,机密\n"  # 4 open requested on a classified record
        "照片/1.jpg,A-4,照片一,,,,高度机密\n"  # 5 unknown security class; overlaps row 4
        "不存在.pdf,A-1,重复,,,,\n"  # 6 duplicate code; path not in the payload
        "会议纪要/第1次 会议.pdf,A/5,坏档号,,,,\n"  # 7 bad code; overlaps row 2
        "metadata/说明.txt,A-7,说明,,,,\n"  # 8 reserved folder
        "报告.docx,a-1,报告二,,,,\n"  # 9 duplicate code (case); same file as row 3
    )
    specs, problems = read(tmp_path, text, files)
    assert len(specs) == 8
    found = [(p.code, p.params.get("row")) for p in problems]
    assert found == [
        ("META005", 2),
        ("META004", 3),
        ("META004", 3),
        ("META006", 3),
        ("META007", 3),
        ("META009", 4),
        ("META008", 5),
        ("META011", 7),
        ("META010", 6),
        ("META010", 9),
        ("META012", 6),
        ("META018", 8),
        ("META013", 5),
        ("META013", 7),
        ("META013", 9),
        ("META014", None),
    ]
    assert by_code(problems, "META014")[0].path == "data/遗漏.txt"
    dup = by_code(problems, "META010")
    assert [(p.params["archival_code"], p.params["first_row"]) for p in dup] == [("A-1", 2), ("a-1", 2)]
    assert all(p.dat == "1-8" for p in dup)
    assert {p.dat for p in by_code(problems, "META004")} == {"2-4"}
    overlap = by_code(problems, "META013")
    assert [(p.path, p.params["other_row"], p.params["count"]) for p in overlap] == [
        ("data/照片/1.jpg", 4, 1),
        ("data/会议纪要/第1次 会议.pdf", 2, 1),
        ("data/报告.docx", 3, 1),
    ]
    assert by_code(problems, "META011")[0].params["chars"] == "/"
    assert by_code(problems, "META012")[0].params["written"] == "不存在.pdf"
    classified = specs[2]
    assert classified.security_class == "机密" and classified.access_requested == "open"
    assert specs[3].security_class == "高度机密"  # unknown → kept, so it counts as classified
    assert specs[1].access_requested == "restricted"  # unknown access value → restricted (fail safe)
    for p in problems:  # every message renders in both languages with no unfilled field
        assert "{" not in p.message_zh and "{" not in p.message_en
        assert p.info.zh and p.info.en


def test_control_characters_in_codes(tmp_path: Path) -> None:
    text = '路径,档号,题名\n会议纪要,"A\t1",纪要\n报告.docx,A:2,报告\n'
    _, problems = read(tmp_path, text)
    assert [(p.code, p.params["chars"]) for p in problems] == [("META011", "U+0009"), ("META011", ":")]


@pytest.mark.parametrize(
    "code", ["GZ001-WS·2020-Y-0001", "0001-2020-永久-001", "GZ001（2020）-1", "J1.2_3", "ＧＺ００１－１"]
)
def test_good_codes(tmp_path: Path, code: str) -> None:
    _, problems = read(tmp_path, f"路径,档号,题名\ndata,{code},全部\n")
    assert problems == []


def test_whole_payload_row_and_metadata_files(tmp_path: Path) -> None:
    files = [*FILES, "data/metadata/说明.txt"]
    specs, problems = read(tmp_path, "path,archival_code,title\ndata,A-1,All\n", files)
    assert problems == []
    assert specs[0].files == sorted(FILES)


def test_nfd_paths_match_nfc_rows(tmp_path: Path) -> None:
    name = "data/café/é.pdf"
    nfd = unicodedata.normalize("NFD", name)
    specs, problems = read(tmp_path, "path,archival_code,title\ncafé,A-1,x\n", [nfd])
    assert problems == []
    assert specs[0].files == [nfd]


def test_uncovered_files_each_reported(tmp_path: Path) -> None:
    _, problems = read(tmp_path, "路径,档号,题名\n会议纪要/第1次 会议.pdf,A-1,纪要\n")
    assert [(p.code, p.path) for p in problems] == [
        ("META014", "data/会议纪要/第2次 会议.pdf"),
        ("META014", "data/报告.docx"),
    ]


def test_as_dict(tmp_path: Path) -> None:
    specs, _ = read(tmp_path, ZH_CSV)
    d = specs[0].as_dict()
    assert d["archival_code"] == "GZ001-WS·2020-Y-0001"
    assert (d["date"], d["date_start"], d["date_end"]) == ("2020-03", "2020-03-01", "2020-03-31")
    assert d["source"] == {"file": RECORDS_CSV, "row": 2, "encoding": "utf-8"}
    assert d["keywords"] == ["会议", "纪要"]


def test_records_csv_found_case_insensitively(tmp_path: Path) -> None:
    root, paths = make_bag(tmp_path)
    (root / "data/metadata").mkdir()
    (root / "data/metadata/Records.CSV").write_text("路径,档号,题名\ndata,A-1,全部\n", encoding="utf-8")
    specs, problems = read_records(root, [*paths, "data/metadata/Records.CSV"])
    assert problems == []
    assert specs[0].source == "data/metadata/Records.CSV"


def test_unreadable_csv(tmp_path: Path) -> None:
    specs, problems = read_records(tmp_path, [*FILES, RECORDS_CSV])  # listed but not on disk
    assert (specs, codes(problems)) == ([], ["META025"])


# --- without records.csv -----------------------------------------------------------------------------------


def test_folder_convention(tmp_path: Path) -> None:
    files = [*FILES, "data/metadata/说明.txt"]
    specs, problems = read_records(*make_bag(tmp_path, files))
    assert problems == []
    assert [(s.path, s.archival_code, s.title, s.row) for s in specs] == [
        ("data/会议纪要", "会议纪要", "会议纪要", None),
        ("data/报告.docx", "报告", "报告", None),
    ]
    assert specs[0].files == FILES[:2]
    assert all(s.access_requested == "auto" and s.date_end is None for s in specs)
    assert all(s.source is None and s.encoding is None for s in specs)


def test_folder_convention_problems(tmp_path: Path) -> None:
    files = ["data/a.pdf", "data/A.docx", "data/bad:name.pdf", "data/metadata/records.xlsx"]
    _, problems = read_records(*make_bag(tmp_path, files))
    assert [(p.code, p.path) for p in problems] == [
        ("META022", "data/metadata/records.xlsx"),
        ("META024", "data/a.pdf"),
        ("META023", "data/bad:name.pdf"),
    ]
    assert by_code(problems, "META024")[0].params == {"other": "data/A.docx", "archival_code": "a"}


def test_every_metadata_code_is_exercised_and_documented() -> None:
    meta = sorted(c for c in catalogue() if c.startswith("META"))
    assert meta == [f"META{i:03d}" for i in range(1, 26)]
    assert catalogue()["META003"].dat == catalogue()["META004"].dat == "2-4"
    assert catalogue()["META010"].dat == "1-8"
    tested = Path(__file__).read_text(encoding="utf-8")
    assert all(f'"{code}"' in tested for code in meta)
