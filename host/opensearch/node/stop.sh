#!/usr/bin/env bash
# Stops the node start.sh started in RUN_DIR (its whole process group) and
# removes RUN_DIR. Usage: stop.sh RUN_DIR
set -euo pipefail
run=${1:?usage: stop.sh RUN_DIR}
case $run in /tmp/rerank-opensearch-node.*) ;; *) echo "stop.sh: $run is not a start.sh run folder" >&2; exit 1 ;; esac
if [ -f "$run/pid" ]; then
	pid=$(cat "$run/pid")
	kill -TERM -- "-$pid" 2>/dev/null || true
	for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
	kill -KILL -- "-$pid" 2>/dev/null || true
fi
rm -rf "$run"
