//! In-kernel measurement for enforced containers, where the kernel offers
//! it: on top of BPF LSM enforcement, the sleepable programs of
//! `verifier-ebpf/src/measure.rs` have IMA hash each file about to run
//! (`bpf_ima_file_hash`) and deny it unless its SHA-256 is one the
//! container's pre-verification allowed. Identity says "the inode that was
//! verified, unchanged as far as ctime and watched writes show"; the
//! digest says "bytes the SBOM lists", which also closes what identity
//! cannot see: a host-side change of a lower layer, a rewrite within one
//! ctime tick, a `WRITTEN` entry evicted.
//!
//! Tried only once `bpf-lsm` is the mechanism, and counted as active only
//! when the start-up probe proves it: the kernel's SHA-256 of the agent's
//! own executable equals the agent's own. Every failure is a reason in
//! the `ready` record (`enforcement.measure`), never a failed start.

use std::path::Path;

use aya::Ebpf;
use verifier_sbom::hash::{Algs, hash_reader};
use verifier_sensor::{
    hooks::HookOutcome,
    maps::EnforceMaps,
    measure::{self, DigestMap},
};

pub(crate) use crate::output::enforce::MeasureJson;

/// Options of `verifier agent` for in-kernel measurement.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MeasureArgs {
    /// Also measure files in the kernel at exec, where the kernel offers
    /// it (BPF LSM enforcing, `bpf_ima_file_hash`: Linux 5.18+ with IMA
    /// and its SHA-256 algorithm): each exec and executable mapping in an
    /// enforced container is hashed by the kernel and denied unless its
    /// SHA-256 is one of the container's pre-verified files, so the bytes
    /// that run are bytes the SBOM lists, whatever the file's identity.
    /// Off by default: without an IMA policy that measures executed files
    /// (`ima_policy=tcb`), which makes IMA keep each digest until the
    /// file changes, the kernel hashes the whole file at every exec and
    /// mapping in enforced containers; and a listed file too large to be
    /// pre-verified (`--max-hash-bytes`) is then denied. The `ready`
    /// record's `enforcement.measure` says whether it is active and, if
    /// not, why.
    #[arg(long = "enforce-measure")]
    pub enforce_measure: bool,
}

/// Starts measurement when `lsm` (BPF LSM enforcement) is attached.
/// Returns whether it is active (else why not) and, when it is, the
/// digest map to fill.
pub(crate) fn start(
    args: &MeasureArgs,
    lsm: &Result<(), String>,
    ebpf: &mut Ebpf,
    hooks: &mut Vec<HookOutcome>,
    btf: &Path,
) -> (Result<(), String>, Option<DigestMap>) {
    if let Err(why) = wanted(args, lsm) {
        return (Err(why), None);
    }
    let exe = Path::new("/proc/self/exe");
    let result = measure::attach(ebpf, btf, exe)
        .map_err(|e| e.to_string())
        .and_then(|(outcomes, map, m)| measure::check(&m, own_sha256(exe)).map(|()| (outcomes, map)));
    match result {
        Ok((outcomes, map)) => {
            hooks.extend(outcomes);
            tracing::info!("in-kernel measurement active (IMA, sha256)");
            (Ok(()), Some(map))
        }
        Err(why) => {
            measure::detach(ebpf);
            tracing::info!("in-kernel measurement unavailable: {why}");
            (Err(why), None)
        }
    }
}

/// Whether to try at all: not when told not to, nor without BPF LSM
/// enforcement (the programs need the same kernel support).
fn wanted(args: &MeasureArgs, lsm: &Result<(), String>) -> Result<(), String> {
    if !args.enforce_measure {
        return Err("not asked for (--enforce-measure)".into());
    }
    lsm.as_ref().map_err(|why| format!("needs bpf-lsm enforcement, which is not in use ({why})")).copied()
}

/// The agent's own SHA-256 of `path`.
fn own_sha256(path: &Path) -> Option<[u8; 32]> {
    let file = std::fs::File::open(path).ok()?;
    hash_reader(file, Algs::SHA256, &mut vec![0u8; 256 << 10]).ok()?.sha256
}

/// The `measure` part of the `ready` record's `enforcement`.
pub(crate) fn report(state: &Result<(), String>) -> MeasureJson {
    match state {
        Ok(()) => MeasureJson { active: true, algorithm: Some("sha256"), reason: None },
        Err(why) => MeasureJson { active: false, algorithm: None, reason: Some(why.clone()) },
    }
}

/// Allows a pre-verified container's digests (best effort: a digest that
/// cannot be inserted only means that file is denied by measurement, as
/// the warning says).
pub(crate) fn fill(maps: &mut EnforceMaps, slot: u32, digests: &[[u8; 32]]) {
    let Some(map) = maps.digests.as_mut() else { return };
    let failed = digests.iter().filter(|d| map.allow(slot, **d).is_err()).count();
    if failed > 0 {
        tracing::warn!(
            "{failed} of {} digests not allowed in the kernel (map full?): those files are denied by in-kernel measurement",
            digests.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_and_a_missing_lsm_are_reasons_not_failures() {
        let off = MeasureArgs { enforce_measure: false };
        let on = MeasureArgs { enforce_measure: true };
        let refused = Err("bpf is not in the kernel's active LSMs".to_owned());
        let j = report(&wanted(&off, &Ok(())));
        assert!(!j.active && j.reason.as_deref().is_some_and(|r| r.contains("--enforce-measure")), "{j:?}");
        let j = report(&wanted(&on, &refused));
        assert!(!j.active && j.reason.as_deref().is_some_and(|r| r.contains("active LSMs")), "{j:?}");
        assert_eq!(wanted(&on, &Ok(())), Ok(()));
        let j = report(&Ok(()));
        assert_eq!((j.active, j.algorithm, j.reason), (true, Some("sha256"), None));
    }

    #[test]
    fn own_executable_is_hashed() {
        let exe = Path::new("/proc/self/exe");
        let a = own_sha256(exe).expect("hash of the test binary");
        assert_eq!(Some(a), own_sha256(exe));
        assert_ne!(a, [0; 32]);
    }
}
