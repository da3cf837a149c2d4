//! BPF LSM enforcement: loads and attaches the `bprm_check_security` and
//! `mmap_file` programs (`verifier-ebpf/src/lsm.rs`), which deny with
//! `-EPERM` what the tracepoint-kill programs would kill.
//!
//! They are not in [`crate::hooks::HOOKS`]: they are attached only when
//! the agent enforces, and an LSM program needs the kernel's BTF (the id
//! of `bpf_lsm_<hook>`) to load, which the other programs do without. A
//! kernel runs them only when built with `CONFIG_BPF_LSM` and booted with
//! `bpf` in its `lsm=` list; elsewhere the load or attach is refused
//! (`EPERM` on most) or, where it is accepted, the hook never calls them.
//! So the mechanism counts as available only when both the attach worked
//! and the kernel's active LSM list (`/sys/kernel/security/lsm`) names
//! `bpf`. Once it is, [`drop_tracepoint_kill`] unloads the tracepoint-kill
//! programs: a denied exec never happens, and a denied mapping must not
//! also be killed from `sys_enter_mmap`.

use std::path::Path;

use aya::{
    Btf, Ebpf, Endianness,
    programs::{Lsm, RawTracePoint, TracePoint},
};

use crate::hooks::{HookOutcome, HookState};

/// (program in the object, LSM hook). `lsm_file_open` denies write-opens
/// of image files only in containers whose writes are enforced; elsewhere
/// it costs one failed hash lookup per open.
pub const LSM_PROGRAMS: [(&str, &str); 3] =
    [("lsm_exec", "bprm_check_security"), ("lsm_mmap", "mmap_file"), ("lsm_file_open", "file_open")];

/// The observing LSM program (program, hook): `mprotect(PROT_EXEC)` of a
/// file mapping, reported like a mapping with `PROT_EXEC` (and denied in
/// containers BPF LSM enforces). Attached whenever the agent verifies and
/// the kernel runs BPF LSM, whatever is enforced.
pub const OBSERVER: (&str, &str) = ("lsm_mprotect", "file_mprotect");

/// Where the kernel lists its active LSMs.
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";

