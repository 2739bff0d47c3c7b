#!/usr/bin/env bash
# THE test command (README, CI): install what is missing, start the real services on 127.0.0.1, run the
# linters, the type checker and the test suite, stop the services. Exit non-zero if any step fails.
#
#   bash scripts/test.sh
#
# Environment knobs:
#   PYTEST_ARGS            default "-q -n 2 --cov" (pytest-xdist, coverage); e.g. PYTEST_ARGS="-q -x tests/ingest"
#   ARCHIVE_VENV           the virtual environment scripts/setup.sh makes and this uses (default .venv)
#   ARCHIVE_TEST_SERVICES  services to start, default "postgres redis elasticsearch seaweedfs"; "none" for none
#   ARCHIVE_SKIP_SETUP=1   skip scripts/setup.sh (everything already installed)
#   ARCHIVE_KEEP_SERVICES=1  leave the services running afterwards (for re-running pytest by hand)
# Lint/type/test steps all run even if an earlier one fails, so one run shows every problem.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV="${ARCHIVE_VENV:-$REPO_ROOT/.venv}"
PYTHON="$VENV/bin/python"
export PATH="$VENV/bin:$PATH"
PYTEST_ARGS="${PYTEST_ARGS:--q -n 2 --cov --cov-report=term:skip-covered}"
SERVICES="${ARCHIVE_TEST_SERVICES:-postgres redis elasticsearch seaweedfs}"
[ "$SERVICES" = none ] && SERVICES=""

summary=()
failed=()
services_started=0

now() { date +%s; }

banner() { printf '\n==> %s\n' "$*"; }

record() { # name rc seconds
    local verdict=ok
    if [ "$2" -ne 0 ]; then
        verdict="FAILED($2)"
        failed+=("$1")
    fi
    summary+=("$1 ${3}s $verdict")
}

# Run a step, time it, record its verdict; never aborts the script.
step() {
    local name="$1" t0 rc
    shift
    banner "$name: $*"
    t0=$(now)
    set +e
    "$@"
    rc=$?
    set -e
    record "$name" "$rc" $(($(now) - t0))
    return 0
}

finish() {
    local rc=$?
    if [ -n "$svc_pid" ]; then # interrupted while the services were starting
        kill "$svc_pid" 2>/dev/null || true
        wait "$svc_pid" 2>/dev/null || true
        [ -n "$svc_log" ] && cat "$svc_log" && rm -f "$svc_log"
    fi
    if [ "$services_started" -eq 1 ] && [ "${ARCHIVE_KEEP_SERVICES:-0}" != 1 ]; then
        banner "stopping services"
        # shellcheck disable=SC2086
        bash scripts/services.sh stop $SERVICES || true
    fi
    echo
    echo "timings: ${summary[*]/%/;}" | sed 's/;$//'
    if [ "${#failed[@]}" -gt 0 ]; then
        echo "test.sh: FAILED steps: ${failed[*]}"
        [ "$rc" -eq 0 ] && rc=1
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------- setup and services (fatal)
if [ "${ARCHIVE_SKIP_SETUP:-0}" != 1 ]; then
    step setup bash scripts/setup.sh
    [ "${#failed[@]}" -eq 0 ] || exit 1
fi

# The services start in the background while the linters run (Elasticsearch needs ~20-60 s to boot).
svc_pid=""
svc_log=""
if [ -n "$SERVICES" ]; then
    services_started=1
    svc_log="$(mktemp "${TMPDIR:-/tmp}/pearl-archive-services-start.XXXXXX")"
    svc_t0=$(now)
    banner "services (in the background): scripts/services.sh start --fresh $SERVICES"
    # --fresh: every run starts from an empty database, index and broker
    # shellcheck disable=SC2086
    bash scripts/services.sh start --fresh $SERVICES >"$svc_log" 2>&1 &
    svc_pid=$!
fi

# ------------------------------------------------------------------------------- checks (all of them run)
step ruff-check "$PYTHON" -m ruff check .
step ruff-format "$PYTHON" -m ruff format --check .
step mypy "$PYTHON" -m mypy

if [ -n "$svc_pid" ]; then
    banner "services: waiting for the start to finish"
    svc_rc=0
    wait "$svc_pid" || svc_rc=$?
    svc_pid=""
    cat "$svc_log"
    rm -f "$svc_log"
    record services "$svc_rc" $(($(now) - svc_t0))
    [ "$svc_rc" -eq 0 ] || exit 1
    # shellcheck disable=SC2086
    eval "$(bash scripts/services.sh env $SERVICES)"
    env | grep '^ARCHIVE_TEST_' | sort || true
fi

run_pytest() {
    local rc
    # shellcheck disable=SC2086
    "$PYTHON" -m pytest $PYTEST_ARGS && rc=0 || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "test.sh: pytest collected no tests: counted as a failure"
    fi
    return "$rc"
}
step pytest run_pytest
