"""Named crash points for the crash-safety tests.

``ARCHIVE_FAILPOINT=<name>`` makes the process kill itself with SIGKILL when it reaches that point, exactly as
a power cut or the OOM killer would: no ``finally`` block, no atexit handler runs. Unset (always, outside the
tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal


def failpoint(name: str) -> None:
    if os.environ.get("ARCHIVE_FAILPOINT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