/// Why BPF LSM cannot enforce here.
#[derive(Debug, thiserror::Error)]
pub enum LsmError {
    #[error("cannot read the kernel's BTF at {path} (LSM programs need it to attach): {detail}")]
    Btf { path: String, detail: String },
    #[error("program {0} is missing from the eBPF object (rebuild the agent)")]
    Missing(&'static str),
    #[error("the kernel refused LSM program {program} ({hook}) at {step}: {detail}; {hint}")]
    Refused { program: &'static str, hook: &'static str, step: &'static str, detail: String, hint: String },
    #[error("the LSM programs attached but the kernel will not run them: {0}")]
    Inactive(String),
}

/// Loads and attaches both LSM programs; on any failure none stays
/// attached. `Ok` holds their outcomes for the `ready` record.
pub fn attach(ebpf: &mut Ebpf, btf_path: &Path) -> Result<Vec<HookOutcome>, LsmError> {
    let result = try_attach(ebpf, btf_path);
    if result.is_err() {
        for (program, _) in LSM_PROGRAMS {
            if let Some(p) = ebpf.program_mut(program)
                && let Ok(p) = <&mut Lsm>::try_from(p)
            {
                let _ = p.unload();
            }
        }
    }
    result
}

fn try_attach(ebpf: &mut Ebpf, btf_path: &Path) -> Result<Vec<HookOutcome>, LsmError> {
    let btf = Btf::parse_file(btf_path, Endianness::default())
        .map_err(|e| LsmError::Btf { path: btf_path.display().to_string(), detail: chain(&e) })?;
    let mut outcomes = Vec::new();
    for (program, hook) in LSM_PROGRAMS {
        let p = ebpf.program_mut(program).ok_or(LsmError::Missing(program))?;
        let p: &mut Lsm = p.try_into().map_err(|_| LsmError::Missing(program))?;
        let refused = |step, e: &aya::programs::ProgramError| LsmError::Refused {
            program,
            hook,
            step,
            detail: chain(e),
            hint: active_lsms(true).err().unwrap_or_else(|| "bpf is an active LSM".into()),
        };
        p.load(hook, &btf).map_err(|e| refused("load", &e))?;
        p.attach().map_err(|e| refused("attach", &e))?;
        outcomes.push(HookOutcome {
            name: program,
            attach: format!("lsm/{hook}"),
            required: false,
            state: HookState::Attached,
        });
    }
    active_lsms(true).map_err(LsmError::Inactive)?;
    Ok(outcomes)
}

/// Attaches [`OBSERVER`] where the kernel runs BPF LSM. Never fails the
/// start: the outcome says why it is not attached (then `mprotect` of a
/// file mapping to code stays unseen, as docs/design.md says).
pub fn attach_observer(ebpf: &mut Ebpf, btf_path: &Path) -> HookOutcome {
    let (program, hook) = OBSERVER;
    let state = match try_observer(ebpf, btf_path) {
        Ok(()) => HookState::Attached,
        Err(why) => {
            if let Some(p) = ebpf.program_mut(program)
                && let Ok(p) = <&mut Lsm>::try_from(p)
            {
                let _ = p.unload();
            }
            HookState::Skipped(format!("{why}; mprotect(PROT_EXEC) of a file mapping is not seen"))
        }
    };
    HookOutcome { name: program, attach: format!("lsm/{hook}"), required: false, state }
}

fn try_observer(ebpf: &mut Ebpf, btf_path: &Path) -> Result<(), String> {
    let (program, hook) = OBSERVER;
    active_lsms(false)?;
    let btf = Btf::parse_file(btf_path, Endianness::default())
        .map_err(|e| format!("cannot read the kernel's BTF at {}: {}", btf_path.display(), chain(&e)))?;
    let p = ebpf.program_mut(program).ok_or("missing from the eBPF object (rebuild the agent)")?;
    let p: &mut Lsm = p.try_into().map_err(|_| "not an LSM program in the eBPF object".to_owned())?;
    p.load(hook, &btf).map_err(|e| format!("the kernel refused the LSM program at load: {}", chain(&e)))?;
    p.attach().map_err(|e| format!("the kernel refused the LSM program at attach: {}", chain(&e)))?;
    Ok(())
}

/// `Ok` when the kernel's active LSMs include `bpf`; else why not, with
/// what to do. With `mount`, securityfs is mounted if it is not (the
/// agent about to enforce is root).
pub fn active_lsms(mount: bool) -> Result<(), String> {
    let list = std::fs::read_to_string(LSM_LIST).or_else(|e| {
        if mount && e.kind() == std::io::ErrorKind::NotFound {
            let _ = nix::mount::mount(
                Some("securityfs"),
                "/sys/kernel/security",
                Some("securityfs"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            );
        }
        std::fs::read_to_string(LSM_LIST)
    });
    match list {
        Ok(list) if list.split(',').any(|l| l.trim() == "bpf") => Ok(()),
        Ok(list) => Err(format!(
            "bpf is not in the kernel's active LSMs ({LSM_LIST}: {}); boot with lsm=...,bpf (and CONFIG_BPF_LSM=y)",
            list.trim()
        )),
        Err(e) => Err(format!(
            "cannot read {LSM_LIST} ({e}); the kernel may lack CONFIG_SECURITY or CONFIG_BPF_LSM"
        )),
    }
}

/// Unloads the tracepoint-kill programs (`enforce_exec`, `enforce_mmap`)
/// and marks them skipped in `hooks` with `why` (BPF LSM enforces instead,
/// or nothing is to be enforced).
pub fn drop_tracepoint_kill(ebpf: &mut Ebpf, hooks: &mut [HookOutcome], why: &str) {
    drop_hooks(ebpf, hooks, &["enforce_exec", "enforce_mmap"], why);
}

/// The hooks that only act in watched containers (`WATCHED`): write-open
/// tracking and executable mappings. With nothing verified no container is
/// ever watched, and each would still cost every `open*` and `mmap` call on
/// the node a tracepoint and a failed lookup: the loader leaves them out.
pub const WATCHED_ONLY: [&str; 5] =
    ["write_openat", "write_openat2", "write_open", "write_creat", "mmap_exec"];

/// Why a [`WATCHED_ONLY`] hook is not attached by an agent that verifies
/// nothing.
pub const NOT_WATCHING: &str = "not needed: nothing is verified, so no container is watched (give --sbom, \
                                --sbom-rules, --sbom-store, attestations or --host-baseline)";

/// Unloads the programs of the hooks named `names` ([`crate::hooks::HOOKS`])
/// and marks them skipped in `hooks` with `why`.
fn drop_hooks(ebpf: &mut Ebpf, hooks: &mut [HookOutcome], names: &[&str], why: &str) {
    for name in names {
        let Some(hook) = crate::hooks::HOOKS.iter().find(|h| h.name == *name) else { continue };
        let unloaded = match ebpf.program_mut(hook.program) {
            Some(p) => match <&mut RawTracePoint>::try_from(&mut *p) {
                Ok(p) => p.unload(),
                Err(_) => <&mut TracePoint>::try_from(p).map_or(Ok(()), TracePoint::unload),
            },
            None => Ok(()),
        };
        if let Err(e) = unloaded {
            tracing::warn!("unloading {name} failed: {}", chain(&e));
        }
        if let Some(h) = hooks.iter_mut().find(|h| h.name == *name && h.state == HookState::Attached) {
            h.state = HookState::Skipped(why.into());
        }
    }
}

/// An error and its sources, `: `-separated (aya's own text hides the
/// kernel's errno in the source).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chains_name_the_errno() {
        let io = std::io::Error::from_raw_os_error(1);
        let e = aya::programs::ProgramError::SyscallError(aya::sys::SyscallError {
            call: "bpf_raw_tracepoint_open",
            io_error: io,
        });
        let text = chain(&e);
        assert!(text.contains("bpf_raw_tracepoint_open"), "{text}");
        assert!(text.contains("Operation not permitted"), "{text}");
    }
}
