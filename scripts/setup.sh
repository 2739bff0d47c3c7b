#!/usr/bin/env bash
# Install everything the project needs on a Debian 12 (bookworm) machine: Debian packages for the real
# services and the preservation tools, then a virtual environment with the project (editable) and its
# locked dependencies (requirements.lock, hashed; PEP 668 forbids system-wide pip installs on Debian).
#
#   bash scripts/setup.sh            # Debian packages + .venv with '.[test]' from the lock
#   bash scripts/setup.sh --no-apt   # demo path: only libmagic1 (python-magic) and python3-venv + .venv
#   bash scripts/setup.sh --no-pip   # Debian packages only
#
# The virtual environment is $ARCHIVE_VENV (default: .venv in the repo root, ignored by git); use it with
# `.venv/bin/archive ...` or `source .venv/bin/activate`.
# Idempotent and quick on a second run: Debian packages already installed are skipped (dpkg check),
# `apt-get update` runs at most once every 6 hours (stamp file in the cache dir), and the pip step is
# skipped while requirements.lock, pyproject.toml and the interpreter are unchanged.
# Downloads are cached OUTSIDE the repo: ${ARCHIVE_CACHE:-$HOME/.cache/pearl-archive} (pip uses its own
# ~/.cache/pip, apt /var/cache/apt).
#
# To refresh the lock after changing dependencies in pyproject.toml (needs uv, e.g. `pip install uv`):
#   uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements.lock
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${ARCHIVE_CACHE:-$HOME/.cache/pearl-archive}"
PYTHON="${PYTHON:-python3}"
VENV="${ARCHIVE_VENV:-$REPO_ROOT/.venv}"
APT_UPDATE_MAX_AGE_S=$((6 * 3600))

# Everything the full test suite and the services need. The demo path needs only libmagic1.
FULL_PACKAGES=(
    postgresql redis-server
    ghostscript qpdf poppler-utils libmagic1 imagemagick
    libreoffice-core libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
    ffmpeg chromium fonts-noto-cjk fonts-arphic-uming fonts-arphic-ukai
    clamav clamav-daemon clamdscan
    # for scripts/services.sh: Elasticsearch is fetched with Maven and runs on a JDK >= 17
    openjdk-17-jdk-headless maven unzip curl
)
DEMO_PACKAGES=(libmagic1)
# Debian's own python3 has no ensurepip without python3-venv; other interpreters (pyenv, python.org) do.
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    py_minor="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
    FULL_PACKAGES+=("python${py_minor}-venv")
    DEMO_PACKAGES+=("python${py_minor}-venv")
fi

do_apt=1
do_pip=1
for arg in "$@"; do
    case "$arg" in
        --no-apt) do_apt=0 ;;
        --no-pip) do_pip=0 ;;
        -h | --help)
            sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "setup.sh: unknown option: $arg (try --help)" >&2
            exit 2
            ;;
    esac
done

log() { printf '[setup] %s\n' "$*"; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        SUDO=(false)
    fi
fi

mkdir -p "$CACHE_DIR"

# ---------------------------------------------------------------------------------------------- Debian
is_installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]
}

apt_get() {
    # Wait (up to 10 min) for another apt/dpkg process instead of failing on the lock.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@"
}

apt_update() {
    local stamp="$CACHE_DIR/apt-update.stamp" force="${1:-}"
    if [ -z "$force" ] && [ -f "$stamp" ] \
        && [ $(($(date +%s) - $(stat -c %Y "$stamp"))) -lt "$APT_UPDATE_MAX_AGE_S" ]; then
        log "apt-get update: done less than 6 h ago, skipped"
        return 0
    fi
    log "apt-get update"
    apt_get update -q
    touch "$stamp"
}

install_debian() {
    local missing=() pkg
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        log "Debian packages: all ${#} present"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup.sh: apt-get not found; install these packages by hand: ${missing[*]}" >&2
        exit 1
    fi
    apt_update
    log "apt-get install: ${missing[*]}"
    if ! apt_get install -y -q --no-install-recommends "${missing[@]}"; then
        # Stale package lists (404 on a superseded .deb): refresh once and retry.
        log "apt-get install failed; refreshing package lists and retrying once"
        apt_update force
        apt_get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

if [ "$do_apt" -eq 1 ]; then
    install_debian "${FULL_PACKAGES[@]}"
else
    install_debian "${DEMO_PACKAGES[@]}"
fi

# ------------------------------------------------------------------------------------------------- pip
if [ "$do_pip" -eq 1 ]; then
    if [ ! -x "$VENV/bin/python" ]; then
        log "virtual environment: $PYTHON -m venv $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    VPY="$VENV/bin/python"
    # The editable install records the repo path, so a fresh clone elsewhere must reinstall.
    pip_key="$(
        {
            echo "$REPO_ROOT"
            "$VPY" -c 'import sys; print(sys.version, sys.prefix)'
            cat "$REPO_ROOT/pyproject.toml" "$REPO_ROOT/requirements.lock"
        } | sha256sum | cut -c1-16
    )"
    pip_stamp="$VENV/.pearl-install.$pip_key"
    if [ -f "$pip_stamp" ]; then
        log "pip install from requirements.lock: unchanged since last run, skipped"
    else
        export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
        log "pip install --require-hashes -r requirements.lock (into $VENV)"
        "$VPY" -m pip install -q --progress-bar off --require-hashes -r "$REPO_ROOT/requirements.lock"
        log "pip install --no-deps -e . (the project itself)"
        (cd "$REPO_ROOT" && "$VPY" -m pip install -q --progress-bar off --no-deps -e .)
        rm -f "$VENV"/.pearl-install.*
        touch "$pip_stamp"
    fi
    # An editable install leaves our own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set Python
    # would compile them again at every `archive` start (~0.1 s); byte-compile them as `pip install .` does.
    (cd "$REPO_ROOT" && "$VPY" -m compileall -q archive ingest preservation search access_portal >/dev/null)
    log "virtual environment ready: $VENV (run $VENV/bin/archive, or: source $VENV/bin/activate)"
fi

log "done"
