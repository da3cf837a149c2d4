# The kernel matrix's checks, sourced by /init once the agent is ready and
# the container `$ID` runs (busybox sh). One block per check; each ends in
# one `check NAME pass|fail|skip DETAIL` line. To add a check, add a block:
# act in the container (`in_container ...`), wait for the agent's record
# (`wait_for SECONDS PATTERN...`), report. Blocks after `stop_agent` read
# the final stats record.

# agent-ready: the agent loaded its programs; which hooks attached.
if ready=$(first_match '"type":"ready"'); then
    hooks=$(printf '%s\n' "$ready" | grep -o '"attach":"[^"]*","required":[a-z]*,"state":"attached"' \
        | sed 's/"attach":"\([^"]*\)".*/\1/' | tr '\n' ' ')
    skipped=$(printf '%s\n' "$ready" | grep -o '"state":"skipped"' | wc -l)
    check agent-ready pass "attached: $hooks; skipped: $skipped"
else
    check agent-ready fail "no ready record: $(tail -n 5 "$LOG")"
fi

# exec-records: the container's own exec is seen and attributed to it.
if r=$(wait_for 30 '"type":"exec"' "\"id\":\"$ID\"" '"runtime":"runc"'); then
    check exec-records pass "$(printf '%s\n' "$r" | grep -o '"filename":"[^"]*"' | head -n 1) in $ID"
else
    check exec-records fail "no exec record attributed to $ID: $(cat /run/runc.err 2>/dev/null)"
fi

# verdict-ok: an exec of a file the SBOM lists, with its hash, is `ok`.
in_container /opt/tool/true
if r=$(wait_for 30 '"type":"exec"' "\"id\":\"$ID\"" '"filename":"/opt/tool/true"' '"verdict":"ok"'); then
    check verdict-ok pass "/opt/tool/true ok"
else
    check verdict-ok fail "$(first_match '"filename":"/opt/tool/true"' | cut -c1-200)"
fi

# btf-offsets: the struct offsets came from this kernel's BTF, and they are
# right: an `ok` verdict needs the kernel's file identity to match fstat.
btf=$(ls -l /sys/kernel/btf/vmlinux 2>/dev/null | awk '{print $5}')
offsets=$(grep -o 'kernel offsets from BTF.*' "$LOG" | head -n 1 | cut -c1-160)
if [ -n "$btf" ] && [ -n "$offsets" ] && first_match '"verdict":"ok"' >/dev/null; then
    check btf-offsets pass "vmlinux BTF $btf bytes; $offsets"
else
    check btf-offsets fail "vmlinux BTF: ${btf:-absent}; log: ${offsets:-no offsets logged}"
fi

# verdict-unknown: a dropped executable is `unknown-binary`, with an alert.
# (One byte more than busybox: the same bytes would be `relocated-binary`.)
in_container sh -c 'mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true'
if wait_for 30 '"type":"exec"' '"filename":"/tmp/x/true"' '"verdict":"unknown-binary"' >/dev/null \
    && wait_for 15 '"type":"alert"' '"verdict":"unknown-binary"' '"path":"/tmp/x/true"' >/dev/null; then
    check verdict-unknown pass "/tmp/x/true unknown-binary, alert raised"
else
    check verdict-unknown fail "$(first_match '"/tmp/x/true"' | cut -c1-200)"
fi

# mmap-hook: code mapped from a file the image never shipped is
# `library-drift` (a `library` record).
in_container sh -c 'mkdir -p /tmp/lib && cat /bin/busybox > /tmp/lib/evil.so && echo >> /tmp/lib/evil.so'
in_container /bin/map-exec /tmp/lib/evil.so
if r=$(wait_for 30 '"type":"library"' '"/tmp/lib/evil.so"'); then
    check mmap-hook pass "$(printf '%s\n' "$r" | grep -o '"verdict":"[^"]*"' | head -n 1)"
else
    check mmap-hook fail "no library record for /tmp/lib/evil.so"
fi

# write-hook: opening a verified image file for writing is reported.
in_container sh -c 'echo >> /opt/tool/true'
if r=$(wait_for 30 '"type":"write"' '"path":"/opt/tool/true"'); then
    check write-hook pass "$(printf '%s\n' "$r" | grep -o '"verdict":"[^"]*"' | head -n 1)"
else
    check write-hook fail "no write record for /opt/tool/true"
fi

# fast-path (read after the agent stops): repeated execs of a verified file
# are answered in the kernel and counted there.
REPEATS=5
i=0
while [ $i -lt $REPEATS ]; do in_container true; i=$((i + 1)); done
stop_agent
stats=$(first_match '"type":"stats"' '"final":true')
fast=$(json_number fast_path "$stats")
if [ "${fast:-0}" -ge "$REPEATS" ]; then
    check fast-path pass "kernel.fast_path=$fast after $REPEATS repeats"
else
    check fast-path fail "kernel.fast_path=${fast:-none} after $REPEATS repeats (agent exit $AGENT_RC): $(printf '%s' "$stats" | cut -c1-200)"
fi
