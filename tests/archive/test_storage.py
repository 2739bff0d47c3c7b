"""OCFL storage: layout, deduplication, versions, atomicity and crash recovery, checked by ocfl-py."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import unicodedata
from pathlib import Path
from typing import Any

import ocfl
import pytest

from archive.storage import (
    ContentMismatch,
    InvalidDigest,
    InvalidLogicalPath,
    NotAnOcflRoot,
    ObjectBuilder,
    ObjectExists,
    ObjectNotFound,
    OcflStore,
    PathConflict,
    StagingError,
    StorageError,
    VersionConflict,
    _fs,
    object_relpath,
    validate_root,
)

RECORD_ID = "urn:pearl-archive:GZ:GZ001-WS·2020-Y-0001"
SCAN = "原件/第 1 页 扫描.tif"
SCAN_COPY = "原件/副本/第 1 页 扫描 (复印).tif"
SCAN_BYTES = b"II*\x00 fake tiff \xe6\xa1\xa3\xe6\xa1\x88" * 100


@pytest.fixture
def store(tmp_path: Path) -> OcflStore:
    s = OcflStore(tmp_path / "ocfl", tmp_path / "staging")
    s.init()
    return s


def assert_valid(root: Path) -> None:
    ok, messages = validate_root(root)
    assert ok, messages
    ok, lines = validate_root(root, use_cli=True, timeout=120)
    assert ok, lines


def commit(store: OcflStore, builder: ObjectBuilder, message: str = "ingest") -> str:
    return store.commit(builder, message=message, user_name="ingest", user_address="mailto:ingest@gz.example")


def ingest_record(store: OcflStore, object_id: str = RECORD_ID) -> str:
    b = store.begin_object(object_id)
    b.add_bytes("metadata.json", json.dumps({"题名": "关于 2020 年工作的报告"}, ensure_ascii=False).encode())
    b.add_bytes(SCAN, SCAN_BYTES)
    target = b.content_path(SCAN_COPY)  # ingest writes the bytes itself and passes the digests in
    target.write_bytes(SCAN_BYTES)
    b.add_written(
        SCAN_COPY,
        sha512=hashlib.sha512(SCAN_BYTES).hexdigest(),
        size=len(SCAN_BYTES),
        fixity={"sha256": hashlib.sha256(SCAN_BYTES).hexdigest(), "md5": hashlib.md5(SCAN_BYTES).hexdigest()},
    )
    return commit(store, b)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


# -- root and layout --------------------------------------------------------------------------------------


def test_init_creates_an_ocfl_root_and_is_idempotent(store: OcflStore) -> None:
    root = store.root
    assert (root / "0=ocfl_1.1").read_text() == "ocfl_1.1\n"
    layout = json.loads((root / "ocfl_layout.json").read_text())
    assert layout["extension"] == "0003-hash-and-id-n-tuple-storage-layout"
    config = json.loads((root / "extensions/0003-hash-and-id-n-tuple-storage-layout/config.json").read_text())
    assert config == {
        "extensionName": "0003-hash-and-id-n-tuple-storage-layout",
        "digestAlgorithm": "sha256",
        "tupleSize": 3,
        "numberOfTuples": 3,
    }
    before = snapshot(root)
    store.init()
    OcflStore(root, store.staging_dir).init()
    assert snapshot(root) == before
    assert_valid(root)


def test_init_refuses_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "ocfl").mkdir()
    (tmp_path / "ocfl" / "notes.txt").write_text("not ours")
    with pytest.raises(NotAnOcflRoot) as err:
        OcflStore(tmp_path / "ocfl", tmp_path / "staging").init()
    assert err.value.code == "STO003"
    with pytest.raises(NotAnOcflRoot):
        OcflStore(tmp_path / "ocfl", tmp_path / "staging").exists(RECORD_ID)


def test_init_accepts_an_empty_mount_point(tmp_path: Path) -> None:
    (tmp_path / "ocfl").mkdir()
    store = OcflStore(tmp_path / "ocfl", tmp_path / "staging")
    store.init()
    assert_valid(store.root)


def test_staging_inside_the_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StagingError):
        OcflStore(tmp_path / "ocfl", tmp_path / "ocfl" / "staging").init()


@pytest.mark.parametrize(
    "object_id",
    [RECORD_ID, "ark:/13030/xt12t3", "plain-id_01", "urn:pearl-archive:GZ:" + "档案" * 40, "a b/c?d"],
)
def test_object_paths_follow_extension_0003_as_ocfl_py_computes_it(store: OcflStore, object_id: str) -> None:
    reference = ocfl.StorageRoot(root=str(store.root))
    reference.open_root_fs()
    reference.check_root_structure()
    assert object_relpath(object_id).as_posix() == reference.object_path(object_id)
    assert store.object_path(object_id) == store.root / reference.object_path(object_id)


# -- version 1 ---------------------------------------------------------------------------------------------


def test_object_with_unicode_id_and_chinese_paths_validates(store: OcflStore) -> None:
    assert ingest_record(store) == "v1"
    assert store.exists(RECORD_ID)
    assert list(store.iter_objects()) == [RECORD_ID]
    obj = store.object_path(RECORD_ID)
    assert (obj / "0=ocfl_object_1.1").read_text() == "ocfl_object_1.1\n"
    assert (obj / "v1" / "content" / SCAN).read_bytes() == SCAN_BYTES
    inventory = store.read_inventory(RECORD_ID)
    assert inventory["id"] == RECORD_ID
    assert inventory["digestAlgorithm"] == "sha512"
    assert inventory["head"] == "v1"
    assert inventory["versions"]["v1"]["user"] == {"name": "ingest", "address": "mailto:ingest@gz.example"}
    assert (obj / "inventory.json").read_bytes() == (obj / "v1" / "inventory.json").read_bytes()
    sidecar = (obj / "inventory.json.sha512").read_text().split()
    assert sidecar == [hashlib.sha512((obj / "inventory.json").read_bytes()).hexdigest(), "inventory.json"]
    assert not list(store.staging_dir.glob("ocfl-txn-*"))
    assert_valid(store.root)


def test_duplicate_content_is_stored_once(store: OcflStore) -> None:
    ingest_record(store)
    inventory = store.read_inventory(RECORD_ID)
    digest = hashlib.sha512(SCAN_BYTES).hexdigest()
    assert inventory["manifest"][digest] == [f"v1/content/{SCAN}"]
    assert sorted(inventory["versions"]["v1"]["state"][digest]) == sorted([SCAN, SCAN_COPY])
    content = store.object_path(RECORD_ID) / "v1" / "content"
    assert not (content / SCAN_COPY).exists()
    assert not (content / "原件" / "副本").exists()  # no empty directory left behind
    stored = [p for p in content.rglob("*") if p.is_file()]
    assert len(stored) == 2  # metadata.json + one copy of the scan


def test_fixity_block_carries_sha256_of_every_file(store: OcflStore) -> None:
    ingest_record(store)
    obj = store.object_path(RECORD_ID)
    inventory = store.read_inventory(RECORD_ID)
    sha256 = inventory["fixity"]["sha256"]
    listed = {path: value for value, paths in sha256.items() for path in paths}
    assert set(listed) == {p for paths in inventory["manifest"].values() for p in paths}
    for path, value in listed.items():
        assert hashlib.sha256((obj / path).read_bytes()).hexdigest() == value
    assert inventory["fixity"]["md5"] == {hashlib.md5(SCAN_BYTES).hexdigest(): [f"v1/content/{SCAN}"]}
    if shutil.which("sha256sum"):
        lines = "".join(f"{value}  {path}\n" for path, value in listed.items())
        checked = subprocess.run(
            ["sha256sum", "--check", "--strict", "-"], input=lines.encode(), cwd=obj, capture_output=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_content_files_list_every_logical_file(store: OcflStore) -> None:
    ingest_record(store)
    files = {f.logical_path: f for f in store.content_files(RECORD_ID)}
    assert set(files) == {"metadata.json", SCAN, SCAN_COPY}
    assert files[SCAN_COPY].path == files[SCAN].path
    for f in files.values():
        data = f.path.read_bytes()
        assert f.version == "v1"
        assert hashlib.sha512(data).hexdigest() == f.sha512
        assert hashlib.sha256(data).hexdigest() == f.fixity["sha256"]


def test_second_object_with_same_id_is_refused(store: OcflStore) -> None:
    ingest_record(store)
    before = snapshot(store.object_path(RECORD_ID))
    with pytest.raises(ObjectExists) as err:
        store.begin_object(RECORD_ID)
    assert err.value.code == "STO001"
    assert before == snapshot(store.object_path(RECORD_ID))


def test_concurrent_builders_for_one_id_commit_once(store: OcflStore) -> None:
    first = store.begin_object(RECORD_ID)
    second = store.begin_object(RECORD_ID)
    first.add_bytes("a.txt", b"first")
    second.add_bytes("a.txt", b"second")
    commit(store, first)
    with pytest.raises(ObjectExists):
        commit(store, second)
    assert (store.object_path(RECORD_ID) / "v1/content/a.txt").read_bytes() == b"first"
    assert not list(store.staging_dir.glob("ocfl-txn-*"))
    with pytest.raises(StagingError):
        second.add_bytes("b.txt", b"too late")
    assert_valid(store.root)


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a/../b",
        "..",
        ".",
        "目录/",
        "a\\b",
        "a\x00b",
        "tab\there",
        unicodedata.normalize("NFD", "café.txt"),
        "长" * 86,  # 258 bytes in UTF-8
    ],
)
def test_invalid_logical_paths_are_refused(store: OcflStore, path: str) -> None:
    b = store.begin_object(RECORD_ID)
    with pytest.raises(InvalidLogicalPath) as err:
        b.add_bytes(path, b"x")
    assert err.value.code == "STO002"
    with pytest.raises(InvalidLogicalPath):
        b.content_path(path)
    store.abort(b)
    assert not list(store.staging_dir.glob("ocfl-txn-*"))


def test_logical_paths_that_clash_are_refused(store: OcflStore) -> None:
    b = store.begin_object(RECORD_ID)
    b.add_bytes("报告/正文.pdf", b"pdf")
    with pytest.raises(PathConflict):
        b.add_bytes("报告", b"file where a directory is")
    with pytest.raises(PathConflict):
        b.add_bytes("报告/正文.pdf/附件", b"inside a file")
    with pytest.raises(PathConflict):
        b.add_bytes("报告/正文.pdf", b"again")
    commit(store, b)
    assert_valid(store.root)


def test_add_written_checks_what_the_caller_declares(store: OcflStore) -> None:
    b = store.begin_object(RECORD_ID)
    b.content_path("a.bin").write_bytes(b"abc")
    sha512 = hashlib.sha512(b"abc").hexdigest()
    sha256 = hashlib.sha256(b"abc").hexdigest()
    with pytest.raises(ContentMismatch):
        b.add_written("a.bin", sha512=sha512, size=4, fixity={"sha256": sha256})
    with pytest.raises(InvalidDigest):
        b.add_written("a.bin", sha512=sha512, size=3)
    with pytest.raises(InvalidDigest):
        b.add_written("a.bin", sha512="not-hex", size=3, fixity={"sha256": sha256})
    with pytest.raises(InvalidDigest):
        b.add_written("a.bin", sha512=sha512, size=3, fixity={"sha256": sha256, "crc32": "00000000"})
    with pytest.raises(ContentMismatch):
        b.add_written("never-written.bin", sha512=sha512, size=3, fixity={"sha256": sha256})
    b.add_written("a.bin", sha512=sha512.upper(), size=3, fixity={"sha256": sha256})
    b.content_path("stray.bin").write_bytes(b"forgotten")
    with pytest.raises(StagingError):  # written but never added: refused, nothing half-stored
        commit(store, b)
    assert not store.exists(RECORD_ID)


def test_every_error_has_a_stable_distinct_code() -> None:
    classes: list[type[StorageError]] = [StorageError, *StorageError.__subclasses__()]
    codes = {cls.code for cls in classes}
    assert len(codes) == len(StorageError.__subclasses__()) + 1
    assert all(c.startswith("STO") for c in codes)


# -- later versions -----------------------------------------------------------------------------------------


def test_new_version_adds_a_derivative_and_leaves_v1_untouched(store: OcflStore, tmp_path: Path) -> None:
    ingest_record(store)
    obj = store.object_path(RECORD_ID)
    v1_before = snapshot(obj / "v1")
    derivative = tmp_path / "第 1 页.pdf"
    derivative.write_bytes(b"%PDF-1.7 pdf/a-2b")
    b = store.begin_version(RECORD_ID)
    assert b.version == "v2"
    assert set(b.state) == {"metadata.json", SCAN, SCAN_COPY}
    b.add_file("派生/第 1 页.pdf", derivative)
    b.add_bytes("metadata.json", b'{"migrated": true}')
    b.add_bytes("原件/again.tif", SCAN_BYTES)  # content v1 already holds: not stored again
    assert store.commit(b, message="migrate TIFF → PDF/A", user_name="preservation 0.1") == "v2"

    assert snapshot(obj / "v1") == v1_before
    assert snapshot(obj / "v2" / "content") == {
        "派生/第 1 页.pdf": b"%PDF-1.7 pdf/a-2b",
        "metadata.json": b'{"migrated": true}',
    }
    inventory = store.read_inventory(RECORD_ID)
    assert inventory["head"] == "v2"
    assert (obj / "inventory.json").read_bytes() == (obj / "v2" / "inventory.json").read_bytes()
    state = {p: d for d, paths in inventory["versions"]["v2"]["state"].items() for p in paths}
    scan_digest = hashlib.sha512(SCAN_BYTES).hexdigest()
    assert state[SCAN] == state["原件/again.tif"] == scan_digest
    assert inventory["manifest"][scan_digest] == [f"v1/content/{SCAN}"]
    assert (
        inventory["versions"]["v1"]
        == json.loads((obj / "v1" / "inventory.json").read_text())["versions"]["v1"]
    )
    versions = {(f.version, f.logical_path) for f in store.content_files(RECORD_ID)}
    assert ("v1", "metadata.json") in versions
    assert ("v2", "派生/第 1 页.pdf") in versions
    assert_valid(store.root)

    b = store.begin_version(RECORD_ID)
    b.remove(SCAN_COPY)
    b.remove("原件/again.tif")
    assert commit(store, b, "drop duplicates from the head state") == "v3"
    assert not (obj / "v3" / "content").exists()
    assert snapshot(obj / "v1") == v1_before
    assert_valid(store.root)


def test_remove_in_a_version_drops_content_added_in_it(store: OcflStore) -> None:
    ingest_record(store)
    b = store.begin_version(RECORD_ID)
    b.add_bytes("tmp/x.txt", b"x")
    b.remove("tmp/x.txt")
    b.add_bytes("tmp", b"now a file")
    with pytest.raises(PathConflict):
        b.remove("missing.txt")
    commit(store, b)
    assert snapshot(store.object_path(RECORD_ID) / "v2" / "content") == {"tmp": b"now a file"}
    assert_valid(store.root)


def test_concurrent_versions_conflict(store: OcflStore) -> None:
    ingest_record(store)
    first = store.begin_version(RECORD_ID)
    second = store.begin_version(RECORD_ID)
    first.add_bytes("a.txt", b"a")
    second.add_bytes("b.txt", b"b")
    commit(store, first)
    with pytest.raises(VersionConflict) as err:
        commit(store, second)
    assert err.value.code == "STO008"
    assert store.read_inventory(RECORD_ID)["head"] == "v2"
    assert_valid(store.root)


def test_begin_version_of_unknown_object(store: OcflStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.begin_version("urn:pearl-archive:GZ:nope")


def test_remove_object_leaves_a_valid_root(store: OcflStore) -> None:
    ingest_record(store)
    ingest_record(store, "urn:pearl-archive:GZ:GZ001-WS·2020-Y-0002")
    store.remove_object(RECORD_ID)
    assert not store.exists(RECORD_ID)
    assert list(store.iter_objects()) == ["urn:pearl-archive:GZ:GZ001-WS·2020-Y-0002"]
    assert not store.object_path(RECORD_ID).parent.exists()  # empty n-tuple directories pruned
    assert_valid(store.root)
    ingest_record(store)  # the id can be stored again
    assert_valid(store.root)


# -- crashes ------------------------------------------------------------------------------------------------


class Crash(BaseException):
    """Stands for the process dying at this point (not an Exception, so nothing catches it)."""


def die_after(calls: int, real: Any) -> Any:
    count = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        count["n"] += 1
        if count["n"] > calls:
            raise Crash
        return real(*args, **kwargs)

    return wrapper


def test_uncommitted_object_leaves_the_root_valid(store: OcflStore) -> None:
    ingest_record(store, "urn:pearl-archive:GZ:other")
    b = store.begin_object(RECORD_ID)
    b.add_bytes(SCAN, SCAN_BYTES)
    assert not store.exists(RECORD_ID)
    assert list(store.iter_objects()) == ["urn:pearl-archive:GZ:other"]
    assert_valid(store.root)
    assert store.recover() == []  # a live builder's staging is left alone
    assert b.version_dir.exists()
    assert b._lock_fd is not None
    _fs.release_lock(b._lock_fd)  # the process that owned the builder dies
    b._lock_fd = None
    actions = store.recover()
    assert len(actions) == 1 and "stale staging" in actions[0]
    assert not list(store.staging_dir.glob("ocfl-txn-*"))
    assert_valid(store.root)


def test_crash_just_before_the_object_rename(store: OcflStore, monkeypatch: pytest.MonkeyPatch) -> None:
    b = store.begin_object(RECORD_ID)
    b.add_bytes(SCAN, SCAN_BYTES)
    monkeypatch.setattr(_fs, "fsync_tree", die_after(0, _fs.fsync_tree))
    with pytest.raises(Crash):
        commit(store, b)
    monkeypatch.undo()
    assert not store.exists(RECORD_ID)
    assert list(store.iter_objects()) == []
    assert not [p for p in store.root.iterdir() if p.is_dir() and p.name != "extensions"]
    assert_valid(store.root)


def test_crash_after_version_rename_is_rolled_back(store: OcflStore, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_record(store)
    obj = store.object_path(RECORD_ID)
    before = snapshot(obj)
    b = store.begin_version(RECORD_ID)
    b.add_bytes("派生/第 1 页.pdf", b"%PDF")
    monkeypatch.setattr(_fs, "replace_atomically", die_after(0, _fs.replace_atomically))
    with pytest.raises(Crash):
        commit(store, b)
    monkeypatch.undo()
    assert (obj / "v2").is_dir()
    assert store.read_inventory(RECORD_ID)["head"] == "v1"
    assert not validate_root(store.root)[0]  # v2 on disk but not in the inventory

    retry = store.begin_version(RECORD_ID)
    retry.add_bytes("x.txt", b"x")
    with pytest.raises(VersionConflict):
        commit(store, retry)

    actions = store.recover_object(RECORD_ID)
    assert actions and "removed uncommitted version v2" in actions[0]
    assert snapshot(obj) == before
    assert store.recover_object(RECORD_ID) == []
    assert_valid(store.root)


def test_crash_between_inventory_and_sidecar_rolls_forward(
    store: OcflStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ingest_record(store)
    obj = store.object_path(RECORD_ID)
    b = store.begin_version(RECORD_ID)
    b.add_bytes("派生/第 1 页.pdf", b"%PDF")
    monkeypatch.setattr(_fs, "replace_atomically", die_after(1, _fs.replace_atomically))
    with pytest.raises(Crash):
        commit(store, b)
    monkeypatch.undo()
    with pytest.raises(StorageError):  # inventory.json no longer matches its sidecar
        store.read_inventory(RECORD_ID)
    actions = store.recover()
    assert any("completed root inventory sidecar for v2" in a for a in actions)
    assert store.read_inventory(RECORD_ID)["head"] == "v2"
    assert (obj / "inventory.json.sha512").read_bytes() == (obj / "v2" / "inventory.json.sha512").read_bytes()
    assert_valid(store.root)


def test_recover_prunes_empty_directories_left_by_an_interrupted_removal(store: OcflStore) -> None:
    ingest_record(store)
    obj = store.object_path(RECORD_ID)
    shutil.rmtree(obj)  # as if remove_object died after the object vanished, before pruning
    assert not validate_root(store.root)[0]
    actions = store.recover()
    assert actions and all("empty directory" in a for a in actions)
    assert [p.name for p in store.root.iterdir() if p.is_dir()] == ["extensions"]
    assert_valid(store.root)


def test_sm3_fixity_only_on_request_and_needs_lax_validation(tmp_path: Path) -> None:
    if "sm3" not in hashlib.algorithms_available:
        pytest.skip("hashlib has no sm3 here")
    store = OcflStore(tmp_path / "ocfl", tmp_path / "staging", fixity_algorithms=("sm3",))
    store.init()
    b = store.begin_object(RECORD_ID)
    b.add_bytes("a.txt", b"abc")
    commit(store, b)
    fixity = store.read_inventory(RECORD_ID)["fixity"]
    assert fixity["sm3"] == {hashlib.new("sm3", b"abc").hexdigest(): ["v1/content/a.txt"]}
    assert not validate_root(store.root)[0]
    ok, messages = validate_root(store.root, lax_digests=True, check_digests=False)
    assert ok, messages


def test_fsync_tree_small_trees_per_entry_big_trees_syncfs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    synced: list[str] = []

    def syncfs(fd: int) -> int:
        calls.append("syncfs")
        return 0

    monkeypatch.setattr(_fs, "_SYNCFS", syncfs)
    monkeypatch.setattr(_fs, "fsync_file", lambda p: synced.append(str(p)))
    monkeypatch.setattr(_fs, "fsync_dir", lambda p: synced.append(str(p) + "/"))
    small = tmp_path / "small"
    (small / "v2" / "content").mkdir(parents=True)
    (small / "v2" / "content" / "out.pdf").write_bytes(b"x")
    (small / "v2" / "inventory.json").write_text("{}")
    _fs.fsync_tree(small)
    assert calls == []
    # the files, then the directories, children first
    assert set(synced[:2]) == {
        str(small / "v2" / "inventory.json"),
        str(small / "v2" / "content" / "out.pdf"),
    }
    assert synced[-3:] == [str(small / "v2" / "content") + "/", str(small / "v2") + "/", str(small) + "/"]
    big = tmp_path / "big"
    big.mkdir()
    for i in range(_fs.SMALL_TREE + 1):
        (big / f"f{i}").write_bytes(b"x")
    synced.clear()
    _fs.fsync_tree(big)
    assert calls == ["syncfs"] and synced == []


def test_start_writeback_syncs_in_the_background(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    done = threading.Event()
    seen: list[int] = []

    def fake_syncfs(fd: int) -> int:
        seen.append(fd)
        done.set()
        return 0

    monkeypatch.setattr(_fs, "_SYNCFS", fake_syncfs)
    store = OcflStore(tmp_path / "root", tmp_path / "staging")
    store.init()
    store.start_writeback()  # returns at once; the sync happens in its own thread
    assert done.wait(10) and len(seen) == 1
    _fs.start_writeback(tmp_path / "no-such-dir")  # nothing to open: nothing happens, nothing raised
    monkeypatch.setattr(_fs, "_SYNCFS", None)
    _fs.start_writeback(tmp_path)  # no syncfs on this system: a no-op


def test_content_paths_reserve_many_at_once(store: OcflStore) -> None:
    b = store.begin_object(RECORD_ID)
    b.add_bytes("metadata/record.json", b"{}")
    paths = b.content_paths(f"originals/卷 {i % 3}/件 {i}.bin" for i in range(10))
    assert list(paths) == [f"originals/卷 {i % 3}/件 {i}.bin" for i in range(10)]
    for logical, target in paths.items():
        assert target.parent.is_dir() and not target.exists()
        target.write_bytes(logical.encode())
        data = logical.encode()
        b.add_written(
            logical,
            sha512=hashlib.sha512(data).hexdigest(),
            size=len(data),
            fixity={"sha256": hashlib.sha256(data).hexdigest()},
        )
    for clash in (["metadata/record.json"], ["a.txt", "a.txt"], ["metadata/record.json/x"]):
        with pytest.raises(PathConflict):
            b.content_paths(clash)
    stray = b.content_path("late.bin")
    stray.write_bytes(b"written behind the builder's back")
    with pytest.raises(PathConflict):
        b.content_paths(["late.bin"])
    stray.unlink()
    commit(store, b)
    assert_valid(store.root)


# -- staging batches (an ingest's many objects) and the staging sweep ---------------------------------------


def _open_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def test_a_batch_holds_one_descriptor_whatever_its_number_of_objects(store: OcflStore) -> None:
    def stage(count: int) -> int:
        before = _open_descriptors()
        batch = store.begin_batch()
        builders = []
        for i in range(count):
            b = batch.begin_object(f"urn:pearl-archive:GZ:batch-{count}-{i}")
            b.add_bytes("metadata/record.json", f'{{"n": {i}}}'.encode())
            builders.append(b)
        held = _open_descriptors() - before
        committed = [b.object_id for b in store.commit_many(builders, message="ingest", user_name="ingest")]
        assert committed == [b.object_id for b in builders]
        assert all(b.closed for b in builders)
        batch.close()
        assert _open_descriptors() == before
        return held

    assert stage(3) == stage(300) == 1
    assert len(list(store.iter_objects())) == 303
    assert list(store.staging_dir.glob("ocfl-txn-*")) == []
    assert_valid(store.root)


def test_commit_many_syncs_before_publishing_and_shares_new_parents(
    store: OcflStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every staged object is durable (one fsync_tree over the batch) before any enters the root; objects
    whose new n-tuple parents are shared are all published (no retry, no stray directory)."""
    calls: list[tuple[str, bool]] = []
    real_fsync_tree = _fs.fsync_tree

    def fsync_tree(top: Path) -> None:
        calls.append(("fsync", store.root in Path(top).parents))
        real_fsync_tree(top)

    def retry(builder: ObjectBuilder) -> None:
        raise AssertionError(f"{builder.object_id} needed the one-by-one retry")

    monkeypatch.setattr(_fs, "fsync_tree", fsync_tree)
    monkeypatch.setattr(store, "_commit_new_object", retry)
    batch = store.begin_batch()
    builders = []
    for i in range(200):  # 200 ids over 4,096 first-level folders: some share one
        b = batch.begin_object(f"urn:pearl-archive:GZ:shared-{i}")
        b.add_bytes("a.txt", str(i).encode())
        builders.append(b)
    published = []
    for b in store.commit_many(builders, message="ingest", user_name="ingest"):
        published.append(b.object_id)
        calls.append(("published", True))
    batch.close()
    monkeypatch.undo()
    assert calls[0] == ("fsync", False) and calls.count(("fsync", False)) == 1  # before the first rename
    assert len(published) == 200
    firsts = [object_relpath(b.object_id).parts[0] for b in builders]
    assert len(set(firsts)) < len(firsts)
    assert_valid(store.root)


