//! Which blocking mechanism enforced containers get, chosen once at start.
//!
//! - `bpf-lsm`: the `bprm_check_security` / `mmap_file` programs deny with
//!   `EPERM`; nothing of the file runs, the caller sees the error. Tried
//!   (loaded and attached) only when some container is to be enforced.
//! - `tracepoint-kill`: the tracepoint programs kill the task before the
//!   new image returns to user space. Attached with the other hooks.
//!
//! `--enforce-mechanism auto` takes `bpf-lsm` where the kernel runs it and
//! then unloads the tracepoint-kill programs (a denied exec never happens;
//! a denied mapping must not also be killed), else `tracepoint-kill`. What
//! was chosen, and why the other is not used, goes in the `ready` record.

use std::{collections::BTreeMap, path::Path};

use aya::Ebpf;
use verifier_sensor::{
    hooks::{HookOutcome, HookState},
    lsm,
};

use super::enforce::{EnforceArgs, EnforceError, MechanismChoice, ProbeJson};

/// What start-up found and chose.
#[derive(Debug)]
pub(crate) struct Chosen {
    requested: MechanismChoice,
    /// The mechanism enforced containers get, or why there is none.
    pub mechanism: Result<&'static str, String>,
    tracepoint: Result<(), String>,
    lsm: Result<(), String>,
    /// In-kernel measurement on top of `bpf-lsm` (`measure.rs`), or why not.
    measure: Result<(), String>,
    /// Its digest map, for the enforcement maps.
    pub digests: Option<verifier_sensor::measure::DigestMap>,
}

/// Whether any container may be enforced (the LSM programs are tried only
/// then).
pub(super) fn wanted(args: &EnforceArgs) -> bool {
    !args.enforce.is_empty() || !args.dry_run.is_empty()
}

/// Probes and attaches: tries BPF LSM unless told not to (or nothing is
/// enforced), and unloads the tracepoint-kill programs when it works.
pub(crate) fn choose(
    args: &EnforceArgs,
    policy_enforces: bool,
    ebpf: &mut Ebpf,
    hooks: &mut Vec<HookOutcome>,
    btf: &Path,
) -> Result<Chosen, EnforceError> {
    let requested = args.mechanism;
    let tracepoint = tracepoint_kill(hooks);
    let wanted = wanted(args) || policy_enforces;
    if !wanted {
        // Nothing to enforce: the kill programs would only cost a map
        // lookup per exec and mapping.
        lsm::drop_tracepoint_kill(ebpf, hooks, "not needed: no container is enforced");
    }
    let lsm = if !wanted {
        Err(match lsm::active_lsms(false) {
            Ok(()) => "not tried: no container is enforced (the kernel lists the bpf LSM)".to_owned(),
            Err(why) => format!("not tried: no container is enforced ({why})"),
        })
    } else if requested == MechanismChoice::TracepointKill {
        Err("not tried: --enforce-mechanism tracepoint-kill".to_owned())
    } else {
        match lsm::attach(ebpf, btf) {
            Ok(outcomes) => {
                hooks.extend(outcomes);
                lsm::drop_tracepoint_kill(
                    ebpf,
                    hooks,
                    "bpf-lsm enforces instead (the exec or mapping is denied)",
                );
                Ok(())
            }
            Err(e) => {
                if requested == MechanismChoice::BpfLsm {
                    return Err(EnforceError::LsmRefused(e.to_string()));
                }
                tracing::info!("bpf-lsm unavailable ({e}); enforcing with tracepoint-kill");
                Err(e.to_string())
            }
        }
    };
    let (measure, digests) = super::measure::start(&args.measure, &lsm, ebpf, hooks, btf);
    Ok(Chosen { measure, digests, ..decide(requested, tracepoint, lsm) })
}

/// The choice, from what each mechanism's probe found.
fn decide(requested: MechanismChoice, tracepoint: Result<(), String>, lsm: Result<(), String>) -> Chosen {
    let mechanism = match (&lsm, &tracepoint) {
        (Ok(()), _) => Ok("bpf-lsm"),
        (Err(_), Ok(())) if requested != MechanismChoice::BpfLsm => Ok("tracepoint-kill"),
        (Err(why), Ok(())) => Err(why.clone()),
        (Err(_), Err(why)) => Err(why.clone()),
    };
    let measure = Err("not tried".to_owned());
    Chosen { requested, mechanism, tracepoint, lsm, measure, digests: None }
}

impl Chosen {
    /// The `enforcement` part of the `ready` record.
    pub(crate) fn probe(&self) -> ProbeJson {
        let mut available = Vec::new();
        let mut unavailable = BTreeMap::new();
        for (name, state) in [("bpf-lsm", &self.lsm), ("tracepoint-kill", &self.tracepoint)] {
            match state {
                Ok(()) => available.push(name),
                Err(why) => {
                    unavailable.insert(name, why.clone());
                }
            }
        }
        ProbeJson {
            requested: self.requested.name(),
            mechanism: self.mechanism.as_ref().ok().copied(),
            available,
            unavailable,
            measure: super::measure::report(&self.measure),
        }
    }
}

/// Whether both tracepoint-kill programs are attached; else why not.
fn tracepoint_kill(hooks: &[HookOutcome]) -> Result<(), String> {
    for name in ["enforce_exec", "enforce_mmap"] {
        match hooks.iter().find(|h| h.name == name).map(|h| &h.state) {
            Some(HookState::Attached) => {}
            Some(HookState::Skipped(why)) => return Err(format!("hook {name} is not attached: {why}")),
            None => return Err(format!("hook {name} is missing from this build")),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "mechanism_tests.rs"]
mod tests;
