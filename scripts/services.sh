#!/usr/bin/env bash
# Start/stop the real services the tests use, all on 127.0.0.1, on non-default ports, with their state in
# one run dir (default /tmp/pearl-archive-services). Production uses docker-compose.yml instead.
#
#   bash scripts/services.sh start [--fresh] [postgres] [redis] [elasticsearch] [seaweedfs]   (default: all)
#   bash scripts/services.sh stop|status [SERVICE...]
#   bash scripts/services.sh env          # `export ARCHIVE_TEST_*_URL=...` for the services running
#   bash scripts/services.sh fetch        # download + unpack Elasticsearch only (no start)
#   bash scripts/services.sh clean        # stop all and delete the run dir
#
#   --fresh  throw away the data of the selected services before starting (empty database, index, cache)
#
# PostgreSQL: Debian's /usr/lib/postgresql/<newest>/bin, run as user `postgres`, trust auth, database
#   archive_test owned by role archive (password archive).                        port $ARCHIVE_PG_PORT (55432)
# Redis: Debian's redis-server, no persistence.                                     port $ARCHIVE_REDIS_PORT (56379)
# Elasticsearch: the integ-test-zip distribution from Maven Central (version $ARCHIVE_ES_VERSION), fetched
#   once into the cache dir, run as system user archive-es (ES refuses root) with a 512 MB heap on the JDK
#   $ES_JAVA_HOME (default: the newest JDK >= 17 under /usr/lib/jvm).             port $ARCHIVE_ES_PORT (59200)
#   NB: integ-test-zip holds only the core + x-pack-core/security modules (no analysis-common, painless,
#   ingest...): tests can use only what core Elasticsearch offers.
# SeaweedFS: an S3-compatible object store for the replica tests (Apache-2.0): `weed server -s3` (master,
#   volume, filer and S3 gateway in one process), built once from its Go module (go mod download, copied to a
#   writable folder, go build ./weed) into $ARCHIVE_SEAWEEDFS_CACHE; one S3 identity (access key
#   archive-test). Its other ports: the six below the S3 port and the one above.   S3 port $ARCHIVE_SEAWEEDFS_PORT (53336)
set -euo pipefail

RUN_DIR="${ARCHIVE_SERVICES_DIR:-/tmp/pearl-archive-services}"
CACHE_DIR="${ARCHIVE_CACHE:-$HOME/.cache/pearl-archive}"
PG_PORT="${ARCHIVE_PG_PORT:-55432}"
REDIS_PORT="${ARCHIVE_REDIS_PORT:-56379}"
ES_PORT="${ARCHIVE_ES_PORT:-59200}"
# Newest integ-test-zip on Maven Central (no 9.x is published there): pairs with the `elasticsearch`
# Python client 8.x (a 9.x client sends `compatible-with=9` headers that an 8.x server rejects).
ES_VERSION="${ARCHIVE_ES_VERSION:-8.19.21}"
ES_USER="${ARCHIVE_ES_USER:-archive-es}"
ES_HEAP="${ARCHIVE_ES_HEAP:-512m}"
SEAWEED_MODULE="${ARCHIVE_SEAWEEDFS_MODULE:-github.com/seaweedfs/seaweedfs}"
SEAWEED_VERSION="${ARCHIVE_SEAWEEDFS_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
SEAWEED_CACHE="${ARCHIVE_SEAWEEDFS_CACHE:-$HOME/.cache/pearl-tools/seaweedfs/$SEAWEED_VERSION}"
S3_PORT="${ARCHIVE_SEAWEEDFS_PORT:-53336}"
S3_ACCESS_KEY=archive-test
S3_SECRET_KEY=archive-test-secret
PG_DB=archive_test
PG_ROLE=archive
PG_PASSWORD=archive
HOST=127.0.0.1

PG_DIR="$RUN_DIR/postgres"
PG_DATA="$PG_DIR/data"
PG_SOCK="$PG_DIR/socket"
REDIS_DIR="$RUN_DIR/redis"
ES_RUN="$RUN_DIR/elasticsearch"
ES_DIST="$CACHE_DIR/elasticsearch-$ES_VERSION"
SEAWEED_RUN="$RUN_DIR/seaweedfs"
SEAWEED_BIN="$SEAWEED_CACHE/weed"
ALL_SERVICES=(postgres redis elasticsearch seaweedfs)

