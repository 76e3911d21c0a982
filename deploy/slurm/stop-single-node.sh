#!/usr/bin/env bash
# Stop the single-node Slurm started by start-single-node.sh: slurmd, slurmctld, then munged
# (unless --keep-munge). Each daemon is stopped through its own PID file, never by name.
# Idempotent: daemons that are not running are skipped.
set -euo pipefail

keep_munge=0
[ "${1:-}" = "--keep-munge" ] && keep_munge=1

stop() {  # stop NAME PIDFILE
    local name="$1" pidfile="$2" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        echo "stop-single-node.sh: stopping $name ($pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 60); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.5
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-single-node.sh: $name did not stop in 30 s; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

[ "$(id -u)" -eq 0 ] || { echo "stop-single-node.sh: must run as root" >&2; exit 1; }
stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
if [ "$keep_munge" -eq 0 ]; then
    stop munged /run/munge/munged.pid
fi
