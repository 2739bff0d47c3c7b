"""schemathesis over the staff API (``/api/v1/transfers``, ``/api/v1/uploads``, the access decisions) of a real
``archive serve``, with an archivist's token: generated requests from the OpenAPI document, a bounded number
per operation, and not one answer may be a server error (5xx)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from archive import db
from archive.accounts import add_user, create_token
from archive.config import Settings
from tests.e2e.helpers import free_port, serving

STAFF_PATHS = r"^/api/v1/(transfers|uploads|records/)"


def test_no_server_error_anywhere_in_the_staff_api(home: Settings, tmp_path: Path) -> None:
    with db.write_session(home) as s:
        add_user(s, "gz", roles=["archivist"], archives=["GZ"], actor="test")
        token = create_token(s, "gz", actor="test")[1]
    env = {**os.environ, "ARCHIVE_MAX_TRANSFER_BYTES": str(1 << 20)}
    with serving(env, free_port(), tmp_path / "serve.log") as url:
        result = subprocess.run(
            [
                str(Path(sys.executable).parent / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "--checks",
                "not_a_server_error",
                "--header",
                f"Authorization: Bearer {token}",
                "--include-path-regex",
                STAFF_PATHS,
                "--max-examples",
                "25",
                "--phases",
                "examples,coverage,fuzzing",
                "--seed",
                "11",
                "--generation-database",
                "none",
                "--workers",
                "1",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=tmp_path,
        )
        log = (tmp_path / "serve.log").read_text(errors="replace")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:] + log[-3000:]
    assert "Traceback" not in log, log[-6000:]
    tested = re.search(r"Tested: (\d+)", result.stdout)
    generated = re.search(r"(\d+) generated", result.stdout)
    assert tested and int(tested.group(1)) >= 8, result.stdout[-3000:]  # transfers, uploads, access
    assert generated and int(generated.group(1)) >= 100, result.stdout[-3000:]
