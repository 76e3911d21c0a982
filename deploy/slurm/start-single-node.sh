#!/usr/bin/env bash
# Start a single-node Slurm (munged, slurmctld, slurmd) on this machine, to try daskmic's
# SLURM path. Run as root after install-debian.sh.
#
# - writes /etc/slurm/slurm.conf for this one node (its real CPUs and memory, as `slurmd -C`
#   reports them), reachable on loopback; it refuses to replace a slurm.conf it did not write;
# - process tracking without cgroups (proctrack/linuxproc, task/none), so it runs in containers;
# - idempotent: daemons already running with the same configuration are left alone; a changed
#   configuration restarts them;
# - waits until `sinfo` shows the node idle (at most $SLURM_START_TIMEOUT seconds, default 90).
#
# Stop it with deploy/slurm/stop-single-node.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
conf_dir=/etc/slurm
conf="$conf_dir/slurm.conf"
marker="# Written by daskmic deploy/slurm/start-single-node.sh"
timeout_s="${SLURM_START_TIMEOUT:-90}"
ctld_pid=/run/slurmctld.pid
slurmd_pid=/run/slurmd.pid
munge_pid=/run/munge/munged.pid

die() { echo "start-single-node.sh: $*" >&2; exit 1; }
say() { echo "start-single-node.sh: $*"; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" -eq 0 ] || die "must run as root (the daemons run as root on this test node)"
for cmd in munged slurmctld slurmd sinfo scontrol; do
    command -v "$cmd" >/dev/null || die "'$cmd' not found: run deploy/slurm/install-debian.sh first"
done

node="$(hostname -s)"
# "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=…"
hardware="$(slurmd -C | head -n 1)"
case "$hardware" in
    NodeName=*) ;;
    *) die "unexpected 'slurmd -C' output: $hardware" ;;
esac

new_conf="$(mktemp)"
trap 'rm -f "$new_conf"' EXIT
cat >"$new_conf" <<CONF
$marker
# One node, reachable on loopback; see deploy/slurm/README.md.
ClusterName=daskmic
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$ctld_pid
SlurmdPidFile=$slurmd_pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=60
KillWait=30
$hardware NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [ -f "$conf" ] && ! grep -qF "$marker" "$conf"; then
    die "$conf exists and was not written by this script; not replacing it"
fi
if ! cmp -s "$new_conf" "$conf" 2>/dev/null; then
    if alive "$ctld_pid" || alive "$slurmd_pid"; then
        say "configuration changed: restarting the Slurm daemons"
        bash "$here/stop-single-node.sh" --keep-munge
    fi
    install -m 0644 "$new_conf" "$conf"
fi

# munge: the key is made by the Debian package; make one if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
    say "creating /etc/munge/munge.key"
    install -d -o munge -g munge -m 0700 /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
if ! alive "$munge_pid"; then
    say "starting munged"
    runuser -u munge -- munged
fi
for _ in $(seq 1 20); do
    munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
    sleep 0.5
done
munge -n | unmunge >/dev/null || die "munge does not work (see /var/log/munge/munged.log)"

if ! alive "$ctld_pid"; then
    say "starting slurmctld"
    slurmctld
fi
if ! alive "$slurmd_pid"; then
    say "starting slurmd"
    slurmd
fi

deadline=$((SECONDS + timeout_s))
while true; do
    state="$(sinfo -h -n "$node" -o %t 2>/dev/null || true)"
    case "$state" in
        idle | mix | alloc) break ;;
        down* | drain* | drng* | fail*)
            scontrol update NodeName="$node" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    if [ "$SECONDS" -ge "$deadline" ]; then
        tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
        die "node $node not idle after ${timeout_s}s (state: '${state:-no answer}')"
    fi
    sleep 1
done
say "node $node is $state: $(sinfo -h -n "$node" -o '%c CPUs, %m MB')"
