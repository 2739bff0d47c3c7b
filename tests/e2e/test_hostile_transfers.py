"""Every refusal of issue 2 through the real `archive ingest`: exit 1, a coded reason, nothing stored."""

from __future__ import annotations

import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from archive import db
from archive.config import Settings
from archive.home import leftover_staging
from archive.services import get_record
from ingest.bagwriter import make_bag, write_payload
from tests.e2e.helpers import (
    CSV_HEADER,
    archive_cmd,
    catalogue_counts,
    ingest_json,
    simple_bag,
    stored_objects,
)


def _good(root: Path) -> Path:
    return simple_bag(root, [("a", "HX-0001", "甲", b"alpha\n")])


def _zip_of(bag: Path, extra: Callable[[zipfile.ZipFile], None] | None = None) -> Path:
    target = bag.parent / f"{bag.name}.zip"
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(bag.rglob("*")):
            if p.is_file():
                zf.write(p, f"{bag.name}/{p.relative_to(bag).as_posix()}")
        if extra:
            extra(zf)
    return target


def _tar_of(bag: Path, extra: Callable[[tarfile.TarFile], None]) -> Path:
    target = bag.parent / f"{bag.name}.tar.gz"
    with tarfile.open(target, "w:gz") as tf:
        tf.add(bag, arcname=bag.name)
        extra(tf)
    return target


def zip_slip(tmp: Path) -> Path:
    return _zip_of(_good(tmp / "slip"), lambda zf: zf.writestr("../../evil.txt", b"escaped"))


def zip_absolute(tmp: Path) -> Path:
    return _zip_of(_good(tmp / "abs"), lambda zf: zf.writestr("/tmp/evil.txt", b"escaped"))


def tar_symlink_out(tmp: Path) -> Path:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("link/data/passwd")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)

    return _tar_of(_good(tmp / "link"), extra)


def tar_hardlink(tmp: Path) -> Path:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("hard/data/shadow")
        info.type, info.linkname = tarfile.LNKTYPE, "../../etc/shadow"
        tf.addfile(info)

    return _tar_of(_good(tmp / "hard"), extra)


def tar_device(tmp: Path) -> Path:
    def extra(tf: tarfile.TarFile) -> None:
        info = tarfile.TarInfo("dev/data/null")
        info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
        tf.addfile(info)

    return _tar_of(_good(tmp / "dev"), extra)


def zip_bomb(tmp: Path) -> Path:
    bag = tmp / "bomb"
    write_payload(bag, {"data/zeros.bin": bytes(20 << 20)})  # 20 MiB of zeros compress > 1000:1
    make_bag(bag)
    return _zip_of(bag)


def bag_with_symlink_out(tmp: Path) -> Path:
    bag = _good(tmp / "symlink")
    os.symlink("/etc/hostname", bag / "data" / "a" / "host.txt")
    return bag


def bag_with_fetch(tmp: Path) -> Path:
    bag = _good(tmp / "fetch")
    (bag / "fetch.txt").write_text("http://127.0.0.1:9/missing.txt - data/missing.txt\n", encoding="utf-8")
    with open(bag / "manifest-sha256.txt", "a", encoding="utf-8") as fh:
        fh.write(f"{'0' * 64}  data/missing.txt\n")
    return bag


def oxum_mismatch(tmp: Path) -> Path:
    bag = _good(tmp / "oxum")
    info = (bag / "bag-info.txt").read_text(encoding="utf-8")
    (bag / "bag-info.txt").write_text(
        "\n".join(
            "Payload-Oxum: 1.1" if line.startswith("Payload-Oxum") else line for line in info.splitlines()
        )
        + "\n",
        encoding="utf-8",
    )
    return bag


def empty_payload(tmp: Path) -> Path:
    bag = tmp / "empty"
    (bag / "data").mkdir(parents=True)
    return make_bag(bag)


def undecodable_csv(tmp: Path) -> Path:
    bag = tmp / "csv"
    write_payload(
        bag, {"data/a/x.txt": b"x", "data/metadata/records.csv": b"\xff\xfe\xfa\x00garbage\x81\x82"}
    )
    return make_bag(bag)


def missing_required(tmp: Path) -> Path:
    bag = tmp / "required"
    write_payload(
        bag,
        {
            "data/a/x.txt": b"x",
            "data/metadata/records.csv": (CSV_HEADER + "a,,,,1990,永久,,自动\r\n").encode(),
        },
    )
    return make_bag(bag)


def bad_date(tmp: Path) -> Path:
    bag = tmp / "date"
    rows = CSV_HEADER + "a,HX-1,题名,单位,1990-13-45,永久,,自动\r\n"
    write_payload(bag, {"data/a/x.txt": b"x", "data/metadata/records.csv": rows.encode()})
    return make_bag(bag)


def duplicate_codes(tmp: Path) -> Path:
    bag = tmp / "dupcode"
    rows = CSV_HEADER + "a,HX-1,甲,单位,1990,永久,,自动\r\nb,HX-1,乙,单位,1990,永久,,自动\r\n"
    write_payload(
        bag, {"data/a/x.txt": b"x", "data/b/y.txt": b"y", "data/metadata/records.csv": rows.encode()}
    )
    return make_bag(bag)


