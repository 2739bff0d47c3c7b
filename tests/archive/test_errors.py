"""The one error model: a single tree under ArchiveError, every code unique and in the catalogue
(``archive/codes/*.toml``), every catalogue entry with Chinese and English, no message text at raise sites."""

from __future__ import annotations

import ast
import importlib
import pickle
import pkgutil
import re
import string
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import archive
import archive.codes
from archive.codes import CatalogueError, catalogue, fill, load, render
from archive.errors import (
    ArchiveError,
    BadArgument,
    DatabaseUnavailable,
    DiskFull,
    NotFound,
    ServiceUnavailable,
    Unavailable,
    UsageError,
    redact_url,
)

ROOT = Path(archive.__file__).resolve().parent.parent
PACKAGES = ("archive", "ingest", "preservation", "search", "access_portal")
CODES_DIR = ROOT / "archive" / "codes"
CODE = re.compile(r"^[A-Z]{3,4}\d{3}$")


def _import_everything() -> None:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for info in pkgutil.walk_packages(package.__path__, f"{name}."):
            if ".migrations" not in info.name and not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def error_classes() -> list[type[ArchiveError]]:
    _import_everything()
    found: list[type[ArchiveError]] = []
    todo: list[type[ArchiveError]] = [ArchiveError]
    while todo:
        cls = todo.pop()
        if cls not in found and cls.__module__.split(".")[0] in PACKAGES:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    return found


def source_files() -> Iterator[Path]:
    for name in PACKAGES:
        yield from sorted((ROOT / name).rglob("*.py"))


def toml_tables() -> Iterator[tuple[str, dict[str, object]]]:
    for path in sorted(CODES_DIR.glob("*.toml")):
        yield path.name, tomllib.loads(path.read_text(encoding="utf-8"))


# -- the catalogue ----------------------------------------------------------------------------------------


def test_codes_are_unique_across_the_catalogue() -> None:
    counted = Counter(code for _name, table in toml_tables() for code in table)
    assert [code for code, n in counted.items() if n > 1] == []
    assert all(CODE.match(code) for code in counted), [c for c in counted if not CODE.match(c)]
    assert len(catalogue()) >= len(counted)  # the loader read every file


def test_every_entry_has_chinese_and_english() -> None:
    empty = []
    for name, table in toml_tables():
        for code, entry in table.items():
            assert isinstance(entry, dict)
            subs = [(f"{code}.{k}", v) for k, v in entry.items() if isinstance(v, dict)]
            for key, texts in [(code, entry), *subs]:
                for lang in ("zh", "en"):
                    text = texts.get(lang)
                    if not isinstance(text, str) or not text.strip():
                        empty.append(f"{name} {key} {lang}")
    assert empty == []


def test_the_loader_reads_every_file_and_refuses_a_code_twice(tmp_path: Path) -> None:
    (tmp_path / "federation.toml").write_text(
        '[FED001]\nzh = "节点 {node} 无响应"\nen = "Node {node} is silent"\n'
    )
    (tmp_path / "notes.txt").write_text("[FED002]\n")
    loaded = load(tmp_path)
    assert set(loaded) == {"FED001"} and loaded["FED001"].area == "federation"
    (tmp_path / "other.toml").write_text('[FED001]\nzh = "又一个"\nen = "again"\n')
    with pytest.raises(CatalogueError, match="FED001 defined twice"):
        load(tmp_path)
    (tmp_path / "other.toml").write_text('[FED003]\nzh = ""\nen = "no Chinese"\n')
    with pytest.raises(CatalogueError, match="FED003"):
        load(tmp_path)


# -- the source -------------------------------------------------------------------------------------------


def test_every_code_in_the_source_is_in_the_catalogue() -> None:
    """Class ``code = "…"`` attributes, ``Problem("CODE", …)`` calls and every other code-shaped string."""
    known = catalogue()
    missing = []
    seen = 0
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
                seen += 1
                if node.value not in known:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value}")
    assert seen > 150  # the scan does see the source (problems and classes)
    assert missing == []


def test_every_variant_raised_is_in_the_catalogue() -> None:
    by_name: dict[str, list[type[ArchiveError]]] = {}
    for cls in error_classes():
        by_name.setdefault(cls.__name__, []).append(cls)
    missing = []
    checked = 0
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            variant = next((k.value for k in node.keywords if k.arg == "variant"), None)
            if name not in by_name or not isinstance(variant, ast.Constant):
                continue
            for cls in by_name[name]:
                checked += 1
                key = f"{cls.code}.{variant.value!s}"
                if key not in catalogue():
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno} {key}")
    assert checked > 80
    assert missing == []


def test_error_classes_form_one_tree_with_distinct_codes() -> None:
    classes = error_classes()
    assert len(classes) >= 40
    without_own_code = [c.__qualname__ for c in classes if "code" not in c.__dict__]
    assert without_own_code == []
    codes = Counter(c.code for c in classes)
    assert [code for code, n in codes.items() if n > 1] == []
    assert [c.code for c in classes if c.code not in catalogue()] == []
    # the roots that used to stand apart are in the tree now
    from archive.storage import StorageError
    from ingest.identify import SiegfriedFailed
    from search import SearchError
    from search.documents import NotPublic

    for cls in (StorageError, SearchError, NotPublic, SiegfriedFailed):
        assert issubclass(cls, ArchiveError)
    assert issubclass(NotPublic, ValueError)  # callers catching ValueError still catch it


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Constant) and isinstance(node.value, str))