log() { printf '[services] %s\n' "$*"; }
die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1

# Run a command as another user when root (services refuse root or must own their files); else as self.
as_user() {
    local user="$1"
    shift
    if [ "$IS_ROOT" -eq 1 ]; then
        (cd / && runuser -u "$user" -- "$@")
    else
        "$@"
    fi
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

not() { ! "$@"; }

# wait_until SECONDS PIDFILE COMMAND...: run COMMAND every half second until it succeeds (status 0); status 1
# once SECONDS have passed or, when PIDFILE is named (not ""), once the process it names has died.
wait_until() {
    local limit="$1" pidfile="$2" deadline
    shift 2
    deadline=$(($(date +%s) + limit))
    until "$@"; do
        if [ -n "$pidfile" ] && ! pid_alive "$pidfile"; then return 1; fi
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.5
    done
}

# stop_pid NAME PIDFILE: SIGTERM to the process PIDFILE names, SIGKILL if it is alive 30 s later; the file
# removed.
stop_pid() {
    local name="$1" pidfile="$2" pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        log "$name: stopping (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until 30 "" not kill -0 "$pid" 2>/dev/null; then
            log "$name: still alive after 30 s, killing"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 1
        fi
    fi
    rm -f "$pidfile"
}

# ------------------------------------------------------------------------------------------- PostgreSQL
pg_bindir() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
    [ -n "$dir" ] && [ -x "$dir/pg_ctl" ] \
        || die "PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/setup.sh)"
    echo "$dir"
}

PG_USER=postgres
[ "$IS_ROOT" -eq 1 ] || PG_USER="$(id -un)"

pg_running() {
    [ -f "$PG_DATA/postmaster.pid" ] && "$(pg_bindir)/pg_isready" -q -h "$HOST" -p "$PG_PORT" 2>/dev/null
}

pg_start() {
    local bin
    bin="$(pg_bindir)"
    if pg_running; then
        log "postgres: already running on $HOST:$PG_PORT"
        return 0
    fi
    port_open "$PG_PORT" && die "postgres: port $PG_PORT is taken by another process"
    mkdir -p "$PG_DIR"
    if [ ! -f "$PG_DATA/PG_VERSION" ]; then
        log "postgres: initdb ($bin)"
        rm -rf "$PG_DATA"
        mkdir -p "$PG_DATA" "$PG_SOCK"
        [ "$IS_ROOT" -eq 1 ] && chown -R "$PG_USER:" "$PG_DIR"
        chmod 700 "$PG_DATA"
        as_user "$PG_USER" "$bin/initdb" -D "$PG_DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
            >"$PG_DIR/initdb.log" 2>&1 || {
            cat "$PG_DIR/initdb.log" >&2
            die "postgres: initdb failed"
        }
        cat >>"$PG_DATA/postgresql.conf" <<EOF

# --- scripts/services.sh: test server, loopback only, speed over durability
listen_addresses = '$HOST'
port = $PG_PORT
unix_socket_directories = '$PG_SOCK'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
        # only loopback TCP and the private socket dir, trust (test data only)
        cat >"$PG_DATA/pg_hba.conf" <<EOF
local all all trust
host all all 127.0.0.1/32 trust
EOF
    fi
    mkdir -p "$PG_SOCK"
    [ "$IS_ROOT" -eq 1 ] && chown "$PG_USER:" "$PG_DIR" "$PG_SOCK"
    log "postgres: starting on $HOST:$PG_PORT"
    as_user "$PG_USER" "$bin/pg_ctl" -D "$PG_DATA" -l "$PG_DIR/postgres.log" -w -t 60 start >/dev/null || {
        tail -n 30 "$PG_DIR/postgres.log" >&2 || true
        die "postgres: failed to start"
    }
    wait_until 30 "" "$bin/pg_isready" -q -h "$HOST" -p "$PG_PORT" || die "postgres: not ready after 30 s"
    local psql=("$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$HOST" -p "$PG_PORT" -U postgres -d postgres)
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$PG_ROLE'")" != 1 ]; then
        "${psql[@]}" -c "CREATE ROLE $PG_ROLE LOGIN CREATEDB PASSWORD '$PG_PASSWORD'"
    fi
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$PG_DB'")" != 1 ]; then
        "${psql[@]}" -c "CREATE DATABASE $PG_DB OWNER $PG_ROLE ENCODING 'UTF8' TEMPLATE template0"
    fi
    log "postgres: ready (database $PG_DB, role $PG_ROLE)"
}

