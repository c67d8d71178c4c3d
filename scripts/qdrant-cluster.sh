#!/usr/bin/env bash
# A Qdrant cluster of N nodes on loopback from the server binary in ../shared/bin (or
# $QDRANT_BIN), for benchmarks and trials of the cluster profile (the tests start their own
# from Rust: cabildo_vectors::fixtures).
#
#   scripts/qdrant-cluster.sh start DIR [N]   starts N nodes (default 3), each in DIR/nodeI
#                                             with free ports; the first founds the cluster,
#                                             the others join it. Prints the first node's
#                                             gRPC address, for [vectors] qdrant_url.
#   scripts/qdrant-cluster.sh stop DIR        stops every node; DIR can then be removed.
set -euo pipefail
command=${1:?usage: scripts/qdrant-cluster.sh start DIR [N] | stop DIR}
dir=${2:?usage: scripts/qdrant-cluster.sh start DIR [N] | stop DIR}
n=${3:-3}
bin=${QDRANT_BIN:-$(dirname "$0")/../../shared/bin/qdrant}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "$command" in
start)
    [ -x "$bin" ] || { echo "no Qdrant binary at $bin (set QDRANT_BIN)" >&2; exit 1; }
    bin=$(realpath "$bin")
    mkdir -p "$dir"
    dir=$(realpath "$dir")
    founder_p2p=
    for i in $(seq 1 "$n"); do
        node="$dir/node$i"
        mkdir -p "$node"
        http=$(free_port) grpc=$(free_port) p2p=$(free_port)
        echo "$http $grpc $p2p" > "$node/ports"
        bootstrap=()
        [ -n "$founder_p2p" ] && bootstrap=(--bootstrap "http://127.0.0.1:$founder_p2p")
        (cd "$node" && QDRANT__SERVICE__HOST=127.0.0.1 QDRANT__SERVICE__HTTP_PORT=$http \
            QDRANT__SERVICE__GRPC_PORT=$grpc QDRANT__CLUSTER__ENABLED=true \
            QDRANT__CLUSTER__P2P__PORT=$p2p QDRANT__STORAGE__STORAGE_PATH="$node/storage" \
            QDRANT__STORAGE__SNAPSHOTS_PATH="$node/snapshots" QDRANT__TELEMETRY_DISABLED=true \
            exec setsid "$bin" --uri "http://127.0.0.1:$p2p" "${bootstrap[@]}" > "$node/log" 2>&1) &
        echo $! > "$node/pid"
        for _ in $(seq 1 300); do
            curl -sf "http://127.0.0.1:$http/readyz" > /dev/null && break
            sleep 0.2
        done
        curl -sf "http://127.0.0.1:$http/readyz" > /dev/null || { cat "$node/log" >&2; exit 1; }
        [ -z "$founder_p2p" ] && founder_p2p=$p2p
    done
    read -r http grpc _ < "$dir/node1/ports"
    for _ in $(seq 1 300); do
        peers=$(curl -sf "http://127.0.0.1:$http/cluster" |
            python3 -c 'import json, sys; print(len(json.load(sys.stdin)["result"]["peers"]))' || echo 0)
        [ "$peers" = "$n" ] && break
        sleep 0.2
    done
    [ "$peers" = "$n" ] || { echo "only $peers of $n peers joined" >&2; exit 1; }
    echo "http://127.0.0.1:$grpc"
    ;;
stop)
    for pidfile in "$dir"/node*/pid; do
        [ -f "$pidfile" ] || continue
        pid=$(cat "$pidfile")
        kill "$pid" 2> /dev/null || true
        while kill -0 "$pid" 2> /dev/null; do sleep 0.2; done
        rm -f "$pidfile"
    done
    ;;
*)
    echo "usage: scripts/qdrant-cluster.sh start DIR [N] | stop DIR" >&2
    exit 1
    ;;
esac
