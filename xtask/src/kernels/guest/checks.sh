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

# chroot-root: a payload run in a chroot, at a path that in the
# container's root names a listed file (/bin/true). Gone before the agent
# looks, the exec record's root (task->fs->root, offsets from this
# kernel's BTF) keeps the agent from resolving it in the container's root
# (where it would find the listed file, fail the identity check, and judge
# by name only): `unknown-binary`, `"root":"chroot"` (no digest: nothing
# leads to the file any more). Still alive when looked at, it is read in
# its own root and hashed: the payload's digest against the listed
# /bin/true, `modified-binary`. Either is high drift; `unverifiable` is
# the downgrade this guards against.
# `chroot` needs CAP_SYS_CHROOT, which runc's default spec leaves out.
in_container sh -c 'mkdir -p /tmp/jail/bin && cat /bin/busybox > /tmp/jail/bin/true && echo >> /tmp/jail/bin/true && chmod +x /tmp/jail/bin/true'
runc exec --cap CAP_SYS_CHROOT "$ID" busybox chroot /tmp/jail /bin/true
if r=$(wait_for 30 '"type":"exec"' "\"id\":\"$ID\"" '"filename":"/bin/true"' '"verification"') \
    && printf '%s\n' "$r" | grep -Eq '"verdict":"(unknown|modified)-binary"'; then
    check chroot-root pass "/bin/true in a chroot: $(printf '%s\n' "$r" | grep -o '"verdict":"[a-z-]*"' | head -n 1)$(printf '%s\n' "$r" | grep -o ',"root":"[a-z]*"' | head -n 1)"
else
    check chroot-root fail "$(first_match '"filename":"/bin/true"' '"verdict"' | grep -o '"verification":.*' | cut -c1-300)"
fi