pg_stop() {
    if [ -f "$PG_DATA/postmaster.pid" ]; then
        log "postgres: stopping"
        as_user "$PG_USER" "$(pg_bindir)/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop >/dev/null \
            || log "postgres: pg_ctl stop failed (see $PG_DIR/postgres.log)"
    fi
}

pg_status() {
    if pg_running; then
        echo "postgres       running  $HOST:$PG_PORT  pid $(head -n1 "$PG_DATA/postmaster.pid")"
    else
        echo "postgres       stopped"
        return 1
    fi
}

pg_env() {
    echo "export ARCHIVE_TEST_POSTGRES_URL=postgresql+psycopg://$PG_ROLE:$PG_PASSWORD@$HOST:$PG_PORT/$PG_DB"
}

# ------------------------------------------------------------------------------------------------ Redis
redis_pong() { redis-cli -h "$HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

redis_running() { pid_alive "$REDIS_DIR/redis.pid" && redis_pong; }

redis_start() {
    command -v redis-server >/dev/null || die "redis-server not found (run scripts/setup.sh)"
    if redis_running; then
        log "redis: already running on $HOST:$REDIS_PORT"
        return 0
    fi
    port_open "$REDIS_PORT" && die "redis: port $REDIS_PORT is taken by another process"
    mkdir -p "$REDIS_DIR"
    log "redis: starting on $HOST:$REDIS_PORT"
    redis-server --bind "$HOST" --port "$REDIS_PORT" --daemonize yes --dir "$REDIS_DIR" \
        --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        --save '' --appendonly no --protected-mode yes
    wait_until 15 "" redis_pong || {
        tail -n 20 "$REDIS_DIR/redis.log" >&2 || true
        die "redis: no PONG after 15 s"
    }
    log "redis: ready"
}

redis_stop() {
    if port_open "$REDIS_PORT" || pid_alive "$REDIS_DIR/redis.pid"; then
        log "redis: stopping"
        redis-cli -h "$HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
        wait_until 10 "" not pid_alive "$REDIS_DIR/redis.pid" || true
    fi
    stop_pid redis "$REDIS_DIR/redis.pid" # alive 10 s after its own shutdown: TERM, then KILL
}

redis_status() {
    if redis_running; then
        echo "redis          running  $HOST:$REDIS_PORT  pid $(cat "$REDIS_DIR/redis.pid")"
    else
        echo "redis          stopped"
        return 1
    fi
}

redis_env() { echo "export ARCHIVE_TEST_REDIS_URL=redis://$HOST:$REDIS_PORT/0"; }

# ---------------------------------------------------------------------------------------- Elasticsearch
java_major() {
    "$1/bin/java" -XshowSettings:properties -version 2>&1 \
        | sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p' | head -n1
}

# ES 8.19 runs on JDK >= 17. Prefer $ES_JAVA_HOME, then the newest JDK under /usr/lib/jvm, then JAVA_HOME.
es_java_home() {
    if [ -n "${ES_JAVA_HOME:-}" ]; then
        echo "$ES_JAVA_HOME"
        return 0
    fi
    local best="" best_major=0 dir major
    for dir in /usr/lib/jvm/* ${JAVA_HOME:-}; do
        [ -x "$dir/bin/java" ] && [ ! -L "$dir" ] || continue
        major="$(java_major "$dir")"
        [ -n "$major" ] && [ "$major" -ge 17 ] && [ "$major" -gt "$best_major" ] || continue
        best="$dir"
        best_major="$major"
    done
    [ -n "$best" ] || die "elasticsearch: no JDK >= 17 found (run scripts/setup.sh or set ES_JAVA_HOME)"
    echo "$best"
}

es_fetch() {
    [ -x "$ES_DIST/bin/elasticsearch" ] && return 0
    local m2="${ARCHIVE_M2_REPO:-$CACHE_DIR/m2}" zip t0
    zip="$m2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip"
    if [ ! -f "$zip" ]; then
        command -v mvn >/dev/null || die "mvn not found (run scripts/setup.sh)"
        log "elasticsearch: fetching integ-test-zip $ES_VERSION from Maven Central (~110 MB, once)"
        t0=$(date +%s)
        mvn -B -q -Dmaven.repo.local="$m2" \
            org.apache.maven.plugins:maven-dependency-plugin:3.8.1:get \
            -Dartifact="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip" \
            -Dtransitive=false || die "elasticsearch: Maven could not fetch the integ-test-zip $ES_VERSION"
        log "elasticsearch: fetched in $(($(date +%s) - t0)) s"
    fi
    log "elasticsearch: unpacking into $ES_DIST"
    local tmp="$CACHE_DIR/.es-unpack.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    unzip -q "$zip" -d "$tmp"
    rm -rf "$ES_DIST"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_DIST"
    rm -rf "$tmp"
}

es_pid() { cat "$ES_RUN/elasticsearch.pid" 2>/dev/null || true; }

es_healthy() {
    curl -fsS -m 5 "http://$HOST:$ES_PORT/_cluster/health?wait_for_status=yellow&timeout=2s" 2>/dev/null \
        | grep -Eq '"status":"(green|yellow)"'
}

es_running() {
    pid_alive "$ES_RUN/elasticsearch.pid" \
        && curl -fsS -m 5 "http://$HOST:$ES_PORT/_cluster/health" >/dev/null 2>&1
}

es_start() {
    if es_running; then
        log "elasticsearch: already running on $HOST:$ES_PORT"
        return 0
    fi
    port_open "$ES_PORT" && die "elasticsearch: port $ES_PORT is taken by another process"
    command -v curl >/dev/null || die "curl not found (run scripts/setup.sh)"
    es_fetch
    local java_home home="$ES_DIST"
    java_home="$(es_java_home)"
    mkdir -p "$ES_RUN/data" "$ES_RUN/logs" "$ES_RUN/tmp"
    if [ "$IS_ROOT" -eq 1 ]; then
        id "$ES_USER" >/dev/null 2>&1 \
            || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ES_USER"
        # The cache dir is usually under /root (mode 700): give the ES user its own copy of the distribution.
        if ! runuser -u "$ES_USER" -- test -r "$ES_DIST/lib/elasticsearch-$ES_VERSION.jar" 2>/dev/null; then
            home="$RUN_DIR/elasticsearch-$ES_VERSION"
            if [ ! -x "$home/bin/elasticsearch" ]; then
                log "elasticsearch: copying the distribution to $home (readable by $ES_USER)"
                rm -rf "$home"
                cp -a "$ES_DIST" "$home.tmp"
                mv "$home.tmp" "$home"
            fi
        fi
    fi
    # A private config dir: ES writes its keystore there; the distribution itself stays read-only.
    rm -rf "$ES_RUN/config"
    cp -a "$home/config" "$ES_RUN/config"
    cat >"$ES_RUN/config/elasticsearch.yml" <<EOF
# written by scripts/services.sh: single-node test server on loopback, no security
cluster.name: pearl-archive-test
node.name: test-node
discovery.type: single-node
network.host: $HOST
http.port: $ES_PORT
transport.port: $((ES_PORT + 100))
path.data: $ES_RUN/data
path.logs: $ES_RUN/logs
xpack.security.enabled: false
cluster.routing.allocation.disk.threshold_enabled: false
action.destructive_requires_name: false
EOF
    if [ "$IS_ROOT" -eq 1 ]; then
        chown -R "$ES_USER:" "$ES_RUN"
        [ "$home" = "$ES_DIST" ] || chown -R "$ES_USER:" "$home"
    fi
    log "elasticsearch: starting $ES_VERSION on $HOST:$ES_PORT (java: $java_home)"
    rm -f "$ES_RUN/elasticsearch.pid"
    as_user "$ES_USER" env ES_JAVA_HOME="$java_home" ES_PATH_CONF="$ES_RUN/config" ES_TMPDIR="$ES_RUN/tmp" \
        ES_JAVA_OPTS="-Xms$ES_HEAP -Xmx$ES_HEAP ${ARCHIVE_ES_JAVA_OPTS:-}" \
        "$home/bin/elasticsearch" -d -p "$ES_RUN/elasticsearch.pid" \
        >"$ES_RUN/startup.log" 2>&1 || {
        cat "$ES_RUN/startup.log" >&2
        tail -n 40 "$ES_RUN/logs/pearl-archive-test.log" >&2 2>/dev/null || true
        die "elasticsearch: failed to start"
    }
    local limit="${ARCHIVE_ES_START_TIMEOUT:-240}"
    wait_until "$limit" "$ES_RUN/elasticsearch.pid" es_healthy || {
        tail -n 40 "$ES_RUN/logs/pearl-archive-test.log" >&2 2>/dev/null || true
        die "elasticsearch: not healthy within $limit s (logs: $ES_RUN/logs)"
    }
    log "elasticsearch: ready"
}

es_stop() { stop_pid elasticsearch "$ES_RUN/elasticsearch.pid"; }

es_status() {
    if es_running; then
        echo "elasticsearch  running  $HOST:$ES_PORT  pid $(es_pid)  version $ES_VERSION"
    else
        echo "elasticsearch  stopped"
        return 1
    fi
}

es_env() { echo "export ARCHIVE_TEST_ELASTICSEARCH_URL=http://$HOST:$ES_PORT"; }

# ---------------------------------------------------------------------------------------------- SeaweedFS
seaweedfs_build() {
    [ -x "$SEAWEED_BIN" ] && return 0
    local go="${ARCHIVE_GO:-$(command -v go || echo /usr/local/go/bin/go)}"
    [ -x "$go" ] || die "seaweedfs: no Go toolchain (go >= the module's go.mod, 1.26.6; Debian's golang-go is too old)"
    log "seaweedfs: building weed from $SEAWEED_MODULE@$SEAWEED_VERSION (several minutes, once)"
    local dir
    dir="$("$go" mod download -json "$SEAWEED_MODULE@$SEAWEED_VERSION" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [ -n "$dir" ] && [ -d "$dir" ] || die "seaweedfs: go mod download $SEAWEED_MODULE@$SEAWEED_VERSION failed"
    mkdir -p "$SEAWEED_CACHE"
    if [ ! -f "$SEAWEED_CACHE/src/go.mod" ]; then
        rm -rf "$SEAWEED_CACHE/src.partial"
        cp -r "$dir" "$SEAWEED_CACHE/src.partial" # the module cache is read-only
        chmod -R u+w "$SEAWEED_CACHE/src.partial"
        mv "$SEAWEED_CACHE/src.partial" "$SEAWEED_CACHE/src"
    fi
    (cd "$SEAWEED_CACHE/src" && "$go" build -o "$SEAWEED_BIN.partial" ./weed) || die "seaweedfs: go build failed"
    mv "$SEAWEED_BIN.partial" "$SEAWEED_BIN"
}

seaweedfs_pid() { cat "$SEAWEED_RUN/weed.pid" 2>/dev/null || true; }

# the S3 gateway is up once it answers (403 without credentials)
seaweedfs_answers() {
    case "$(curl -s -o /dev/null -w '%{http_code}' "http://$HOST:$S3_PORT/" 2>/dev/null || true)" in
        2?? | 403) return 0 ;;
        *) return 1 ;;
    esac
}

seaweedfs_running() { pid_alive "$SEAWEED_RUN/weed.pid" && port_open "$S3_PORT"; }

seaweedfs_start() {
    if seaweedfs_running; then
        log "seaweedfs: already running on $HOST:$S3_PORT"
        return 0
    fi
    local p
    for p in $(seq $((S3_PORT - 6)) $((S3_PORT + 1))); do
        port_open "$p" && die "seaweedfs: port $p is taken by another process"
    done
    seaweedfs_build
    mkdir -p "$SEAWEED_RUN/data" "$SEAWEED_RUN/master"
    cat >"$SEAWEED_RUN/s3.json" <<EOF
{
  "identities": [
    {
      "name": "archive-test",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
EOF
    log "seaweedfs: starting (S3 on $HOST:$S3_PORT)"
    # setsid: the server outlives this script; its log and pid stay in the run dir. Every bucket is a
    # collection with volumes of its own: -volume.max=0 sizes the pool by the free disk (64 MB volumes,
    # not preallocated), so a test run that makes many buckets never runs out of writable volumes.
    setsid "$SEAWEED_BIN" server -ip="$HOST" -ip.bind="$HOST" -dir="$SEAWEED_RUN/data" \
        -master.dir="$SEAWEED_RUN/master" -master.port=$((S3_PORT - 6)) -master.port.grpc=$((S3_PORT - 5)) \
        -volume.port=$((S3_PORT - 4)) -volume.port.grpc=$((S3_PORT - 3)) \
        -filer.port=$((S3_PORT - 2)) -filer.port.grpc=$((S3_PORT - 1)) \
        -s3 -s3.port="$S3_PORT" -s3.port.grpc=$((S3_PORT + 1)) -s3.config="$SEAWEED_RUN/s3.json" \
        -master.volumeSizeLimitMB=64 -volume.max=0 \
        >"$SEAWEED_RUN/weed.log" 2>&1 </dev/null &
    echo $! >"$SEAWEED_RUN/weed.pid"
    wait_until 120 "$SEAWEED_RUN/weed.pid" seaweedfs_answers || {
        tail -n 30 "$SEAWEED_RUN/weed.log" >&2 || true
        die "seaweedfs: the S3 gateway did not answer within 120 s"
    }
    log "seaweedfs: ready"
}

seaweedfs_stop() { stop_pid seaweedfs "$SEAWEED_RUN/weed.pid"; }

seaweedfs_status() {
    if seaweedfs_running; then
        echo "seaweedfs      running  $HOST:$S3_PORT  pid $(seaweedfs_pid)  version $SEAWEED_VERSION"
    else
        echo "seaweedfs      stopped"
        return 1
    fi
}

seaweedfs_env() {
    echo "export ARCHIVE_TEST_S3_URL=http://$HOST:$S3_PORT"
    echo "export ARCHIVE_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
    echo "export ARCHIVE_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
    # SeaweedFS's own client (weed filer.copy) against the same server, for benchmarks/recovery.py
    echo "export ARCHIVE_TEST_SEAWEEDFS_FILER=$HOST:$((S3_PORT - 2)).$((S3_PORT - 1))" # host:port.grpcPort
    echo "export ARCHIVE_TEST_SEAWEEDFS_BIN=$SEAWEED_BIN"
}

seaweedfs_wipe() { rm -rf "$SEAWEED_RUN"; }

es_wipe() { rm -rf "$ES_RUN/data" "$ES_RUN/logs" "$ES_RUN/tmp"; }
pg_wipe() { rm -rf "$PG_DIR"; }
redis_wipe() { rm -rf "$REDIS_DIR"; }

# ------------------------------------------------------------------------------------------------- main
fn_prefix() {
    case "$1" in
        postgres | postgresql | pg) echo pg ;;
        redis) echo redis ;;
        elasticsearch | es) echo es ;;
        seaweedfs | s3) echo seaweedfs ;;
        *) die "unknown service: $1 (postgres, redis, elasticsearch, seaweedfs)" ;;
    esac
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
fresh=0
services=()
for arg in "$@"; do
    case "$arg" in
        --fresh) fresh=1 ;;
        *) services+=("$arg") ;;
    esac
done
[ "${#services[@]}" -gt 0 ] || services=("${ALL_SERVICES[@]}")

case "$cmd" in
    start)
        mkdir -p "$RUN_DIR"
        chmod 755 "$RUN_DIR"
        for s in "${services[@]}"; do
            p="$(fn_prefix "$s")"
            if [ "$fresh" -eq 1 ]; then
                "${p}_stop"
                "${p}_wipe"
            fi
            "${p}_start"
        done
        ;;
    stop)
        # reverse order of start
        for ((i = ${#services[@]} - 1; i >= 0; i--)); do "$(fn_prefix "${services[$i]}")_stop"; done
        ;;
    status)
        rc=0
        for s in "${services[@]}"; do "$(fn_prefix "$s")_status" || rc=3; done
        exit "$rc"
        ;;
    env)
        for s in "${services[@]}"; do
            p="$(fn_prefix "$s")"
            if "${p}_running"; then "${p}_env"; fi
        done
        ;;
    fetch) es_fetch ;;
    clean)
        for s in seaweedfs elasticsearch redis postgres; do "$(fn_prefix "$s")_stop"; done
        log "removing $RUN_DIR"
        rm -rf "$RUN_DIR"
        ;;
    *)
        sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || [ "$cmd" = help ] || exit 2
        ;;
esac
