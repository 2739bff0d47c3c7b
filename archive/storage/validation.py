"""Independent validation of the storage root with ocfl-py (https://github.com/zimeon/ocfl-py).

Two ways, both used by the tests and by ``archive audit``: the Python API (``ocfl.StorageRoot.validate``)
and the ``ocfl-validate.py`` script in a subprocess with a timeout. ocfl-py 2.1's ``StorageRoot.validate``
returns True even when an object inside is invalid (it only counts them), and its script, given only the
root, then exits 0 without printing the object's errors. So the API path also requires every object to be
good, and the CLI path names the root *and* every object directory (in batches) and also fails on any
``[E…]`` line.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["validate_root"]

_ERROR_LINE = re.compile(r"\[E\d{3}[a-z]?\]")
_BATCH = 200


def validate_root(
    root: Path,
    *,
    check_digests: bool = True,
    lax_digests: bool = False,
    use_cli: bool = False,
    timeout: float = 600.0,
) -> tuple[bool, list[str]]:
    """Validate the whole storage root and every object in it; return (ok, messages).

    Messages include warnings; ``ok`` is False on any error. An object whose fixity block records sm3 fails
    strict validation (E056b, unknown algorithm) and makes ocfl-py 2.1 crash when it re-hashes; validate such
    a root with ``lax_digests=True, check_digests=False``."""
    if use_cli:
        return _validate_cli(root, check_digests=check_digests, lax_digests=lax_digests, timeout=timeout)
    import ocfl  # third-party ocfl-py; imported here so that using the store does not need it

    store = ocfl.StorageRoot(root=str(root), lax_digests=lax_digests)
    valid = store.validate(log_warnings=True, check_digests=check_digests)
    messages = [str(m) for m in store.log.messages] if store.log is not None else []
    messages += [line for _path, text in store.errors for line in str(text).splitlines()]
    ok = bool(valid) and store.good_objects == store.num_objects
    return ok, messages


def _validator_script() -> str | None:
    """ocfl-py's ``ocfl-validate.py`` as installed with the package (not a shell shim found on PATH, which
    pyenv puts first and which Python cannot run)."""
    try:
        dist = importlib.metadata.distribution("ocfl-py")
        for entry in dist.files or []:
            if entry.name == "ocfl-validate.py":
                path = Path(str(dist.locate_file(entry))).resolve()
                if path.is_file():
                    return str(path)
    except importlib.metadata.PackageNotFoundError:
        pass
    return shutil.which("ocfl-validate.py")


def _validate_cli(
    root: Path, *, check_digests: bool, lax_digests: bool, timeout: float
) -> tuple[bool, list[str]]:
    script = _validator_script()
    if script is None:
        return False, ["ocfl-validate.py not found on PATH (pip install ocfl-py)"]
    objects = _object_dirs(root)
    lines: list[str] = []
    ok = True
    for start in range(0, max(len(objects), 1), _BATCH):
        args = [sys.executable, script]
        if not check_digests:
            args.append("--no-check-digests")
        if lax_digests:
            args.append("--lax-digests")
        args += [str(p) for p in ([root] if start == 0 else []) + objects[start : start + _BATCH]]
        try:
            result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return False, [*lines, f"ocfl-validate.py did not finish within {timeout} s"]
        out = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        ok = ok and result.returncode == 0 and not any(_ERROR_LINE.search(line) for line in out)
        lines += out
    return ok, lines


def _object_dirs(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirs, files in os.walk(root):
        if any(f.startswith("0=ocfl_object_") for f in files):
            found.append(Path(dirpath))
            dirs[:] = []
        elif Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d != "extensions"]
        dirs.sort()
    return found