# mmap-hook: code mapped from a file the image never shipped is
# `library-drift` (a `library` record).
in_container sh -c 'mkdir -p /tmp/lib && cat /bin/busybox > /tmp/lib/evil.so && echo >> /tmp/lib/evil.so'
in_container /bin/map-exec /tmp/lib/evil.so
if r=$(wait_for 30 '"type":"library"' '"/tmp/lib/evil.so"'); then
    check mmap-hook pass "$(printf '%s\n' "$r" | grep -o '"verdict":"[^"]*"' | head -n 1)"
else
    check mmap-hook fail "no library record for /tmp/lib/evil.so; library records: $(first_match '"type":"library"' | cut -c1-400)"
fi

# mprotect-hook: a dropped file mapped readable, then made code with
# mprotect(PROT_EXEC), is `library-drift` too (BPF LSM file_mprotect,
# attached where the kernel runs BPF LSM; optional elsewhere).
if printf '%s\n' "$ready" | grep -q '"name":"lsm_mprotect"[^}]*"state":"attached"'; then
    in_container sh -c 'cat /bin/busybox > /tmp/lib/late.so && echo late >> /tmp/lib/late.so'
    in_container /bin/map-exec --mprotect /tmp/lib/late.so
    if r=$(wait_for 30 '"type":"library"' '"/tmp/lib/late.so"'); then
        check mprotect-hook pass "$(printf '%s\n' "$r" | grep -o '"verdict":"[^"]*"' | head -n 1) after mprotect(PROT_EXEC)"
    else
        check mprotect-hook fail "no library record for /tmp/lib/late.so; library records: $(first_match '"type":"library"' | cut -c1-400)"
    fi
else
    check mprotect-hook skip "lsm_mprotect not attached: $(printf '%s\n' "$ready" | grep -o '"name":"lsm_mprotect"[^}]*' | head -n 1 | cut -c1-300)"
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

# Enforcement (the agent above has stopped). A second container of the
# same image, vk-enf, is enforced; the first ($ID) is only observed. The
# payload is a dropped copy of busybox (one byte more: unknown-binary) run
# as `sh` to write a marker: blocked, the marker is never written. The
# rootfs is shared, so the marker is looked for from the guest.
ENF=vk-enf
ROOTFS=/image/rootfs
in_container sh -c 'mkdir -p /tmp/enf && cat /bin/busybox > /tmp/enf/sh && echo >> /tmp/enf/sh && chmod +x /tmp/enf/sh'
runc run -d --no-pivot --bundle /image "$ENF" </dev/null >/dev/null 2>/run/runc-enf.err \
    || echo "RUNC $ENF failed: $(cat /run/runc-enf.err)"

# enforcing_agent NAME ARGS...: an agent enforcing $ENF (own output files),
# ready and with $ENF's allowed set active.
enforcing_agent() {
    OUT=/run/agent-$1.jsonl
    LOG=/run/agent-$1.log
    shift
    verifier agent --stats-interval 0 --containers-only --no-metrics --sbom "vk-*=/image/sbom.spdx.json" \
        --enforce "$ENF" "$@" >"$OUT" 2>"$LOG" &
    AGENT_PID=$!
    wait_for 240 '"type":"ready"' >/dev/null \
        && wait_for 120 '"type":"enforcement"' "\"container_id\":\"$ENF\"" '"state":"active"' >/dev/null
}

# payload CONTAINER MARK: runs the dropped binary; prints its shell's
# message and exit status (126: EPERM from exec; 137: SIGKILL).
payload() {
    runc exec "$1" sh -c "/tmp/enf/sh -c 'echo ran > /tmp/enf/$2'; echo rc=\$?" 2>&1 | tr '\n' ' '
}

lsm_list=$(cat /sys/kernel/security/lsm 2>/dev/null)
if enforcing_agent lsm --enforce-writes "$ENF" --enforce-measure; then
    mechanism=$(first_match '"type":"ready"' | grep -o '"mechanism":"[^"]*"' | head -n 1 | cut -d'"' -f4)
    out=$(payload "$ENF" mark-lsm)
    # enforce-lsm: with bpf in the active LSMs, the exec fails with EPERM;
    # the block record names the denied file and its verdict (the agent
    # judged it from the name the record carries: no exec record comes).
    case ",$lsm_list," in
    *,bpf,*)
        if [ "$mechanism" = bpf-lsm ] && [ ! -e "$ROOTFS/tmp/enf/mark-lsm" ] && echo "$out" | grep -q 'rc=126' \
            && wait_for 15 '"type":"block"' '"mechanism":"bpf-lsm"' '"event":"exec"' "\"id\":\"$ENF\"" \
                '"path":"/tmp/enf/sh"' '"verdict":"unknown-binary"' >/dev/null; then
            check enforce-lsm pass "mechanism bpf-lsm; payload: $out; no marker; block record names /tmp/enf/sh, unknown-binary"
        else
            check enforce-lsm fail "mechanism ${mechanism:-none}; payload: $out; marker: $(ls "$ROOTFS/tmp/enf/"); block: $(first_match '"type":"block"' '"mechanism":"bpf-lsm"' | cut -c1-400); $(first_match '"type":"ready"' | grep -o '"enforcement":.*' | cut -c1-200)"
        fi ;;
    *) check enforce-lsm skip "bpf is not an active LSM ($lsm_list); mechanism ${mechanism:-none}" ;;
    esac
    # enforce-lsm-mmap: a PROT_EXEC mapping of an unlisted file fails.
    out=$(runc exec "$ENF" sh -c '/bin/map-exec /tmp/lib/evil.so; echo rc=$?' 2>&1 | tr '\n' ' ')
    case ",$lsm_list," in
    *,bpf,*)
        if echo "$out" | grep -Eq 'rc=1( |$)' && wait_for 15 '"type":"block"' '"mechanism":"bpf-lsm"' '"event":"library"' "\"id\":\"$ENF\"" >/dev/null; then
            check enforce-lsm-mmap pass "map-exec: $out; block record"
        else
            check enforce-lsm-mmap fail "map-exec: $out"
        fi ;;
    *) check enforce-lsm-mmap skip "bpf is not an active LSM ($lsm_list)" ;;
    esac
    # enforce-lsm-write: opening an allowed image file for writing fails
    # (EPERM from file_open); the file is unchanged and a write block is
    # reported, naming the file (its path walked in the kernel). /bin/map-exec: in the allowed set, not used after this.
    case ",$lsm_list," in
    *,bpf,*)
        cp "$ROOTFS/bin/map-exec" /run/map-exec.orig
        out=$(runc exec "$ENF" sh -c 'echo x >> /bin/map-exec; echo rc=$?' 2>&1 | tr '\n' ' ')
        if echo "$out" | grep -q 'not permitted' && cmp -s /run/map-exec.orig "$ROOTFS/bin/map-exec" \
            && wait_for 15 '"type":"block"' '"mechanism":"bpf-lsm"' '"event":"write"' '"path":"/bin/map-exec"' "\"id\":\"$ENF\"" >/dev/null; then
            check enforce-lsm-write pass "write: $out; file unchanged; write block record names /bin/map-exec"
        else
            check enforce-lsm-write fail "write: $out; unchanged: $(cmp -s /run/map-exec.orig "$ROOTFS/bin/map-exec" && echo yes || echo no); block: $(first_match '"type":"block"' '"event":"write"' | cut -c1-300)"
        fi ;;
    *) check enforce-lsm-write skip "bpf is not an active LSM ($lsm_list)" ;;
    esac
    # enforce-measure: a listed file whose bytes are changed from outside
    # the container (the guest writes the shared rootfs: no watched write,
    # same size) is denied by in-kernel measurement: IMA's SHA-256 of it is
    # not one the container's pre-verification allowed.
    measure=$(first_match '"type":"ready"' | grep -o '"measure":{[^}]*}' | head -n 1)
    case "$measure" in
    *'"active":true'*)
        target="$ROOTFS/bin/map-exec"
        cp "$target" /run/map-exec.orig
        size=$(wc -c <"$target")
        printf 'XXXXXXXX' | dd of="$target" bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
        out=$(runc exec "$ENF" sh -c '/bin/map-exec; echo rc=$?' 2>&1 | tr '\n' ' ')
        if [ "$(wc -c <"$target")" = "$size" ] && echo "$out" | grep -q 'rc=126' \
            && r=$(wait_for 15 '"type":"block"' '"digest"' "\"id\":\"$ENF\""); then
            check enforce-measure pass "$measure; changed /bin/map-exec: $out; block $(printf '%s\n' "$r" | grep -o '"reasons":\[[^]]*\]')"
        else
            check enforce-measure fail "$measure; changed /bin/map-exec: $out; blocks: $(first_match '"type":"block"' "\"id\":\"$ENF\"" | grep -o '"reasons":\[[^]]*\]')"
        fi
        cat /run/map-exec.orig >"$target" ;;
    *) check enforce-measure skip "in-kernel measurement not active: ${measure:-no measure field in the ready record}" ;;
    esac
    # enforce-observe: the same payload runs in the observed container.
    out=$(payload "$ID" mark-observe)
    if [ -e "$ROOTFS/tmp/enf/mark-observe" ]; then
        check enforce-observe pass "payload ran in $ID: $out"
    else
        check enforce-observe fail "payload in $ID: $out"
    fi
else
    check enforce-lsm fail "agent not enforcing: $(tail -n 3 "$LOG" | cut -c1-200)"
fi
stop_agent

# enforce-tracepoint: --enforce-mechanism tracepoint-kill kills the payload.
if enforcing_agent tracepoint --enforce-mechanism tracepoint-kill; then
    out=$(payload "$ENF" mark-tp)
    if [ ! -e "$ROOTFS/tmp/enf/mark-tp" ] && echo "$out" | grep -q 'rc=137' \
        && wait_for 15 '"type":"block"' '"mechanism":"tracepoint-kill"' '"/tmp/enf/sh"' >/dev/null; then
        check enforce-tracepoint pass "payload: $out; no marker; block record"
    else
        check enforce-tracepoint fail "payload: $out; marker: $(ls "$ROOTFS/tmp/enf/")"
    fi
else
    check enforce-tracepoint fail "agent not enforcing: $(tail -n 3 "$LOG" | cut -c1-200)"
fi
stop_agent
runc delete --force "$ENF" >/dev/null 2>&1
