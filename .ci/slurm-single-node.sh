#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine (Debian's slurm-wlm + munge, run as root), so that
# tests/test_slurm_real.py submits real job arrays through sbatch/squeue. Idempotent: when a Slurm node
# already answers it only prints `sinfo`; otherwise it installs the packages if missing (apt), writes a
# minimal slurm.conf (one partition "debug", this host's CPUs, no GPU gres, no accounting) and starts
# munged, slurmctld and slurmd. An existing slurm.conf that this script did not write is left alone.
# Exits non-zero when Slurm cannot be brought up (no root, no apt, no network); .ci/run carries on and
# the real-Slurm test skips with its reason.
#   usage: bash .ci/slurm-single-node.sh
set -eu
MARK="# written by eegbench .ci/slurm-single-node.sh"
CONF=/etc/slurm/slurm.conf

up() { sinfo -h -o %T 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; }

if command -v sinfo >/dev/null && up; then
  sinfo; exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "slurm-single-node: not root, cannot install or start Slurm" >&2; exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  command -v apt-get >/dev/null || { echo "slurm-single-node: no apt-get to install slurm-wlm and munge" >&2; exit 1; }
  # bounded: a CI without network must not hang here
  timeout 300 apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
    || { echo "slurm-single-node: apt-get could not install slurm-wlm and munge" >&2; exit 1; }
fi

H=$(hostname)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge /var/lib/munge /var/log/munge /etc/munge
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 700 /etc/munge; chmod 400 /etc/munge/munge.key

if [ ! -f "$CONF" ] || grep -qxF "$MARK" "$CONF"; then
  # slurmd refuses a node that claims more memory than it has: announce 90 % of it
  MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat > "$CONF" <<CONF
$MARK
ClusterName=local
SlurmctldHost=$H
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmUser=root
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobCompType=jobcomp/none
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$H CPUs=$(nproc) RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
fi

pgrep -x munged >/dev/null || /usr/sbin/munged --force
pgrep -x slurmctld >/dev/null || /usr/sbin/slurmctld
pgrep -x slurmd >/dev/null || /usr/sbin/slurmd
for _ in $(seq 60); do up && break; sleep 0.5; done
# a node left down by an earlier run (e.g. the machine restarted under it) is put back in service
up || scontrol update NodeName="$H" State=RESUME 2>/dev/null || true
for _ in $(seq 20); do up && break; sleep 0.5; done
sinfo
up || { echo "slurm-single-node: Slurm started but node $H is not idle (see /var/log/slurm/)" >&2; exit 1; }