def row_names_missing_file(tmp: Path) -> Path:
    bag = tmp / "ghost"
    rows = CSV_HEADER + "a,HX-1,甲,单位,1990,永久,,自动\r\nnot-there,HX-2,乙,单位,1990,永久,,自动\r\n"
    write_payload(bag, {"data/a/x.txt": b"x", "data/metadata/records.csv": rows.encode()})
    return make_bag(bag)


def not_a_bag(tmp: Path) -> Path:
    target = tmp / "notes.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("readme.txt", "no bag here")
    target.write_bytes(buf.getvalue())
    return target


CASES: dict[str, tuple[Callable[[Path], Path], set[str]]] = {
    "zip-slip": (zip_slip, {"UNP004"}),
    "zip-absolute": (zip_absolute, {"UNP004"}),
    "tar-symlink-out": (tar_symlink_out, {"UNP005"}),
    "tar-hardlink": (tar_hardlink, {"UNP005"}),
    "tar-device": (tar_device, {"UNP006"}),
    "zip-bomb-ratio": (zip_bomb, {"UNP010"}),
    "symlink-out-of-bag": (bag_with_symlink_out, {"BAG029"}),
    "fetch-incomplete": (bag_with_fetch, {"BAG022"}),
    "oxum-mismatch": (oxum_mismatch, {"BAG027", "BAG028"}),
    "empty-payload": (empty_payload, {"BAG033"}),
    "undecodable-csv": (undecodable_csv, {"META001"}),
    "missing-required-metadata": (missing_required, {"META004"}),
    "malformed-date": (bad_date, {"META005"}),
    "duplicate-codes-in-transfer": (duplicate_codes, {"META010"}),
    "row-names-missing-file": (row_names_missing_file, {"META012"}),
    "no-bag-inside": (not_a_bag, {"UNP013"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_transfer_is_refused_and_leaves_nothing(home: Settings, tmp_path: Path, case: str) -> None:
    build, expected = CASES[case]
    source = build(tmp_path)
    code, result = ingest_json(source, "GZ")
    assert code == 1, result
    found = {p["code"] for p in result["errors"]}
    assert expected <= found, (case, found)
    for problem in result["errors"]:
        assert problem["message_zh"] and problem["message_en"]
    assert catalogue_counts(home) == (0, 0)
    assert stored_objects(home) == []
    assert leftover_staging(home) == []
    assert not (tmp_path.parent / "evil.txt").exists() and not Path("/tmp/evil.txt").exists()


@pytest.mark.parametrize("form", ["zip", "dir"])
def test_transfer_beyond_the_size_limit_is_refused(home: Settings, tmp_path: Path, form: str) -> None:
    bag = tmp_path / "big"
    write_payload(bag, {"data/a/random.bin": os.urandom(300_000)})
    source = _zip_of(make_bag(bag)) if form == "zip" else make_bag(bag)
    code, result = ingest_json(source, "GZ", env={"ARCHIVE_MAX_TRANSFER_BYTES": "100000"})
    assert code == 1 and "UNP009" in {p["code"] for p in result["errors"]}, result
    assert catalogue_counts(home) == (0, 0) and stored_objects(home) == []
    check = archive_cmd("validate", str(source), "--json", env={"ARCHIVE_MAX_TRANSFER_BYTES": "100000"})
    assert check.returncode == 1 and "UNP009" in {p["code"] for p in json.loads(check.stdout)["errors"]}
    code, result = ingest_json(source, "GZ", env={"ARCHIVE_MAX_TRANSFER_BYTES": "1000000"})
    assert code == 0, result  # within the limit the same bag is stored


def test_directory_transfer_with_too_many_entries_is_refused(home: Settings, tmp_path: Path) -> None:
    bag = simple_bag(tmp_path / "many", [(f"r{i}", f"GZ-M-{i}", f"件{i}", b"x") for i in range(10)])
    code, result = ingest_json(bag, "GZ", env={"ARCHIVE_MAX_TRANSFER_FILES": "12"})
    assert code == 1 and "UNP008" in {p["code"] for p in result["errors"]}, result
    assert catalogue_counts(home) == (0, 0) and stored_objects(home) == []


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "gb18030"])
def test_records_csv_in_every_accepted_encoding(home: Settings, tmp_path: Path, encoding: str) -> None:
    bag = simple_bag(
        tmp_path / f"enc {encoding}",
        [
            ("卷 一", f"ENC-{encoding}-1", "广州市城市总体规划说明", b"x\n"),
            ("卷 二", f"ENC-{encoding}-2", "天河区成立公告", b"y\n"),
        ],
        encoding=encoding,
    )
    code, result = ingest_json(bag, "GZ")
    assert code == 0, result
    with db.read_session(home) as s:
        assert get_record(s, "GZ", f"ENC-{encoding}-1").title == "广州市城市总体规划说明"
        assert get_record(s, "GZ", f"ENC-{encoding}-2").title == "天河区成立公告"
