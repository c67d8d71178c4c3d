#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the tests of the registry's PostgreSQL
# backend and the cluster profile (Debian's `postgresql` package, installed here if missing).
#
#   scripts/postgres.sh start DIR   creates a database cluster in DIR (empty or absent), starts
#                                   it on a free port of 127.0.0.1 and prints its address,
#                                   postgres://cabildo@127.0.0.1:PORT/cabildo
#   scripts/postgres.sh stop DIR    stops it; DIR can then be removed.
#
# Authentication is `trust` on loopback only: the server lives as long as one test run.
set -euo pipefail
command=${1:?usage: scripts/postgres.sh start|stop DIR}
dir=${2:?usage: scripts/postgres.sh start|stop DIR}

bindir() {
    local d
    for d in $(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V -r); do
        [ -x "$d/initdb" ] && { echo "$d"; return; }
    done
    command -v initdb > /dev/null && dirname "$(command -v initdb)"
}

# The server refuses to run as root: run it as Debian's `postgres` user then.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

bin=$(bindir || true)
if [ -z "$bin" ]; then
    if [ "$(id -u)" -eq 0 ]; then apt=(apt-get); else apt=(sudo apt-get); fi
    export DEBIAN_FRONTEND=noninteractive
    if ! "${apt[@]}" install -y --no-install-recommends postgresql > /dev/null; then
        "${apt[@]}" update -qq
        "${apt[@]}" install -y --no-install-recommends postgresql > /dev/null
    fi
    bin=$(bindir)
fi

case "$command" in
start)
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        # The server user must reach DIR: a private temporary folder above it (mktemp -d)
        # gets traversal (not listing) for others.
        parent=$(dirname "$dir")
        runuser -u postgres -- test -x "$parent" || chmod o+x "$parent"
    fi
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_server_user "$bin/initdb" -D "$dir/data" -U cabildo --auth=trust -E UTF8 \
        --locale=C.UTF-8 > "$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    # Unix sockets in DIR, not /var/run/postgresql (which may not exist or be writable).
    if ! as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off" \
        start > /dev/null; then
        cat "$dir/server.log" >&2
        exit 1
    fi
    as_server_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U cabildo cabildo
    echo "started $("$bin/postgres" --version) in $dir" >&2
    echo "postgres://cabildo@127.0.0.1:$port/cabildo"
    ;;
stop)
    [ -d "$dir/data" ] && as_server_user "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null
    ;;
*)
    echo "usage: scripts/postgres.sh start|stop DIR" >&2
    exit 2
    ;;
esac
