"""Every bag of the Library of Congress BagIt conformance suite, against its folder's verdict and against
LoC's own ``bagit`` package.

The suite lives beside the checkout (``../shared/bagit-conformance-suite``) or where ``ARCHIVE_BAGIT_SUITE``
says. It is read-only; nothing here writes into it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import bagit
import pytest

from ingest.bag import validate_bag


def suite_root() -> Path:
    env = os.environ.get("ARCHIVE_BAGIT_SUITE")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "bagit-conformance-suite"


def suite_bags() -> list[str]:
    root = suite_root()
    if not root.is_dir():
        return []
    return sorted(
        str(b.relative_to(root)) for b in root.glob("v*/*/*") if b.is_dir() and b.parent.name != "data"
    )


BAGS = suite_bags()

# On Linux the windows-only bags name files such as ``C:\Windows\System32\setx.exe`` or
# ``\\?\UNC\server\...``: harmless here, but a path outside data/ in a payload manifest or fetch.txt, and
# one that escapes the bag once a copy is made on Windows. We refuse every one of them (BAG014), so their
# expected outcome is "invalid", like linux-only/.
EXPECTED_VALID = {
    "valid": True,
    "warning": True,
    "invalid": False,
    "linux-only": False,
    "windows-only": False,
}

# The code that must be among the problems of each bag that is not plainly valid.
EXPECTED_CODE = {
    "v0.97/invalid/baginfo-missing-encoding": "BAG005",
    "v0.97/invalid/bom-in-bagit.txt": "BAG003",
    "v0.97/invalid/corrupt-data-file": "BAG023",
    "v0.97/invalid/corrupt-tag-file": "BAG024",
    "v0.97/invalid/extra-file-in-bag": "BAG019",
    "v0.97/invalid/invalid-version-number": "BAG006",
    "v0.97/invalid/missing-baginfo": "BAG025",
    "v0.97/invalid/missing-bagit.txt": "BAG002",
    "v0.97/invalid/out-of-scope-file-paths-using-dot-notation": "BAG013",
    "v0.97/invalid/out-of-scope-file-paths-using-dot-notation-for-fetch": "BAG013",
    "v0.97/invalid/same-filename-listed-twice-with-different-hashes": "BAG016",
    "v0.97/linux-only/out-of-scope-file-paths-using-absolute-path": "BAG013",
    "v0.97/linux-only/out-of-scope-file-paths-using-absolute-path-for-fetch": "BAG013",
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut": "BAG013",
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-for-fetch": "BAG013",
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-username": "BAG013",
    "v0.97/linux-only/out-of-scope-file-paths-using-shortcut-username-for-fetch": "BAG013",
    "v0.97/warning/duplicate-file-with-different-case": "BAG039",
    "v0.97/warning/made-with-md5sum-tools": "BAG044",
    "v0.97/warning/relative-path": "BAG043",
    "v0.97/warning/same-filename-listed-twice-with-different-normalization": "BAG045",
    "v0.97/warning/same-filename-listed-twice-with-the-same-hash": "BAG017",
    "v0.97/warning/special-system-files": "BAG042",
    "v0.97/windows-only/out-of-scope-file-paths-using-absolute-path": "BAG014",
    "v0.97/windows-only/out-of-scope-file-paths-using-absolute-path-for-fetch": "BAG014",
    "v0.97/windows-only/out-of-scope-file-paths-using-shortcut": "BAG014",
    "v0.97/windows-only/out-of-scope-file-paths-using-shortcut-for-fetch": "BAG014",
    "v0.97/windows-only/out-of-scope-file-paths-using-unc": "BAG014",
    "v0.97/windows-only/out-of-scope-file-paths-using-unc-for-fetch": "BAG014",
    "v1.0/invalid/bagit-with-invalid-whitespace": "BAG004",
    "v1.0/invalid/notAllManifestsListAllFiles": "BAG019",
    "v1.0/invalid/same-filename-listed-twice-with-different-hashes": "BAG016",
    "v1.0/invalid/same-filename-listed-twice-with-the-same-hash": "BAG018",
}

# Where LoC's bagit.py (1.9) and we disagree, and why.
BAGIT_PY_DISAGREES = {
    # The suite's warning/ bags are valid with a warning; bagit.py on Linux rejects these three:
    "v0.97/warning/duplicate-file-with-different-case": "bagit.py: data/HELLO.txt missing",
    "v0.97/warning/same-filename-listed-twice-with-different-normalization": "bagit.py: NFD name not found",
    "v0.97/warning/special-system-files": "bagit.py: .DS_Store (dropped by copying) missing, Oxum count off",
    # bagit.py does not look at backslash paths in fetch.txt; we refuse them (they escape the bag on Windows).
    "v0.97/windows-only/out-of-scope-file-paths-using-absolute-path-for-fetch": "bagit.py accepts",
    "v0.97/windows-only/out-of-scope-file-paths-using-shortcut-for-fetch": "bagit.py accepts",
    "v0.97/windows-only/out-of-scope-file-paths-using-unc-for-fetch": "bagit.py accepts",
    # The suite says invalid ('BagIt-Version : 1.0'); bagit.py strips the blank before the colon.
    "v1.0/invalid/bagit-with-invalid-whitespace": "bagit.py accepts",
}


@pytest.fixture(autouse=True)
def quiet_bagit() -> Iterator[None]:
    logging.getLogger("bagit").setLevel(logging.CRITICAL)
    yield
    logging.getLogger("bagit").setLevel(logging.NOTSET)


def test_suite_is_there() -> None:
    if not BAGS:
        msg = f"BagIt conformance suite not found at {suite_root()} (set ARCHIVE_BAGIT_SUITE)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    assert {b.split("/")[1] for b in BAGS} == set(EXPECTED_VALID)
    assert set(EXPECTED_CODE) <= set(BAGS)
    assert set(BAGIT_PY_DISAGREES) <= set(BAGS)


@pytest.mark.parametrize("name", BAGS)
def test_conformance_bag(name: str) -> None:
    folder = name.split("/")[1]
    report = validate_bag(suite_root() / name)
    codes = {p.code for p in report.problems}
    assert report.valid is EXPECTED_VALID[folder], [str(p) for p in report.problems]
    if folder == "warning":
        assert report.warnings, "a warning/ bag must produce at least one warning"
    if name in EXPECTED_CODE:
        assert EXPECTED_CODE[name] in codes, [str(p) for p in report.problems]
    if report.valid:
        assert report.file_count > 0
    report.as_dict()  # always serialisable


def bagit_py_valid(path: Path) -> bool:
    try:
        bagit.Bag(str(path)).validate()
    except bagit.BagError:  # BagValidationError is a BagError
        return False
    return True


@pytest.mark.parametrize("name", BAGS)
def test_agrees_with_bagit_py(name: str) -> None:
    ours = validate_bag(suite_root() / name).valid
    theirs = bagit_py_valid(suite_root() / name)
    if name in BAGIT_PY_DISAGREES:
        assert ours != theirs, f"no longer a disagreement, remove it from the list: {name}"
    else:
        assert ours == theirs
