#!/usr/bin/env bash
# A private PostgreSQL server for the tests: installed with apt when missing, started on a
# private port with its data in a throwaway directory, stopped afterwards.
#
#   scripts/postgres.sh start   # install if needed, initdb, start; prints nothing on success
#   scripts/postgres.sh url     # the connection URL the tests read (COORDINATION_TEST_POSTGRES)
#   scripts/postgres.sh stop    # stop the server and delete its data
#   scripts/postgres.sh down    # stop the server, keeping its data (tests of a server outage)
#   scripts/postgres.sh up      # start a server stopped by `down` again, on the same data
#
# PGTEST_PORT (default 54329) picks the port. The server listens on loopback only, trusts
# local connections, and never touches a system cluster.
set -euo pipefail

PORT=${PGTEST_PORT:-54329}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# One data directory per checkout and port, outside the checkout: the server runs as the
# `postgres` user when we are root, and a checkout under a private temporary directory is
# not readable by it.
KEY=$(printf '%s:%s' "$ROOT" "$PORT" | cksum | cut -d' ' -f1)
DATA=${PGTEST_DIR:-/tmp/coordination-pg-$KEY}
LOG=$DATA.log

bindir() {
    local dir
    for dir in /usr/lib/postgresql/*/bin; do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"
        return 0
    fi
    return 1
}

ensure_installed() {
    if bindir >/dev/null; then
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "PostgreSQL is not installed and this is not root: run 'sudo apt-get install postgresql'" >&2
        exit 1
    fi
    echo "installing PostgreSQL with apt ..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends postgresql >/dev/null
    bindir >/dev/null || { echo "PostgreSQL installed, but no initdb was found" >&2; exit 1; }
}

as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

serve() {
    as_server_user "$1/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
        -o "-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$LOG" >&2; exit 1; }
}

start() {
    ensure_installed
    local bin
    bin=$(bindir)
    stop quietly
    if [ "$(id -u)" -eq 0 ]; then
        command install -d -o postgres -g postgres -m 0700 "$DATA"
        touch "$LOG" && chown postgres:postgres "$LOG"
    else
        mkdir -p -m 0700 "$DATA"
    fi
    as_server_user "$bin/initdb" -D "$DATA" -U postgres -A trust --no-sync -E UTF8 >/dev/null
    serve "$bin"
}

down() {
    local bin
    bin=$(bindir) || { echo "PostgreSQL is not installed" >&2; exit 1; }
    [ -f "$DATA/postmaster.pid" ] || { echo "no server runs in $DATA" >&2; exit 1; }
    as_server_user "$bin/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
}

up() {
    local bin
    bin=$(bindir) || { echo "PostgreSQL is not installed" >&2; exit 1; }
    [ -d "$DATA" ] || { echo "no server data in $DATA: use start" >&2; exit 1; }
    serve "$bin"
}

stop() {
    local bin
    if bin=$(bindir) && [ -f "$DATA/postmaster.pid" ]; then
        as_server_user "$bin/pg_ctl" -D "$DATA" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [ "${1:-}" != quietly ] || [ -d "$DATA" ]; then
        rm -rf "$DATA" "$LOG"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    down) down ;;
    up) up ;;
    url) echo "postgresql://postgres@127.0.0.1:$PORT/postgres" ;;
    *) echo "usage: $0 start|url|stop|down|up" >&2; exit 2 ;;
esac
