//! The hooks: one row per kernel program the sensor attaches.
//!
//! Adding a hook is one row in [`HOOKS`] (and its program in
//! `verifier-ebpf`): the loader walks the table, so nothing else names
//! programs. Each row says where the program attaches, whether the agent
//! is useless without it (`required`: the exec and new-cgroup hooks) or
//! merely blind to one kind of drift (`optional`: write-opens, executable
//! mappings), and how to tell beforehand whether this kernel has the attach
//! point ([`Probe`]), so that a missing one is said plainly rather than as
//! an attach error.
//!
//! What became of each hook on this kernel is a [`HookOutcome`], which the
//! agent lists in its `ready` record.

use std::{fmt, path::Path};

/// Where and how a program attaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// A raw tracepoint (`BPF_RAW_TRACEPOINT_OPEN`), by its event name.
    RawTracepoint(&'static str),
    /// A tracefs tracepoint, `category/name`.
    Tracepoint { category: &'static str, name: &'static str },
}

impl fmt::Display for Attach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attach::RawTracepoint(name) => write!(f, "raw_tracepoint/{name}"),
            Attach::Tracepoint { category, name } => write!(f, "tracepoint/{category}/{name}"),
        }
    }
}

/// Whether the agent can run without the hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Loading stops if it cannot be attached.
    Required,
    /// Skipped, with a warning and a `skipped` entry in the `ready` record,
    /// if it cannot be attached; the `what_is_lost` text says what goes
    /// unreported.
    Optional { what_is_lost: &'static str },
}

/// A check that this kernel has the attach point, made before loading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Nothing to check beforehand (raw tracepoints are looked up by name
    /// at attach time, and every supported kernel has the ones used).
    None,
    /// The tracepoint's own event directory exists in tracefs
    /// (`events/<category>/<name>`): syscall tracepoints depend on the
    /// architecture (no `open` or `creat` on arm64) and on
    /// `CONFIG_FTRACE_SYSCALLS`.
    TracefsEvent,
}

/// One hook.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Short stable name, used in messages and the `ready` record.
    pub name: &'static str,
    /// The program's name in the eBPF object (its function name in
    /// `verifier-ebpf`).
    pub program: &'static str,
    pub attach: Attach,
    pub need: Need,
    pub probe: Probe,
}

const WRITES_LOST: &str = "writes to verified files through this syscall go unreported (image-file-written)";

const fn write_open(name: &'static str, program: &'static str) -> Hook {
    Hook {
        name,
        program,
        attach: Attach::Tracepoint { category: "syscalls", name: program },
        need: Need::Optional { what_is_lost: WRITES_LOST },
        probe: Probe::TracefsEvent,
    }
}

/// Every hook, in attach order.
pub const HOOKS: &[Hook] = &[
    Hook {
        name: "exec",
        program: "sched_process_exec",
        attach: Attach::RawTracepoint("sched_process_exec"),
        need: Need::Required,
        probe: Probe::None,
    },
    Hook {
        name: "cgroup_mkdir",
        program: "cgroup_mkdir",
        attach: Attach::Tracepoint { category: "cgroup", name: "cgroup_mkdir" },
        need: Need::Required,
        probe: Probe::TracefsEvent,
    },
    write_open("write_openat", "sys_exit_openat"),
    write_open("write_openat2", "sys_exit_openat2"),
    write_open("write_open", "sys_exit_open"),
    write_open("write_creat", "sys_exit_creat"),
    Hook {
        name: "mmap_exec",
        program: "sys_enter_mmap",
        attach: Attach::Tracepoint { category: "syscalls", name: "sys_enter_mmap" },
        need: Need::Optional {
            what_is_lost: "shared libraries mapped in containers go unverified (library-drift)",
        },
        probe: Probe::TracefsEvent,
    },
    Hook {
        name: "enforce_exec",
        program: "enforce_exec",
        attach: Attach::RawTracepoint("sched_process_exec"),
        need: Need::Optional { what_is_lost: ENFORCE_LOST },
        probe: Probe::None,
    },
    Hook {
        name: "enforce_mmap",
        program: "enforce_mmap",
        attach: Attach::Tracepoint { category: "syscalls", name: "sys_enter_mmap" },
        need: Need::Optional { what_is_lost: ENFORCE_LOST },
        probe: Probe::TracefsEvent,
    },
];

const ENFORCE_LOST: &str =
    "enforced containers are not blocked by tracepoint-kill (their execs are still verified and reported)";

impl Hook {
    /// Runs the probe against tracefs mounted at `tracefs`; `Err` says
    /// what is missing.
    pub fn probe(&self, tracefs: &Path) -> Result<(), String> {
        match (self.probe, self.attach) {
            (Probe::None, _) | (Probe::TracefsEvent, Attach::RawTracepoint(_)) => Ok(()),
            (Probe::TracefsEvent, Attach::Tracepoint { category, name }) => {
                let dir = tracefs.join("events").join(category).join(name);
                if dir.is_dir() {
                    Ok(())
                } else {
                    Err(format!(
                        "this kernel has no tracepoint {category}/{name} ({} is absent)",
                        dir.display()
                    ))
                }
            }
        }
    }
}

/// What became of a hook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookState {
    Attached,
    /// Optional and not attached: why.
    Skipped(String),
}

/// A hook and what became of it, for the `ready` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome {
    pub name: &'static str,
    /// Where it attaches, e.g. `tracepoint/syscalls/sys_enter_mmap`.
    pub attach: String,
    pub required: bool,
    pub state: HookState,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_programs_are_unique_and_the_core_hooks_are_required() {
        for (i, a) in HOOKS.iter().enumerate() {
            for b in &HOOKS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.program, b.program);
            }
        }
        let required: Vec<_> = HOOKS.iter().filter(|h| h.need == Need::Required).map(|h| h.name).collect();
        assert_eq!(required, ["exec", "cgroup_mkdir"]);
    }

    #[test]
    fn tracefs_probe_looks_for_the_event_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("events/syscalls/sys_exit_openat")).expect("mkdir");
        let openat = HOOKS.iter().find(|h| h.name == "write_openat").expect("row");
        let creat = HOOKS.iter().find(|h| h.name == "write_creat").expect("row");
        let exec = HOOKS.iter().find(|h| h.name == "exec").expect("row");
        assert_eq!(openat.probe(dir.path()), Ok(()));
        let why = creat.probe(dir.path()).expect_err("absent");
        assert!(why.contains("syscalls/sys_exit_creat"), "{why}");
        assert_eq!(exec.probe(dir.path()), Ok(()), "raw tracepoints need no tracefs");
    }

    #[test]
    fn attach_points_read_as_paths() {
        let mmap = HOOKS.iter().find(|h| h.name == "mmap_exec").expect("row");
        assert_eq!(mmap.attach.to_string(), "tracepoint/syscalls/sys_enter_mmap");
        assert_eq!(HOOKS[0].attach.to_string(), "raw_tracepoint/sched_process_exec");
    }
}