def test_no_message_text_at_raise_sites() -> None:
    """Errors are raised with parameters (and a variant); the texts live in the catalogue. Flags both
    ``SomeError("中文", "English")`` and a subclass's ``super().__init__("中文", "English", …)`` (the shape used
    before the catalogue: move the texts to ``archive/codes/*.toml`` and pass the values as keywords)."""
    takes_texts = {ArchiveError.__init__, ServiceUnavailable.__init__, DiskFull.__init__}
    names = {c.__name__ for c in error_classes() if c.__init__ in takes_texts}
    sites = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            direct = isinstance(node.func, ast.Name) and node.func.id in names and bool(node.args)
            inherited = (
                isinstance(node.func, ast.Attribute)
                and node.func.attr == "__init__"
                and isinstance(node.func.value, ast.Call)
                and isinstance(node.func.value.func, ast.Name)
                and node.func.value.func.id == "super"
                and any(_is_text(a) for a in node.args)
            )
            if direct or inherited:
                sites.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)[:80]}")
    assert sites == []


# -- the constructor --------------------------------------------------------------------------------------


def test_texts_come_from_the_catalogue_by_code_and_variant() -> None:
    exc = NotFound(variant="record", archive="GZ", archival_code="GZ-1")
    assert (exc.code, exc.zh, exc.en) == ("ARC004", "GZ 没有档号为 GZ-1 的档案", "GZ holds no record GZ-1")
    assert str(exc) == "ARC004: GZ 没有档号为 GZ-1 的档案 / GZ holds no record GZ-1"
    assert exc.as_dict() == {
        "code": "ARC004",
        "message_zh": exc.zh,
        "message_en": exc.en,
        "variant": "record",
        "archive": "GZ",
        "archival_code": "GZ-1",
    }
    assert render("ARC003", {}) == (
        "参数有误：{reason}",
        "Invalid argument: {reason}",
    )  # a missing field shows
    with pytest.raises(KeyError, match="archive/codes"):
        BadArgument(variant="no-such-situation")


def _tolerant(template: str, params: dict[str, object]) -> str:
    """What fill answered before its str.format_map fast path: the tolerant formatter alone."""
    return archive.codes._FORMATTER.vformat(template, (), archive.codes._Keep(params))


def test_fill_gives_the_tolerant_formatters_answer_for_every_catalogue_text() -> None:
    values: list[object] = ["GZ-1", 12345, 0.5, "", "{x}", None]
    for entry in catalogue().values():
        for template in (entry.zh, entry.en):
            names = {f[1].split(".")[0].split("[")[0] for f in string.Formatter().parse(template) if f[1]}
            for value in values:  # every field given, every field missing, and one given of several
                for params in ({n: value for n in names}, {}, {n: value for n in sorted(names)[:1]}):
                    assert fill(template, params) == _tolerant(template, params), (entry.code, template)


@pytest.mark.parametrize(
    ("template", "params", "expected"),
    [
        ("{a} of {b}", {"a": 1, "b": "x"}, "1 of x"),
        ("{size:,} bytes", {"size": 1234567}, "1,234,567 bytes"),
        ("{size:,} bytes", {}, "{size:,} bytes"),  # missing, with a format spec: left as written
        ("{name:>6}|", {}, "{name:>6}|"),  # a spec that would pad the missing field's name: still as written
        ("{size:,} bytes", {"size": "many"}, "many bytes"),  # a spec that does not fit: the value as text
        ("{0} and {a}", {"a": 1}, "{0} and 1"),  # a positional field
        ("{a.real} {b[0]}", {"a": 7, "b": "xy"}, "7 x"),
        ("{a!r}", {"a": "x"}, "'x'"),
    ],
)
def test_fill_fast_path_and_its_fallback(template: str, params: dict[str, object], expected: str) -> None:
    assert fill(template, params) == _tolerant(template, params) == expected


def test_the_earlier_constructor_shapes_still_work() -> None:
    """``ArchiveError(zh, en, **details)`` (code written before the catalogue) and ``SearchError("why")``."""
    from search import SearchError

    class FederationError(ArchiveError):
        code = "ARC000"

    old = FederationError("节点无响应", "The node is silent", node="GD")
    assert (old.zh, old.en, old.details) == ("节点无响应", "The node is silent", {"node": "GD"})
    why = SearchError("connection refused")
    assert why.code == "SRC000" and why.en == "Search failed: connection refused"
    with pytest.raises(TypeError):
        ArchiveError("a", "b", "c")


def test_exit_codes_by_family() -> None:
    from preservation.tools import ToolMissing
    from search.elastic import ElasticUnavailable

    assert BadArgument(variant="config", error="x").exit_code == 2 and issubclass(BadArgument, UsageError)
    assert NotFound().exit_code == 1
    for exc in (
        DatabaseUnavailable(url="postgresql://u:p@h/db", reason=OSError(111, "Connection refused")),
        ElasticUnavailable(url="http://127.0.0.1:9", reason="down", what="searching"),
        ToolMissing("gs"),
        DiskFull(path="/x", reason=OSError(28, "No space left on device")),
    ):
        assert isinstance(exc, Unavailable) and exc.exit_code == 3, exc
    down = DatabaseUnavailable(url="postgresql://u:p@h/db", reason=OSError(111, "Connection refused"))
    assert down.details["url"] == "postgresql://u:***@h/db" and down.details["reason"] == "Connection refused"
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_errors_survive_pickling() -> None:
    """Celery and multiprocessing pickle exceptions; subclasses with their own arguments must come back."""
    from preservation.tools import ToolFailed

    for exc in (ToolFailed("gs", variant="exit_status", returncode=1, stderr="bad\nworse"), NotFound()):
        back = pickle.loads(pickle.dumps(exc))
        assert (type(back), back.code, back.zh, back.en) == (type(exc), exc.code, exc.zh, exc.en)
