from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest.problems import Problem, errors
from ingest.unpack import _Budget, _extract, _Member, detect_kind, unpack
from tests.samples import add_tar_bytes, bag_files, make_bag, make_bag_tar, make_bag_zip

LIMITS = {"max_bytes": 1_000_000, "max_ratio": 100.0, "max_members": 100}


def run(source: Path, dest: Path, **limits: float) -> tuple[list[str], Path | None]:
    result = unpack(source, dest, **{**LIMITS, **limits})  # type: ignore[arg-type]
    return [p.code for p in result.problems], result.bag_root


def assert_refused(dest: Path, codes: list[str], expected: str) -> None:
    assert expected in codes, codes
    assert not dest.exists() or not any(dest.iterdir()), list(dest.rglob("*"))


def zip_with(path: Path, members: dict[str, bytes], *, bag: bool = True) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        if bag:
            for name, content in bag_files().items():
                zf.writestr("bag/" + name, content)
        for name, content in members.items():
            zf.writestr(name, content)
    return path


def tar_with(path: Path, extra: Callable[[tarfile.TarFile], None], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for name, content in bag_files().items():
            add_tar_bytes(tf, "bag/" + name, content)
        extra(tf)
    return path


# -------------------- good bags


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("bag.zip", lambda p: make_bag_zip(p)),
        ("bag.tar", lambda p: make_bag_tar(p)),
        ("bag.tar.gz", lambda p: make_bag_tar(p, mode="w:gz")),
        ("bag.tgz", lambda p: make_bag_tar(p, mode="w:bz2")),  # misleading name: content decides
        ("bag.tar.xz", lambda p: make_bag_tar(p, mode="w:xz")),
        ("flat.zip", lambda p: make_bag_zip(p, prefix="")),
    ],
)
def test_valid_archives_unpack(tmp_path: Path, name: str, build: Callable[[Path], Path]) -> None:
    source = build(tmp_path / name)
    dest = tmp_path / "out"
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert result.problems == []
    assert result.bag_root is not None and result.ok
    assert (result.bag_root / "bagit.txt").read_bytes() == bag_files()["bagit.txt"]
    assert (result.bag_root / "data" / "a.txt").read_bytes() == bag_files()["data/a.txt"]
    assert result.bag_root in (dest, dest / "bag")
    mode = (result.bag_root / "data" / "a.txt").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def test_tar_keeps_mtime(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    unpack(make_bag_tar(tmp_path / "b.tar"), dest, **LIMITS)  # type: ignore[arg-type]
    assert int((dest / "bag" / "data" / "a.txt").stat().st_mtime) == 1_700_000_000


def test_setuid_and_exec_modes_are_dropped(tmp_path: Path) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("bag/data/run.sh")
        info.size, info.mode = 3, 0o6777
        tf.addfile(info, io.BytesIO(b"ls\n"))

    dest = tmp_path / "out"
    codes, root = run(tar_with(tmp_path / "m.tar", extra), dest)
    assert codes == [] and root is not None
    assert stat.S_IMODE((root / "data" / "run.sh").stat().st_mode) & 0o7111 == 0


def test_directory_source_is_not_copied(tmp_path: Path) -> None:
    bag = make_bag(tmp_path / "bag")
    dest = tmp_path / "out"
    result = unpack(bag, dest, **LIMITS)  # type: ignore[arg-type]
    assert result.kind == "dir" and result.bag_root == bag and not dest.exists()


def test_detect_kind_by_content(tmp_path: Path) -> None:
    zipped = make_bag_zip(tmp_path / "a.dat")
    tarred = make_bag_tar(tmp_path / "b.zip", mode="w:gz")
    text = tmp_path / "c.tar"
    text.write_text("not an archive\n" * 100)
    assert detect_kind(zipped) == "zip"
    assert detect_kind(tarred) == "tar"
    assert detect_kind(text) is None
    assert detect_kind(tmp_path) == "dir"
    assert detect_kind(tmp_path / "missing") is None


def test_unknown_kind(tmp_path: Path) -> None:
    source = tmp_path / "x.zip"
    source.write_text("hello")
    codes, root = run(source, tmp_path / "out")
    assert codes == ["UNP001"] and root is None


def test_dest_not_empty(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    codes, _ = run(make_bag_zip(tmp_path / "b.zip"), dest)
    assert codes == ["UNP002"]
    assert (dest / "keep.txt").read_text() == "mine"


def test_existing_empty_dest_is_emptied_not_removed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    codes, _ = run(zip_with(tmp_path / "b.zip", {"../evil.txt": b"x"}), dest)
    assert_refused(dest, codes, "UNP004")
    assert dest.is_dir()


# -------------------- unsafe paths


@pytest.mark.parametrize(
    "name",
    [
        "../evil.txt",
        "bag/../../evil.txt",
        "/etc/evil",
        "C:/evil.txt",
        "c:evil.txt",
        "..\\..\\evil.txt",
        "bag/data/a\x07b",
    ],
)
def test_zip_unsafe_names(tmp_path: Path, name: str) -> None:
    dest = tmp_path / "out"
    codes, root = run(zip_with(tmp_path / "b.zip", {name: b"pwned"}), dest)
    assert_refused(dest, codes, "UNP004")
    assert root is None
    assert not (tmp_path / "evil.txt").exists()


def test_all_problems_are_reported(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.warns(UserWarning, match="Duplicate name"):
        source = zip_with(tmp_path / "b.zip", {"../one": b"1", "/two": b"2", "bag/data/a.txt": b"dup"})
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert sorted(p.code for p in result.problems) == ["UNP004", "UNP004", "UNP007"]
    assert {p.path for p in result.problems} == {"../one", "/two", "bag/data/a.txt"}
    assert_refused(dest, [p.code for p in result.problems], "UNP004")


def test_backslash_separators_are_folders(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    source = zip_with(tmp_path / "b.zip", {"bag\\data\\win.txt": b"w"})
    codes, root = run(source, dest)
    assert codes == [] and root is not None
    assert (root / "data" / "win.txt").read_bytes() == b"w"


def test_tar_absolute_and_parent_names(tmp_path: Path) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        add_tar_bytes(tf, "/tmp/evil", b"x")
        add_tar_bytes(tf, "bag/../../evil", b"x")

    dest = tmp_path / "out"
    codes, _ = run(tar_with(tmp_path / "b.tar", extra), dest)
    assert codes == ["UNP004", "UNP004"]
    assert_refused(dest, codes, "UNP004")


@pytest.mark.parametrize(
    ("linktype", "target"),
    [
        (tarfile.SYMTYPE, "../../../etc/passwd"),
        (tarfile.SYMTYPE, "a.txt"),
        (tarfile.LNKTYPE, "bag/data/a.txt"),
    ],
)
def test_tar_links_refused(tmp_path: Path, linktype: bytes, target: str) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("bag/data/link")
        info.type, info.linkname = linktype, target
        tf.addfile(info)

    dest = tmp_path / "out"
    result = unpack(tar_with(tmp_path / "l.tar", extra), dest, **LIMITS)  # type: ignore[arg-type]
    assert_refused(dest, [p.code for p in result.problems], "UNP005")
    assert result.problems[0].params["target"] == target


def test_zip_symlink_refused(tmp_path: Path) -> None:
    source = tmp_path / "s.zip"
    zip_with(source, {})
    with zipfile.ZipFile(source, "a") as zf:
        info = zipfile.ZipInfo("bag/data/link")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    dest = tmp_path / "out"
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert_refused(dest, [p.code for p in result.problems], "UNP005")
    assert result.problems[0].params["target"] == "/etc/passwd"


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_tar_special_members_refused(tmp_path: Path, kind: bytes) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("bag/data/dev")
        info.type, info.devmajor, info.devminor = kind, 1, 3
        tf.addfile(info)

    dest = tmp_path / "out"
    codes, _ = run(tar_with(tmp_path / "d.tar", extra), dest)
    assert_refused(dest, codes, "UNP006")


def test_zip_device_member_refused(tmp_path: Path) -> None:
    source = tmp_path / "d.zip"
    zip_with(source, {})
    with zipfile.ZipFile(source, "a") as zf:
        info = zipfile.ZipInfo("bag/data/fifo")
        info.create_system = 3
        info.external_attr = (stat.S_IFIFO | 0o644) << 16
        zf.writestr(info, b"")
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP006")


def test_duplicate_names(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.warns(UserWarning, match="Duplicate name"):
        source = zip_with(tmp_path / "b.zip", {"bag/data/a.txt": b"other"})
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP007")


def test_tar_duplicate_and_file_folder_clash(tmp_path: Path) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        add_tar_bytes(tf, "bag/data/a.txt", b"again")
        add_tar_bytes(tf, "bag/data/a.txt/inner", b"clash")

    dest = tmp_path / "out"
    result = unpack(tar_with(tmp_path / "b.tar", extra), dest, **LIMITS)  # type: ignore[arg-type]
    assert [p.code for p in result.problems] == ["UNP007", "UNP007"]
    assert_refused(dest, ["UNP007"], "UNP007")


# -------------------- bombs & limits


def test_zip_bomb_ratio_and_size(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    source = zip_with(tmp_path / "bomb.zip", {"bag/data/zeros.bin": bytes(2_000_000)})
    codes, _ = run(source, dest, max_bytes=1_000_000, max_ratio=50)
    assert "UNP009" in codes
    assert_refused(dest, codes, "UNP010")


def test_tar_gz_bomb_stops_early(tmp_path: Path) -> None:
    def extra(tf: tarfile.TarFile) -> None:
        for n in range(20):
            add_tar_bytes(tf, f"bag/data/zeros{n}.bin", bytes(500_000))

    dest = tmp_path / "out"
    source = tar_with(tmp_path / "bomb.tar.gz", extra, mode="w:gz")
    result = unpack(source, dest, max_bytes=1_000_000, max_ratio=1000, max_members=100)
    codes = [p.code for p in result.problems]
    assert_refused(dest, codes, "UNP009")
    assert result.members < 10  # the scan stopped once the limit was passed


def test_too_many_members(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    codes, _ = run(make_bag_zip(tmp_path / "b.zip"), dest, max_members=2)
    assert_refused(dest, codes, "UNP008")


def test_lying_zip_header_is_caught(tmp_path: Path) -> None:
    """Declared sizes patched down to 10 bytes: zipfile fails the CRC, never writes more than declared."""
    source = zip_with(tmp_path / "lie.zip", {"bag/data/big.bin": bytes(300_000)})
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("bag/data/big.bin")
    real = info.file_size.to_bytes(4, "little")
    assert data.count(real) == 2  # local header and central directory
    source.write_bytes(bytes(data).replace(real, (10).to_bytes(4, "little")))
    dest = tmp_path / "out"
    codes, _ = run(source, dest, max_bytes=100_000, max_ratio=1000)
    assert_refused(dest, codes, "UNP003")


def test_extract_counts_real_bytes(tmp_path: Path) -> None:
    def member(name: str, declared: int, real: int) -> _Member:
        return _Member((name,), False, declared, None, lambda: io.BytesIO(bytes(real)))

    (tmp_path / "a").mkdir()
    with pytest.raises(Exception) as lie:
        _extract([member("x", 10, 5000)], tmp_path / "a", _Budget(10**9, 10**9, 1))
    assert getattr(lie.value, "problem", None) == Problem("UNP011", path="x", params={"declared": 10})

    (tmp_path / "b").mkdir()
    with pytest.raises(Exception) as over:
        _extract([member("y", 5000, 5000)], tmp_path / "b", _Budget(1000, 10**9, 1))
    assert over.value.problem.code == "UNP009"  # type: ignore[attr-defined]


# -------------------- damage


def test_truncated_gzip(tmp_path: Path) -> None:
    source = make_bag_tar(tmp_path / "b.tar.gz", mode="w:gz", payload={"r.bin": os.urandom(50_000)})
    data = source.read_bytes()
    source.write_bytes(data[: len(data) // 2])
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP003")


def test_truncated_plain_tar(tmp_path: Path) -> None:
    source = make_bag_tar(tmp_path / "b.tar", payload={"r.bin": os.urandom(50_000)})
    data = source.read_bytes()
    source.write_bytes(data[:30_000])
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP003")


def test_corrupt_zip_crc(tmp_path: Path) -> None:
    source = make_bag_zip(tmp_path / "b.zip", payload={"a.txt": b"A" * 5000})
    data = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("bag/data/a.txt")
    start = info.header_offset + 30 + len(info.filename)
    data[start + 5] ^= 0xFF
    source.write_bytes(bytes(data))
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP003")


def test_zip_without_central_directory(tmp_path: Path) -> None:
    source = make_bag_zip(tmp_path / "b.zip")
    source.write_bytes(source.read_bytes()[:100])
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP003")


# -------------------- names & roots


def test_gbk_zip_names(tmp_path: Path) -> None:
    """A Chinese Windows tool writes GBK names without the UTF-8 flag."""
    real = "bag/data/会议纪要.txt"
    gbk = real.encode("gbk")
    placeholder = "bag/data/" + "x" * (len(gbk) - len("bag/data/"))
    files = bag_files()
    source = tmp_path / "gbk.zip"
    with zipfile.ZipFile(source, "w") as zf:
        for name, content in files.items():
            zf.writestr("bag/" + name, content)
        zf.writestr(placeholder, b"minutes")
    data = source.read_bytes()
    assert data.count(placeholder.encode()) == 2
    source.write_bytes(data.replace(placeholder.encode(), gbk))
    with zipfile.ZipFile(source) as zf:
        assert not zf.getinfo(gbk.decode("cp437")).flag_bits & 0x800

    dest = tmp_path / "out"
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert [p.code for p in result.problems] == ["UNP015"]
    assert result.problems[0].severity == "warning" and not errors(result.problems)
    assert result.name_encodings["gb18030"] == 1
    assert (dest / real).read_bytes() == b"minutes"


def test_utf8_flagged_zip_names(tmp_path: Path) -> None:
    source = zip_with(tmp_path / "u.zip", {"bag/data/年度报告.txt": b"r"})
    dest = tmp_path / "out"
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert result.problems == [] and result.name_encodings["utf-8"] == 1
    assert (dest / "bag/data/年度报告.txt").read_bytes() == b"r"


def test_two_top_level_folders(tmp_path: Path) -> None:
    source = tmp_path / "two.zip"
    with zipfile.ZipFile(source, "w") as zf:
        for top in ("one/", "two/"):
            for name, content in bag_files().items():
                zf.writestr(top + name, content)
    dest = tmp_path / "out"
    result = unpack(source, dest, **LIMITS)  # type: ignore[arg-type]
    assert_refused(dest, [p.code for p in result.problems], "UNP013")
    assert "one/" in result.problems[0].message_en and "two/" in result.problems[0].message_zh


def test_macos_litter_is_ignored(tmp_path: Path) -> None:
    source = zip_with(tmp_path / "mac.zip", {"__MACOSX/bag/._bagit.txt": b"junk"})
    codes, root = run(source, tmp_path / "out")
    assert codes == [] and root == tmp_path / "out" / "bag"


def test_no_bag_inside(tmp_path: Path) -> None:
    source = zip_with(tmp_path / "nobag.zip", {"docs/readme.txt": b"hi"}, bag=False)
    dest = tmp_path / "out"
    codes, _ = run(source, dest)
    assert_refused(dest, codes, "UNP013")


def test_messages_are_filled(tmp_path: Path) -> None:
    result = unpack(zip_with(tmp_path / "b.zip", {"../x": b"1"}), tmp_path / "o", **LIMITS)  # type: ignore[arg-type]
    problem = result.problems[0]
    assert "../x" in problem.message_zh and "../x" in problem.message_en
    assert "{" not in problem.message_zh + problem.message_en
