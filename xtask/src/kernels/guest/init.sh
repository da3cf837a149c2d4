#!/bin/sh
# /init of the kernel-matrix guest (busybox sh). Mounts what the agent and
# runc need, starts the agent with the image's SBOM, runs a runc container
# of the image, sources /checks.sh (one block per check, each printing one
# `CHECK name=... result=... detail=...` line), then powers off.
# Everything printed goes to the serial console, which the host reads.
/bin/busybox --install -s /bin
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mkdir -p /proc /sys /dev /run /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
ip link set lo up 2>/dev/null
echo "INIT release=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime) lsm=$(cat /sys/kernel/security/lsm 2>/dev/null)"

OUT=/run/agent.jsonl
LOG=/run/agent.log
ID=vk-matrix
AGENT_PID=

# check NAME pass|fail|skip DETAIL: the one line the host parses.
FAILED=
check() {
    [ "$2" = fail ] && FAILED=1
    echo "CHECK name=$1 result=$2 detail=$(echo "$3" | tr '\n' ' ' | cut -c1-300)"
}

# first_match PATTERN...: the first agent record holding every pattern
# (fixed strings; records are compact JSON, one per line).
first_match() {
    lines=$(cat "$OUT" 2>/dev/null)
    for p in "$@"; do
        lines=$(printf '%s\n' "$lines" | grep -F -- "$p") || return 1
    done
    printf '%s\n' "$lines" | head -n 1
}

# wait_for SECONDS PATTERN...: polls until first_match finds a record
# (gives up at once when the agent is gone: nothing more will come). The
# deadline is by the clock: under TCG one poll costs a large part of a second.
wait_for() {
    read -r up _ </proc/uptime
    end=$((${up%.*} + $1))
    shift
    while :; do
        first_match "$@" && return 0
        if [ -z "$AGENT_PID" ] || ! kill -0 "$AGENT_PID" 2>/dev/null; then
            first_match "$@"
            return
        fi
        read -r up _ </proc/uptime
        [ "${up%.*}" -ge "$end" ] && return 1
        sleep 0.2
    done
}

# in_container ARGS...: `runc exec` in the running container.
in_container() {
    runc exec "$ID" "$@"
}

# stop_agent: SIGTERM, then wait (the final stats record is written).
stop_agent() {
    [ -n "$AGENT_PID" ] || return 0
    kill -TERM "$AGENT_PID"
    wait "$AGENT_PID"
    AGENT_RC=$?
    AGENT_PID=
}

# json_number FIELD LINE: the first number after "FIELD":
json_number() {
    printf '%s\n' "$2" | grep -o "\"$1\":[0-9]*" | head -n 1 | cut -d: -f2
}

START=$(cut -d' ' -f1 /proc/uptime)
VERIFIER_LOG=info,verifier_sensor::loader=debug verifier agent --stats-interval 0 --containers-only \
    --no-metrics --sbom "$ID=/image/sbom.spdx.json" >"$OUT" 2>"$LOG" &
AGENT_PID=$!
if wait_for 240 '"type":"ready"' >/dev/null; then
    echo "AGENT ready after $(awk -v s="$START" '{print $1 - s}' /proc/uptime) s"
    runc run -d --no-pivot --bundle /image "$ID" </dev/null >/dev/null 2>/run/runc.err \
        || echo "RUNC failed: $(cat /run/runc.err)"
else
    echo "AGENT not ready"
fi

. /checks.sh

stop_agent
runc delete --force "$ID" >/dev/null 2>&1
if [ -n "$FAILED" ]; then
    echo "AGENT records (a check failed):"
    head -n 60 "$OUT" | cut -c1-600 | sed 's/^/  > /'
fi
echo "AGENT log:"
sed 's/^/  | /' "$LOG" | tail -n 60
echo "MATRIX done"
sync
poweroff -f
