"""Factories for tests: build BagIt bags on disk, stating only what a test cares about.

Independent of ``ingest`` on purpose (plain hashlib, its own writer), so that the validator is checked against
bags it did not write.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

__all__ = ["add_manifest_line", "make_bag", "rewrite_tag_manifests", "write_manifest"]


def _encode(path: str, version: str) -> str:
    if version != "1.0":
        return path
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def write_manifest(bag: Path, name: str, entries: Iterable[tuple[str, str]], encoding: str = "utf-8") -> None:
    """Write ``name`` (e.g. ``manifest-sha256.txt``) with ``digest  path`` lines, exactly as given."""
    (bag / name).write_bytes("".join(f"{d}  {p}\n" for d, p in entries).encode(encoding))


def rewrite_tag_manifests(
    bag: Path, algorithms: Iterable[str] | None = None, encoding: str = "utf-8"
) -> None:
    """Recompute every tag manifest (or those of ``algorithms``) after a test edited a tag file."""
    if algorithms is None:
        algorithms = [p.name[len("tagmanifest-") : -4] for p in bag.glob("tagmanifest-*.txt")]
    tag_files = sorted(
        p.name
        for p in bag.iterdir()
        if p.is_file() and not p.is_symlink() and not p.name.startswith("tagmanifest-")
    )
    for a in algorithms:
        entries = [(hashlib.new(a, (bag / n).read_bytes()).hexdigest(), n) for n in tag_files]
        write_manifest(bag, f"tagmanifest-{a}.txt", entries, encoding)


def add_manifest_line(
    bag: Path, algorithm: str, line: str, *, tag: bool = False, refresh: bool = True
) -> None:
    """Append a raw line to a manifest (then, by default, refresh the tag manifests so only it is wrong)."""
    name = f"{'tag' if tag else ''}manifest-{algorithm}.txt"
    with open(bag / name, "a", encoding="utf-8", newline="") as fh:
        fh.write(line if line.endswith("\n") else line + "\n")
    if refresh and not tag:
        rewrite_tag_manifests(bag)


def make_bag(
    tmp_path: Path,
    files: Mapping[str, bytes],
    algorithms: Iterable[str] = ("sha256",),
    *,
    name: str = "bag",
    version: str = "1.0",
    encoding: str = "UTF-8",
    info: Mapping[str, str] | None = None,
    oxum: bool | str = True,
    tag_algorithms: Iterable[str] | None = None,
    fetch: Mapping[str, str] | None = None,
) -> Path:
    """Write a complete, valid bag ``tmp_path/name`` whose payload is ``files`` (paths relative to ``data/``).

    ``oxum`` may be a string to write a wrong or malformed Payload-Oxum; ``fetch`` maps payload paths
    (relative to ``data/``) to URLs for a fetch.txt; ``tag_algorithms`` defaults to ``algorithms``.
    """
    algorithms = list(algorithms)
    bag = tmp_path / name
    data = bag / "data"
    data.mkdir(parents=True)
    lines: dict[str, list[tuple[str, str]]] = {a: [] for a in algorithms}
    total = 0
    for rel, content in sorted(files.items()):
        target = data / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        total += len(content)
        for a in algorithms:
            lines[a].append((hashlib.new(a, content).hexdigest(), _encode("data/" + rel, version)))
    codec = "utf-8" if encoding.upper() == "UTF-8" else encoding
    (bag / "bagit.txt").write_text(
        f"BagIt-Version: {version}\nTag-File-Character-Encoding: {encoding}\n", encoding="utf-8"
    )
    fields = {"Bagging-Date": "2024-01-01", **(info or {})}
    if oxum is True:
        fields["Payload-Oxum"] = f"{total}.{len(files)}"
    elif oxum:
        fields["Payload-Oxum"] = str(oxum)
    (bag / "bag-info.txt").write_bytes("".join(f"{k}: {v}\n" for k, v in fields.items()).encode(codec))
    for a in algorithms:
        write_manifest(bag, f"manifest-{a}.txt", lines[a], codec)
    if fetch:
        body = "".join(f"{url} - {_encode('data/' + rel, version)}\n" for rel, url in fetch.items())
        (bag / "fetch.txt").write_bytes(body.encode(codec))
    rewrite_tag_manifests(bag, algorithms if tag_algorithms is None else tag_algorithms, codec)
    return bag
