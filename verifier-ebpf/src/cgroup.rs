//! `cgroup:cgroup_mkdir`: a new cgroup, the first sign of a new container.
//!
//! Runtimes create a container's cgroup before they start its process, so
//! reporting the mkdir lets the agent resolve the container's image while
//! the runtime is still setting up, before the first exec arrives. Checked
//! against the tracepoint format of Linux 6.x
//! (`/sys/kernel/tracing/events/cgroup/cgroup_mkdir/format`):
//!
//! ```text
//! field:int root;               offset:8;  size:4;
//! field:int level;              offset:12; size:4;
//! field:u64 id;                 offset:16; size:8;
//! field:__data_loc char[] path; offset:24; size:4;
//! ```
//!
//! As for exec, the offsets come from BTF (`trace_event_raw_cgroup`).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_ktime_get_ns, generated::bpf_probe_read_kernel_str},
    macros::tracepoint,
    programs::TracePointContext,
};
use verifier_common::{
    counters::Counter,
    event::{CGROUP_HEADER_SIZE, CgroupHeader, FILENAME_MAX, FLAG_FILENAME_TRUNCATED, KIND_CGROUP_MKDIR},
};

use crate::maps::{CGROUP_SCRATCH, CONFIG, EVENTS, count};

#[tracepoint(category = "cgroup", name = "cgroup_mkdir")]
pub fn cgroup_mkdir(ctx: TracePointContext) -> u32 {
    match try_cgroup_mkdir(&ctx) {
        Ok(()) | Err(_) => 0,
    }
}

fn try_cgroup_mkdir(ctx: &TracePointContext) -> Result<(), i64> {
    let off = &CONFIG.load().offsets;
    let scratch = CGROUP_SCRATCH.get_ptr_mut(0).ok_or(-1i64)?;
    // SAFETY: map value pointer for this CPU, valid for the program's run.
    let scratch = unsafe { &mut *scratch };
    // SAFETY: probe-reads of the tracepoint record at BTF offsets.
    let (root, level, id, loc) = unsafe {
        (
            ctx.read_at::<i32>(off.tp_cgroup_root as usize).map_err(i64::from)?,
            ctx.read_at::<i32>(off.tp_cgroup_level as usize).map_err(i64::from)?,
            ctx.read_at::<u64>(off.tp_cgroup_id as usize).map_err(i64::from)?,
            ctx.read_at::<u32>(off.tp_cgroup_path_loc as usize).map_err(i64::from)?,
        )
    };
    // Only the unified (cgroup v2) hierarchy, id 0: its ids are what
    // `bpf_get_current_cgroup_id()` returns. v1 hierarchies on a hybrid host
    // number their cgroups independently.
    if root != 0 {
        return Ok(());
    }
    let path_ptr = (ctx.as_ptr() as u64) + u64::from(loc & 0xffff);
    // SAFETY: the helper bounds the copy and validates the source.
    let copied = unsafe {
        bpf_probe_read_kernel_str(scratch.path.as_mut_ptr().cast(), FILENAME_MAX as u32, path_ptr as *const _)
    };
    let mut len = if copied > 0 { (copied - 1) as usize } else { 0 };
    let mut flags = 0u16;
    if len >= FILENAME_MAX - 1 {
        flags |= FLAG_FILENAME_TRUNCATED;
    }
    if len > FILENAME_MAX {
        len = FILENAME_MAX;
    }
    scratch.header = CgroupHeader {
        kind: KIND_CGROUP_MKDIR,
        flags,
        path_len: len as u16,
        _pad0: 0,
        // SAFETY: helper without arguments.
        ktime_ns: unsafe { bpf_ktime_get_ns() },
        id,
        root,
        level,
    };
    let total = CGROUP_HEADER_SIZE + len;
    let total =
        if total > CGROUP_HEADER_SIZE + FILENAME_MAX { CGROUP_HEADER_SIZE + FILENAME_MAX } else { total };
    // SAFETY: `total` is bounded by the scratch value's size.
    let bytes = unsafe { core::slice::from_raw_parts((scratch as *const _) as *const u8, total) };
    // Rare and latency-sensitive (the container is about to start): wake
    // the agent at once.
    match EVENTS.output::<[u8]>(bytes, 0) {
        Ok(()) => count(Counter::CgroupSent),
        Err(_) => count(Counter::CgroupDropped),
    }
    Ok(())
}
