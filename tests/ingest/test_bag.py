from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import socket
from pathlib import Path

import bagit
import pytest

from ingest.bag import Bag, ValidationReport, open_bag, validate_bag, verify_bag
from tests.factories import add_manifest_line, make_bag, rewrite_tag_manifests

FILES = {
    "目录 一/文件.pdf": b"%PDF-1.4 fake\n",
    "with space/a b.txt": b"hello world\n",
    "readme.txt": b"read me\n",
}


def codes(report: ValidationReport | Bag) -> list[str]:
    return sorted(p.code for p in report.problems)


def only(report: ValidationReport, code: str) -> list[dict[str, object]]:
    return [p.as_dict() for p in report.problems if p.code == code]


def sha(data: bytes, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, data).hexdigest()


# ------------------------------------------------------------------------------------------------ valid bags


def test_valid_bag_with_chinese_and_space_names(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256", "sha512"))
    report = validate_bag(bag, workers=2)
    assert report.valid and report.problems == []
    assert report.file_count == 3
    assert report.byte_count == sum(map(len, FILES.values()))
    f = report.files["data/目录 一/文件.pdf"]
    assert f.digests["sha256"] == sha(FILES["目录 一/文件.pdf"])
    assert f.digests["sha512"] == sha(FILES["目录 一/文件.pdf"], "sha512")
    d = report.as_dict()
    json.dumps(d, ensure_ascii=False)
    assert d["valid"] is True and d["bagit_version"] == "1.0"


def test_open_bag_reads_structure(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256",), info={"Source-Organization": "广州市档案馆"})
    with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
        fh.write("External-Description: 第一行\n   第二行\nSource-Organization: 第二个\n")
    rewrite_tag_manifests(bag)
    b = open_bag(bag)
    assert b.problems == []
    assert b.version == "1.0" and b.algorithms == ("sha256",)
    assert sorted(b.payload) == sorted("data/" + p for p in FILES)
    assert b.payload["data/readme.txt"].size == len(FILES["readme.txt"])
    assert b.info_values("source-organization") == ["广州市档案馆", "第二个"]
    assert b.info_values("External-Description") == ["第一行 第二行"]
    assert b.oxum == (sum(map(len, FILES.values())), 3)
    assert "bagit.txt" in b.tag_files and "tagmanifest-sha256.txt" in b.tag_files


def test_percent_encoded_names_in_bagit_1_0(tmp_path: Path) -> None:
    files = {"100% 完成.txt": b"a", "line\nbreak.txt": b"b", "cr\rname.txt": b"c", "%41.txt": b"d"}
    bag = make_bag(tmp_path, files, ("sha256",))
    manifest = (bag / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert "data/100%25 完成.txt" in manifest and "line%0Abreak" in manifest
    report = validate_bag(bag)
    assert report.valid, [str(p) for p in report.problems]
    assert set(report.files) == {"data/" + p for p in files}


def test_names_are_literal_before_1_0(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"%7Etest.txt": b"x", "a%25b": b"y"}, ("sha256",), version="0.97")
    report = validate_bag(bag)
    assert report.valid, [str(p) for p in report.problems]
    assert set(report.files) == {"data/%7Etest.txt", "data/a%25b"}


def test_sm3_manifest_accepted(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sm3",))
    report = validate_bag(bag)
    assert report.valid and report.problems == []
    assert report.files["data/readme.txt"].digests["sm3"] == sha(FILES["readme.txt"], "sm3")


def test_multiple_manifests_and_extra_algorithms(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("md5", "sha1", "sha256", "sha512"))
    b = open_bag(bag)
    v = verify_bag(b, extra_algorithms=("sm3", "SHA384"))
    assert v.problems == []
    assert v.algorithms == ("md5", "sha1", "sha256", "sha384", "sha512", "sm3")
    for path, f in v.files.items():
        content = FILES[path.removeprefix("data/")]
        assert f.digests == {a: sha(content, a) for a in v.algorithms}


def test_other_tag_file_encodings(tmp_path: Path) -> None:
    for i, encoding in enumerate(("UTF-16", "ISO-8859-1", "GB18030")):
        files = {"café.txt": b"x"} if encoding == "ISO-8859-1" else {"文件.txt": b"x"}
        bag = make_bag(tmp_path / str(i), files, ("sha256",), encoding=encoding, info={"Contact-Name": "Zoë"})
        report = validate_bag(bag)
        assert report.valid and report.problems == [], (encoding, [str(p) for p in report.problems])


def test_verify_copies_each_payload_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256",))
    out = tmp_path / "out"
    b = open_bag(bag)
    v = verify_bag(b, destination=lambda p: out / p if p != "data/readme.txt" else None, workers=2)
    assert v.problems == []
    assert (out / "data/目录 一/文件.pdf").read_bytes() == FILES["目录 一/文件.pdf"]
    assert (out / "data/with space/a b.txt").read_bytes() == FILES["with space/a b.txt"]
    assert not (out / "data/readme.txt").exists()


def test_progress_reports_payload(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256",))
    seen: list[tuple[int, int]] = []
    validate_bag(bag, progress=lambda f, n: seen.append((f, n)))
    assert seen[-1] == (3, sum(map(len, FILES.values())))


# ----------------------------------------------------------------------------------------------- refusals


def test_checksum_mismatch(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256",))
    (bag / "data/readme.txt").write_bytes(b"READ ME\n")  # same size: only the checksum can tell
    report = validate_bag(bag)
    assert codes(report) == ["BAG023"]
    [p] = only(report, "BAG023")
    assert p["path"] == "data/readme.txt" and p["dat_70_2018"] == "1-14"
    assert p["params"] == {"algorithm": "sha256", "expected": sha(b"read me\n"), "actual": sha(b"READ ME\n")}
    assert "数据文件校验值不符" in str(p["message_zh"]) and "sha256" in str(p["message_en"])


def test_oxum_mismatch_count_and_bytes(tmp_path: Path) -> None:
    report = validate_bag(make_bag(tmp_path / "a", FILES, oxum="1.1"))
    assert codes(report) == ["BAG027", "BAG028"]
    assert only(report, "BAG027")[0]["dat_70_2018"] == "2-1"
    assert only(report, "BAG028")[0]["dat_70_2018"] == "2-2"
    assert only(report, "BAG027")[0]["params"] == {"expected": "1", "actual": "3"}
    report = validate_bag(make_bag(tmp_path / "b", FILES, oxum="12 bytes"))
    assert codes(report) == ["BAG026"]


def test_extra_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    (bag / "data/目录 一/多余.txt").write_bytes(b"extra")
    report = validate_bag(bag)
    assert codes(report) == ["BAG019"]
    assert report.problems[0].path == "data/目录 一/多余.txt"


def test_missing_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    (bag / "data/with space/a b.txt").unlink()
    report = validate_bag(bag)
    assert codes(report) == ["BAG021"]
    assert report.problems[0].path == "data/with space/a b.txt"


def test_file_not_in_every_manifest(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256", "sha512"))
    lines = (bag / "manifest-sha512.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (bag / "manifest-sha512.txt").write_text("".join(lines[1:]), encoding="utf-8")
    rewrite_tag_manifests(bag)
    report = validate_bag(bag)
    assert codes(report) == ["BAG020"]
    assert report.problems[0].params["missing_from"] == "manifest-sha512.txt"


def test_fetch_txt_with_absent_file_is_incomplete(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, fetch={"readme.txt": "https://example.org/readme.txt"})
    assert validate_bag(bag).valid  # every fetched file is there: fine
    (bag / "data/readme.txt").unlink()
    report = validate_bag(bag)
    assert not report.valid
    assert "BAG022" in codes(report) and "BAG021" not in codes(report)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("data/../../etc/passwd", "BAG013"),
        ("../outside.txt", "BAG013"),
        ("/etc/passwd", "BAG013"),
        ("~/secret", "BAG013"),
        ("data\\..\\..\\x", "BAG014"),
        ("C:/Windows/x", "BAG014"),
        ("other/file.txt", "BAG015"),
    ],
)
def test_paths_escaping_the_bag(tmp_path: Path, line: str, code: str) -> None:
    bag = make_bag(tmp_path, FILES)
    add_manifest_line(bag, "sha256", f"{sha(b'')}  {line}")
    report = validate_bag(bag)
    assert codes(report) == [code]
    assert report.problems[0].params["listed_in"] == "manifest-sha256.txt"


def test_fetch_path_escaping_the_bag(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    (bag / "fetch.txt").write_text("https://example.org/x 12 ../../x\n", encoding="utf-8")
    assert codes(validate_bag(bag)) == ["BAG013"]


def test_symlink_out_and_in(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    (tmp_path / "secret").write_bytes(b"secret")
    (bag / "data/out").symlink_to(tmp_path / "secret")
    (bag / "data/in").symlink_to(bag / "data/readme.txt")
    (bag / "data/dir-in").symlink_to("目录 一")
    report = validate_bag(bag)
    assert codes(report) == ["BAG029", "BAG030", "BAG030"]
    assert {p.path for p in report.problems} == {"data/out", "data/in", "data/dir-in"}


def test_hard_link(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    os.link(bag / "data/readme.txt", tmp_path / "elsewhere")
    report = validate_bag(bag)
    assert codes(report) == ["BAG031"]
    assert report.problems[0].params["links"] == 2


def test_fifo_and_socket_are_refused_without_blocking(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    os.mkfifo(bag / "data/pipe")
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(bag / "data/sock"))
        report = validate_bag(bag)
    finally:
        sock.close()
    assert codes(report) == ["BAG032", "BAG032"]


def test_device_file_is_refused(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    try:
        os.mknod(bag / "data/null", 0o600 | 0o020000, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("creating a device file needs CAP_MKNOD")
    assert codes(validate_bag(bag)) == ["BAG032"]


def test_tag_manifest_mismatch(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
        fh.write("Contact-Name: 改过\n")
    report = validate_bag(bag)
    assert codes(report) == ["BAG024"]
    assert report.problems[0].path == "bag-info.txt"


def test_tag_manifest_lists_missing_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    (bag / "bag-info.txt").unlink()
    assert codes(validate_bag(bag)) == ["BAG025"]


def test_undecodable_tag_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    (bag / "bag-info.txt").write_bytes(b"Contact-Name: \xff\xfe\xc3\n")
    rewrite_tag_manifests(bag)
    report = validate_bag(bag)
    assert codes(report) == ["BAG008"]
    assert report.problems[0].path == "bag-info.txt"


def test_empty_payload(tmp_path: Path) -> None:
    report = validate_bag(make_bag(tmp_path, {}))
    assert codes(report) == ["BAG033"]


def test_bag_structure_problems(tmp_path: Path) -> None:
    assert codes(validate_bag(tmp_path / "nothing-here")) == ["BAG001"]
    bag = make_bag(tmp_path, FILES)
    (bag / "bagit.txt").unlink()
    shutil.rmtree(bag / "data")
    (bag / "manifest-sha256.txt").unlink()
    (bag / "tagmanifest-sha256.txt").unlink()
    # the Oxum of bag-info.txt still counts the payload that is gone
    assert codes(validate_bag(bag)) == ["BAG002", "BAG009", "BAG010", "BAG027", "BAG028"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (b"\xef\xbb\xbfBagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", "BAG003"),
        (b"BagIt-Version : 1.0\nTag-File-Character-Encoding: UTF-8\n", "BAG004"),
        (b"BagIt-Version: 1.0 \nTag-File-Character-Encoding: UTF-8\n", "BAG004"),
        (b"Tag-File-Character-Encoding: UTF-8\n", "BAG005"),
        (b"BagIt-Version: 2.0\nTag-File-Character-Encoding: UTF-8\n", "BAG006"),
        (b"BagIt-Version: 1.0\nTag-File-Character-Encoding: KLINGON-8\n", "BAG007"),
    ],
)
def test_bad_bagit_txt(tmp_path: Path, text: bytes, code: str) -> None:
    bag = make_bag(tmp_path, FILES)
    (bag / "bagit.txt").write_bytes(text)
    rewrite_tag_manifests(bag)
    assert codes(validate_bag(bag)) == [code]


def test_unsupported_algorithm_and_malformed_lines(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES)
    (bag / "manifest-whirlpool.txt").write_text("abc  data/readme.txt\n", encoding="utf-8")
    add_manifest_line(bag, "sha256", "not-a-digest data/readme.txt")
    add_manifest_line(bag, "sha256", f"{sha(b'')[:-2]}  data/short-digest.txt")
    with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
        fh.write("no colon on this line\n")
    (bag / "fetch.txt").write_text("just-a-url\n", encoding="utf-8")
    rewrite_tag_manifests(bag)
    assert codes(validate_bag(bag)) == ["BAG011", "BAG012", "BAG012", "BAG035", "BAG036"]


@pytest.mark.parametrize(("version", "code"), [("0.97", "BAG017"), ("1.0", "BAG018")])
def test_same_path_twice(tmp_path: Path, version: str, code: str) -> None:
    bag = make_bag(tmp_path, FILES, version=version)
    add_manifest_line(bag, "sha256", f"{sha(FILES['readme.txt'])}  data/readme.txt")
    report = validate_bag(bag)
    assert codes(report) == [code]
    assert report.valid is (version == "0.97")
    add_manifest_line(bag, "sha256", f"{sha(b'other')}  data/readme.txt")
    assert "BAG016" in codes(validate_bag(bag))


def test_file_name_not_utf8(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, oxum=False)
    (bag / "data").joinpath(os.fsdecode(b"caf\xe9.txt")).write_bytes(b"latin-1 name")
    assert codes(validate_bag(bag)) == ["BAG037"]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    """A file that vanishes between reading the structure and hashing (as root, chmod 000 can't stop us)."""
    bag = make_bag(tmp_path, FILES)
    b = open_bag(bag)
    (bag / "data/readme.txt").unlink()
    v = verify_bag(b)
    assert [p.code for p in v.problems] == ["BAG034"]
    assert v.files["data/readme.txt"].error


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, FILES, ("sha256", "sha512"), oxum="999.9")
    (bag / "data/readme.txt").write_bytes(b"changed!")  # mismatch in both manifests
    (bag / "data/with space/a b.txt").unlink()  # missing
    (bag / "data/extra.bin").write_bytes(b"x")  # extra
    (bag / "data/link").symlink_to("/etc/passwd")  # symlink out
    add_manifest_line(bag, "sha256", f"{sha(b'')}  ../escape")  # escape; tag manifests refreshed
    with open(bag / "bagit.txt", "a", encoding="utf-8") as fh:  # tag mismatch
        fh.write("\n")
    report = validate_bag(bag)
    assert codes(report) == sorted(
        ["BAG013", "BAG019", "BAG021", "BAG023", "BAG023", "BAG024", "BAG024", "BAG027", "BAG028", "BAG029"]
    )
    again = validate_bag(bag, workers=1)
    assert [p.as_dict() for p in again.problems] == [p.as_dict() for p in report.problems]  # deterministic
    assert [p.severity for p in report.problems] == sorted(p.severity for p in report.problems)


# ------------------------------------------------------------------------------------------------ warnings


def test_warnings_keep_the_bag_valid(tmp_path: Path) -> None:
    files = {".DS_Store": b"", "Thumbs.db": b"", "Readme.txt": b"a", "README.txt": b"b", "e\u0301.txt": b"c"}
    report = validate_bag(make_bag(tmp_path, files, ("md5",)))
    assert report.valid
    assert codes(report) == ["BAG038", "BAG039", "BAG041", "BAG041"]


def test_nfd_manifest_matches_nfc_file(tmp_path: Path) -> None:
    bag = make_bag(tmp_path, {"Nu\u0301n\u0303ez.txt": b"x"})
    (bag / "data/Nu\u0301n\u0303ez.txt").rename(bag / "data/N\u00fa\u00f1ez.txt")
    report = validate_bag(bag)
    assert report.valid and codes(report) == ["BAG045"]


# ------------------------------------------- the one-pass readers agree with the line-by-line ones

MANIFEST_LINES = [
    "data/a.txt",
    "data/目录 一/文件 (副本).pdf",
    "data/tab\there.txt",
    "data/..hidden/x",
    "data/a/.b",
    "*data/starred.txt",
    "./data/dotted.txt",
    "data/../escape.txt",
    "data/./a.txt",
    "data//double.txt",
    "data/a/..",
    "data/pct%0Aname.txt",
    "data/back\\slash.txt",
    "data/",
    "data",
    "tagfile.txt",
]


def test_one_pass_manifest_reading_agrees_with_line_by_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a manifest holds, the one-regex pass gives what the careful path gives, or steps aside."""
    from ingest import bag as bag_module

    rng = random.Random(8493)
    digest = sha(b"x")
    for i in range(300):
        plain = rng.random() < 0.5  # half the manifests plain enough for the one-pass reader
        lines = [
            f"{digest if plain else rng.choice([digest, digest.upper(), digest[:-1]])}"
            f"{rng.choice([' ', '  ', chr(9)])}{rng.choice(MANIFEST_LINES[:5] if plain else MANIFEST_LINES)}"
            for _ in range(rng.randint(1, 4))
        ]
        ending = rng.choice(["\n", "\r\n", ""])
        text = ending.join(lines) + rng.choice([ending, "", "\n\n"])

        def parse(fast: bool, text: str = text) -> tuple[dict[str, str], list[str]]:
            reader = bag_module._Reader(Path("/nonexistent"))
            reader.read_text = lambda name: text  # type: ignore[method-assign]
            if not fast:
                monkeypatch.setattr(bag_module._Reader, "_fast_manifest", lambda *a: False)
            manifest = reader.manifest("manifest-sha256.txt", "sha256", payload=True)
            monkeypatch.undo()
            assert manifest is not None
            return manifest.entries, [str(p) for p in reader.problems]

        assert parse(True) == parse(False), (i, text)


def test_one_pass_disk_checks_agree_with_per_path(tmp_path: Path) -> None:
    from ingest import bag as bag_module

    cases = [
        ["data/a", "data/b"],
        ["data/A.txt", "data/a.txt"],
        ["data/N\u00fa\u00f1ez", "data/Nu\u0301n\u0303ez"],
        ["data/x/.DS_Store", "data/y"],
        ["data/__MACOSX/z", "data/._z"],
        ["data/Thumbs.DB"],
        ["data/a\nb", "data/c", "data/C"],  # a newline in a name must not hide the c/C pair
        ["data/ok/文件", "data/ok/檔案"],
    ]
    for paths in cases:
        results = []
        for fast in (True, False):
            reader = bag_module._Reader(tmp_path)
            reader.bag.payload = {p: bag_module.PayloadFile(p, 0) for p in paths}
            if fast:
                reader.disk_warnings()
            else:  # the per-path loop alone: pretend a name holds a newline
                reader.bag.payload["data/\nforce"] = bag_module.PayloadFile("data/\nforce", 0)
                reader.disk_warnings()
            results.append(sorted(str(p) for p in reader.problems))
        assert results[0] == results[1], paths


# ------------------------------------------------------------------ randomized cross-check with bagit.py

# No "%" in names: bagit.py 1.9 does not decode RFC 8493's %25 (see test_percent_encoded_names_in_bagit_1_0).
NAME_PARTS = ["文件", "档案 2024", "a b", "report", "数据", "x-y_z", "目录", "Ünïcödé", "~tilde", "(副本)"]
CORRUPTIONS = ["none", "flip", "extra", "delete", "truncate", "oxum", "tag", "manifest-line"]


def random_files(rng: random.Random) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for _ in range(rng.randint(1, 8)):
        depth = rng.randint(1, 3)
        name = "/".join(rng.choice(NAME_PARTS) + str(rng.randint(0, 99)) for _ in range(depth))
        files[name + rng.choice([".txt", ".pdf", ""])] = rng.randbytes(rng.choice([0, 1, 100, 5000, 70000]))
    # a name must not be both a file and a directory
    return {k: v for k, v in files.items() if not any(o.startswith(k + "/") for o in files)}


def corrupt(bag: Path, kind: str, rng: random.Random) -> None:
    payload = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    victim = rng.choice(payload)
    if kind == "flip":
        data = bytearray(victim.read_bytes() or b"\0")
        data[rng.randrange(len(data))] ^= 0x01
        victim.write_bytes(bytes(data))
    elif kind == "extra":
        (victim.parent / "新增 extra.dat").write_bytes(b"surprise")
    elif kind == "delete":
        victim.unlink()
    elif kind == "truncate":
        content = victim.read_bytes()
        victim.write_bytes(content[:-1] if content else b"x")
    elif kind == "oxum":
        info = (bag / "bag-info.txt").read_text(encoding="utf-8")
        (bag / "bag-info.txt").write_text(info.replace("Payload-Oxum: ", "Payload-Oxum: 1"), encoding="utf-8")
        rewrite_tag_manifests(bag)
    elif kind == "tag":
        with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
            fh.write("Internal-Sender-Description: 篡改\n")
    elif kind == "manifest-line":
        add_manifest_line(bag, "sha256", f"{sha(b'gone')}  data/不存在的文件.txt")


def test_random_bags_agree_with_bagit_py(tmp_path: Path) -> None:
    logging.getLogger("bagit").setLevel(logging.CRITICAL)
    rng = random.Random(20240611)
    for i in range(40):
        files = random_files(rng)
        algorithms = rng.choice([("sha256",), ("sha256", "sha512"), ("md5", "sha1"), ("sha512",)])
        bag = make_bag(tmp_path, files, algorithms, name=f"bag{i}", version=rng.choice(["0.97", "1.0"]))
        kind = rng.choice(CORRUPTIONS)
        if kind == "manifest-line" and "sha256" not in algorithms:
            kind = "flip"
        if kind != "none":
            corrupt(bag, kind, rng)
        ours = validate_bag(bag, workers=rng.choice([1, 2, 4]))
        try:
            bagit.Bag(str(bag)).validate()
            theirs = True
        except bagit.BagError:
            theirs = False
        assert ours.valid == theirs, (i, kind, [str(p) for p in ours.problems])
        assert ours.valid is (kind == "none"), (i, kind, [str(p) for p in ours.problems])