def test_commit_many_stops_at_an_existing_object_and_closes_the_rest(store: OcflStore) -> None:
    ingest_record(store, "urn:pearl-archive:GZ:taken")
    batch = store.begin_batch()
    first = batch.begin_object("urn:pearl-archive:GZ:first")
    first.add_bytes("a.txt", b"a")
    other = store.begin_batch()
    clash = other.begin_object("urn:pearl-archive:GZ:second")
    clash.add_bytes("a.txt", b"b")
    second = batch.begin_object("urn:pearl-archive:GZ:second")
    second.add_bytes("a.txt", b"c")
    commit(store, clash)  # a concurrent writer gets there first
    done = []
    with pytest.raises(ObjectExists):
        for b in store.commit_many([first, second], message="ingest", user_name="ingest"):
            done.append(b.object_id)
    assert done == ["urn:pearl-archive:GZ:first"]
    assert first.closed and second.closed
    batch.close()
    other.close()
    assert list(store.staging_dir.glob("ocfl-txn-*")) == []
    assert_valid(store.root)


def test_sweep_removes_dead_staging_at_once_and_spares_live_writers(store: OcflStore) -> None:
    staging = store.staging_dir
    (staging / "ocfl-txn-empty").mkdir()  # a writer died between creating its folder and its lock
    (staging / "ocfl-txn-half" / "object").mkdir(parents=True)  # died while removing its folder
    dead = staging / "ocfl-txn-dead"
    dead.mkdir()
    (dead / ".lock").touch()  # its lock is free: the writer died
    (dead / "object").mkdir()
    live = store.begin_batch()
    live_builder = live.begin_object("urn:pearl-archive:GZ:live")
    actions = store.sweep_staging()
    assert len(actions) == 3
    assert sorted(p.name for p in staging.glob("ocfl-txn-*")) == [live.path.name]
    live_builder.add_bytes("a.txt", b"still here")
    assert store.commit(live_builder, message="m", user_name="u") == "v1"
    live.close()
    assert list(staging.glob("ocfl-txn-*")) == []


def test_a_writer_whose_new_folder_is_swept_tries_another(
    store: OcflStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_lock_new = _fs.lock_new
    swept: list[str] = []

    def lock_new(lock_file: Path) -> int | None:
        if not swept:  # recovery runs between the writer's mkdir and its lock
            swept.extend(store.sweep_staging())
        return real_lock_new(lock_file)

    monkeypatch.setattr(_fs, "lock_new", lock_new)
    b = store.begin_object(RECORD_ID)
    assert swept and b.version_dir.exists()
    b.add_bytes(SCAN, SCAN_BYTES)
    assert commit(store, b) == "v1"
