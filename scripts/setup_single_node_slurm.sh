#!/usr/bin/env bash
# A one-machine SLURM cluster for profiles/slurm-ci: this machine is both controller and
# only compute node. Idempotent: installs slurm-wlm and munge from Debian's packages when
# missing, writes a minimal slurm.conf with this machine's real CPUs and memory (no
# accounting: profiles/slurm-ci checks job status with squeue), starts munged, slurmctld
# and slurmd when they are not running, and waits until sinfo shows the node idle.
# Needs root. Prints each thing it does; exits non-zero with one line saying why it cannot.
#
#   sudo scripts/setup_single_node_slurm.sh        # then: sinfo
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# written by sandflow scripts/setup_single_node_slurm.sh"
WAIT_SECONDS=${SLURM_SETUP_WAIT_SECONDS:-60}

say() { echo "setup_single_node_slurm: $*"; }
fail() { echo "setup_single_node_slurm: error: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (installs packages and starts daemons); run it with sudo"

install_packages() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
        && command -v sinfo >/dev/null; then
        say "slurm-wlm and munge already installed"
        return
    fi
    command -v apt-get >/dev/null || fail "slurm-wlm is not installed and there is no apt-get to install it"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fail "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
        || fail "apt-get install slurm-wlm munge failed"
}

start_munge() {
    if [ ! -s /etc/munge/munge.key ]; then
        say "creating /etc/munge/munge.key"
        mungekey --create --keyfile /etc/munge/munge.key
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        say "munged already running"
        return
    fi
    say "starting munged"
    runuser -u munge -- munged --force || fail "munged did not start (see /var/log/munge/munged.log)"
    munge -n | unmunge >/dev/null || fail "munged started but credentials do not round-trip"
}

write_conf() {
    if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF"; then
        say "keeping $CONF (not written by this script)"
        return
    fi
    local host node
    host=$(hostname -s)
    # slurmd -C prints this machine's real node line: CPUs, sockets, cores, threads, RealMemory.
    node=$(slurmd -C | head -n 1)
    case "$node" in NodeName=*) ;; *) fail "slurmd -C printed no node line: $node" ;; esac
    mkdir -p /etc/slurm
    cat >"$CONF.new" <<EOF
$MARK
ClusterName=sandflow
SlurmctldHost=$host(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
        rm "$CONF.new"
        say "$CONF up to date"
        return
    fi
    mv "$CONF.new" "$CONF"
    say "wrote $CONF ($node)"
    # Running daemons read the file only at start.
    RESTART=1
}

running() { pgrep -x "$1" >/dev/null; }

stop_daemon() {
    local pid
    pid=$(pgrep -x "$1") || return 0
    say "stopping $1 (pid $pid) to load the new configuration"
    kill "$pid"
    for _ in $(seq 50); do running "$1" || return 0; sleep 0.2; done
    fail "$1 (pid $pid) did not stop"
}

start_slurm() {
    install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm
    install -d -m 0755 /var/spool/slurmd
    if [ "${RESTART:-0}" = 1 ]; then
        stop_daemon slurmd
        stop_daemon slurmctld
    fi
    if running slurmctld; then say "slurmctld already running"; else
        say "starting slurmctld"
        slurmctld || fail "slurmctld did not start (see /var/log/slurm/slurmctld.log)"
    fi
    if running slurmd; then say "slurmd already running"; else
        say "starting slurmd"
        slurmd || fail "slurmd did not start (see /var/log/slurm/slurmd.log)"
    fi
}

wait_for_idle_node() {
    local host state
    host=$(hostname -s)
    for _ in $(seq "$WAIT_SECONDS"); do
        state=$(sinfo -h -N -n "$host" -o %T 2>/dev/null | head -n 1 || true)
        case "$state" in
            idle|mixed|allocated) say "node $host is $state"; return ;;
            drained|draining|down|drain*|down*)
                # ReturnToService=2 brings a node back by itself after a restart; this covers older state files.
                say "node $host is $state: resuming it"
                scontrol update NodeName="$host" State=RESUME || true ;;
        esac
        sleep 1
    done
    fail "node $host is not idle after ${WAIT_SECONDS}s (state: ${state:-unknown}); see /var/log/slurm/"
}

install_packages
start_munge
write_conf
start_slurm
wait_for_idle_node
sinfo
