"""Write BagIt 1.0 bags (RFC 8493): used by ``archive demo``, the benchmarks and the tests' factories."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from archive.digests import hash_file


def _encode_path(path: str) -> str:
    """Percent-encode what RFC 8493 §2.1.3 requires in manifest paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _digests(path: Path, algorithms: Iterable[str]) -> dict[str, str]:
    return hash_file(path, tuple(algorithms))[1]


def make_bag(
    root: Path,
    *,
    algorithms: Iterable[str] = ("sha256",),
    info: Mapping[str, str] | None = None,
    tag_algorithms: Iterable[str] | None = None,
) -> Path:
    """Turn ``root`` (whose ``data/`` already holds the payload) into a complete bag; returns ``root``."""
    algorithms = list(algorithms)
    data = root / "data"
    files = sorted(p for p in data.rglob("*") if p.is_file())
    lines: dict[str, list[str]] = {a: [] for a in algorithms}
    total = 0
    for path in files:
        rel = path.relative_to(root).as_posix()
        total += path.stat().st_size
        for a, d in _digests(path, algorithms).items():
            lines[a].append(f"{d}  {_encode_path(rel)}\n")
    (root / "bagit.txt").write_text(
        "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n", encoding="utf-8"
    )
    fields = {
        "Bagging-Date": dt.date.today().isoformat(),
        "Payload-Oxum": f"{total}.{len(files)}",
        **(info or {}),
    }
    (root / "bag-info.txt").write_text("".join(f"{k}: {v}\n" for k, v in fields.items()), encoding="utf-8")
    for a in algorithms:
        (root / f"manifest-{a}.txt").write_text("".join(lines[a]), encoding="utf-8")
    tag_files = sorted(
        p.name for p in root.iterdir() if p.is_file() and not p.name.startswith("tagmanifest-")
    )
    for a in tag_algorithms if tag_algorithms is not None else algorithms:
        body = "".join(f"{_digests(root / name, [a])[a]}  {name}\n" for name in tag_files)
        (root / f"tagmanifest-{a}.txt").write_text(body, encoding="utf-8")
    return root


def write_payload(root: Path, files: Mapping[str, bytes]) -> None:
    """Write ``{"data/…": bytes}`` (paths relative to the bag root) into the bag folder."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.utime(target)
