#!/usr/bin/env bash
# Install everything the project needs on a Debian 12 (bookworm) machine: Debian packages for the real
# services and the preservation tools, then the project itself (editable) with its test extras.
#
#   bash scripts/setup.sh            # Debian packages + pip install -e '.[test]'
#   bash scripts/setup.sh --no-apt   # demo path: only libmagic1 (needed by python-magic) + pip
#   bash scripts/setup.sh --no-pip   # Debian packages only
#
# Idempotent and quick on a second run: Debian packages already installed are skipped (dpkg check),
# `apt-get update` runs at most once every 6 hours (stamp file in the cache dir), and the pip step is
# skipped while pyproject.toml, the repo path and the interpreter are unchanged.
# Downloads are cached OUTSIDE the repo: ${ARCHIVE_CACHE:-$HOME/.cache/pearl-archive} (pip uses its own
# ~/.cache/pip, apt /var/cache/apt).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${ARCHIVE_CACHE:-$HOME/.cache/pearl-archive}"
PYTHON="${PYTHON:-python3}"
APT_UPDATE_MAX_AGE_S=$((6 * 3600))

# Everything the full test suite and the services need. The demo path needs only libmagic1.
FULL_PACKAGES=(
    postgresql redis-server
    ghostscript qpdf poppler-utils libmagic1 imagemagick
    libreoffice-core libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui
    ffmpeg chromium fonts-noto-cjk fonts-arphic-uming fonts-arphic-ukai
    # for scripts/services.sh: Elasticsearch is fetched with Maven and runs on a JDK >= 17
    openjdk-17-jdk-headless maven unzip curl
)
DEMO_PACKAGES=(libmagic1)

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
    # The editable install records the repo path, so a fresh clone elsewhere must reinstall.
    pip_key="$(
        {
            echo "$REPO_ROOT"
            command -v "$PYTHON"
            "$PYTHON" -c 'import sys; print(sys.version)'
            cat "$REPO_ROOT/pyproject.toml"
        } | sha256sum | cut -c1-16
    )"
    pip_stamp="$CACHE_DIR/pip-install.$pip_key.stamp"
    # ...and the installed `archive` package must be this checkout's (pip show is too slow for this)
    installed_from="$(cd / && "$PYTHON" -c 'import importlib.util as u, os; print(os.path.dirname(os.path.dirname(os.path.realpath(u.find_spec("archive").origin))))' 2>/dev/null || true)"
    if [ -f "$pip_stamp" ] && [ "$installed_from" = "$(realpath "$REPO_ROOT")" ]; then
        log "pip install -e '.[test]': unchanged since last run, skipped"
    else
        log "$PYTHON -m pip install -e '.[test]'"
        (cd "$REPO_ROOT" && PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q --progress-bar off -e '.[test]')
        rm -f "$CACHE_DIR"/pip-install.*.stamp
        touch "$pip_stamp"
    fi
    # An editable install leaves our own modules uncompiled, and with PYTHONDONTWRITEBYTECODE set Python
    # would compile them again at every `archive` start (~0.1 s); byte-compile them as `pip install .` does.
    (cd "$REPO_ROOT" && "$PYTHON" -m compileall -q archive ingest preservation search access_portal >/dev/null)
fi

log "done"
