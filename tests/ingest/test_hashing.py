from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import hashing
from ingest.hashing import ALGORITHMS, CHUNK, HashJob, hash_file, hash_files

SIZES = [0, 1, 2047, 2048, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5]


def expected(data: bytes, algorithms: tuple[str, ...] = ALGORITHMS) -> dict[str, str]:
    return {a: hashlib.new(a, data).hexdigest() for a in algorithms}


@pytest.fixture
def small_large_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the large-file path (algorithms spread over threads) kick in for a 1 MiB file."""
    monkeypatch.setattr(hashing, "LARGE_FILE", 1 << 20)
    monkeypatch.setattr(hashing, "LARGE_CHUNK", 64 << 10)


def test_digests_equal_hashlib_for_every_algorithm_and_size(tmp_path: Path) -> None:
    contents = {}
    for size in SIZES:
        p = tmp_path / f"f{size}"
        contents[p] = os.urandom(size)
        p.write_bytes(contents[p])
    results = list(hash_files(contents, ALGORITHMS, workers=3))
    assert len(results) == len(SIZES)
    for r in results:
        assert r.ok and r.error is None
        assert r.size == len(contents[r.path])
        assert r.digests == expected(contents[r.path])


@pytest.mark.usefixtures("small_large_file")
@pytest.mark.parametrize("workers", [1, 2])
def test_large_file_split_over_algorithm_threads(tmp_path: Path, workers: int) -> None:
    data = os.urandom(5 * (64 << 10) + 17)
    p = tmp_path / "big"
    p.write_bytes(data)
    dest = tmp_path / "copy" / "deep" / "big"
    [r] = hash_files([HashJob(p, dest)], ALGORITHMS, workers=workers)
    assert r.digests == expected(data)
    assert r.size == len(data)
    assert dest.read_bytes() == data


def test_a_real_big_file(tmp_path: Path) -> None:
    data = os.urandom(hashing.LARGE_FILE + 12345)
    p = tmp_path / "big"
    p.write_bytes(data)
    r = hash_file(p, ("sha256", "sha512", "sm3"), destination=tmp_path / "out" / "big")
    assert r.digests == expected(data, ("sha256", "sha512", "sm3"))
    assert (tmp_path / "out" / "big").read_bytes() == data


def test_copy_is_byte_identical_and_parents_are_created(tmp_path: Path) -> None:
    jobs = []
    contents = {}
    for i, size in enumerate(SIZES):
        src = tmp_path / "src" / f"文件 {i}.bin"
        src.parent.mkdir(exist_ok=True)
        contents[src] = os.urandom(size)
        src.write_bytes(contents[src])
        jobs.append(HashJob(src, tmp_path / "dst" / f"目录 {i}" / src.name))
    results = list(hash_files(jobs, ["sha256"], workers=2))
    assert all(r.ok for r in results)
    for job in jobs:
        assert job.destination is not None
        assert job.destination.read_bytes() == contents[Path(job.source)]


def test_unreadable_files_are_reported_not_raised(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"hello")
    (tmp_path / "a-directory").mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # must not block: never opened for reading as a file
    link = tmp_path / "link"
    link.symlink_to(good)
    jobs = [good, tmp_path / "missing", tmp_path / "a-directory", fifo, link]
    results = {r.path.name: r for r in hash_files(jobs, ["sha256"], workers=2)}
    assert results["good"].digests == expected(b"hello", ("sha256",))
    for name in ("missing", "a-directory", "fifo", "link"):
        assert results[name].error, name
        assert not results[name].ok and results[name].digests == {}


def test_copy_that_cannot_be_written_is_an_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"x")
    (tmp_path / "blocker").write_bytes(b"a file where a directory should be")
    [r] = hash_files([HashJob(src, tmp_path / "blocker" / "copy")], ["md5"], workers=1)
    assert r.error


def test_many_files_with_progress(tmp_path: Path) -> None:
    contents = {}
    for i in range(2000):
        p = tmp_path / f"{i:05}"
        contents[p] = f"file {i}\n".encode() * (i % 7)
        p.write_bytes(contents[p])
    calls: list[tuple[int, int]] = []
    results = list(
        hash_files(iter(contents), ["sha256", "sm3"], workers=4, progress=lambda f, b: calls.append((f, b)))
    )
    assert len(results) == len(contents)
    assert {r.path for r in results} == set(contents)
    for r in results:
        assert r.digests == expected(contents[r.path], ("sha256", "sm3"))
    assert calls[-1] == (len(contents), sum(map(len, contents.values())))
    assert [f for f, _ in calls] == sorted(f for f, _ in calls)


def test_closing_early_does_not_hang(tmp_path: Path) -> None:
    """Closing the iterator after one result stops the workers (joined, not left running) and reads no
    more jobs from the source than the batches already handed out; a hang is caught by pytest-timeout."""
    paths = []
    for i in range(200):
        p = tmp_path / str(i)
        p.write_bytes(b"x" * 5000)
        paths.append(p)
    pulled = 0

    def source() -> Iterator[Path]:
        nonlocal pulled
        for p in paths:
            pulled += 1
            yield p

    others = set(threading.enumerate())  # e.g. another test's iterator not yet collected

    def hashing_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name.startswith("hash-") and t not in others]

    it = hash_files(source(), ["sha1"], workers=2)
    first = next(it)
    assert first.ok and first.digests == {"sha1": hashlib.sha1(b"x" * 5000).hexdigest()}
    assert len(hashing_threads()) == 2
    it.close()
    assert hashing_threads() == []
    assert pulled < len(paths)


def test_unknown_algorithm_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        list(hash_files([tmp_path], ["no-such-hash"]))


def test_algorithm_groups_balance_cost() -> None:
    groups = hashing._groups(["md5", "sha1", "sha256", "sha512", "sm3"], 2)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3, 4]
    assert [4] in groups  # sm3 alone costs about as much as all the others together


def test_a_copy_never_overwrites(tmp_path: Path) -> None:
    """Destinations are created, never truncated: two names a file system folds together cannot share one."""
    src = tmp_path / "a.txt"
    src.write_bytes(b"new")
    taken = tmp_path / "deep" / "copy.txt"
    fresh = tmp_path / "deeper" / "still" / "copy.txt"  # missing folders are made
    assert hash_file(src, ("sha256",), destination=fresh).ok and fresh.read_bytes() == b"new"
    taken.parent.mkdir()
    taken.write_bytes(b"already here")
    result = hash_file(src, ("sha256",), destination=taken)
    assert not result.ok and "exists" in (result.error or "")
    assert taken.read_bytes() == b"already here"
