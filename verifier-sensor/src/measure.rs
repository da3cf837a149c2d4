//! In-kernel measurement: loads and attaches the sleepable BPF LSM
//! programs `measure_exec` / `measure_mmap` (`verifier-ebpf/src/measure.rs`)
//! and proves, before anything relies on them, that the kernel measures
//! here: the agent maps its own executable with `PROT_EXEC` and reads back
//! what `bpf_ima_file_hash` returned (the IMA hash algorithm and digest).
//!
//! Only tried once BPF LSM enforcement is attached (`crate::lsm`): the
//! programs need the same kernel support, and the `bpf_ima_file_hash`
//! helper (Linux 5.18+) with IMA compiled in. Any failure leaves nothing
//! attached and says why; it never stops the agent.

use std::{os::fd::AsRawFd as _, path::Path};

use aya::{
    Btf, Ebpf, Endianness,
    maps::{Array, HashMap, MapData},
    programs::Lsm,
};
use verifier_common::measure::{
    HASH_ALGO_SHA256, MAP_ALLOWED_DIGESTS, MAP_MEASURE_PROBE, MeasureProbe, ima_algo_name,
};

pub use crate::maps::DigestMap;
use crate::{
    hooks::{HookOutcome, HookState},
    lsm::chain,
};

/// (program in the object, LSM hook).
pub const MEASURE_PROGRAMS: [(&str, &str); 2] =
    [("measure_exec", "bprm_check_security"), ("measure_mmap", "mmap_file")];

/// Why in-kernel measurement is not active.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot read the kernel's BTF at {path}: {detail}")]
    Btf { path: String, detail: String },
    #[error("program or map {0} is missing from the eBPF object (rebuild the agent)")]
    Missing(&'static str),
    #[error("the kernel refused {program} ({hook}) at {step}: {hint} ({detail})")]
    Refused { program: &'static str, hook: &'static str, step: &'static str, detail: String, hint: String },
    #[error("probe: {0}")]
    Probe(String),
}

/// What the start-up probe measured: the agent's own executable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// IMA's hash algorithm (`HASH_ALGO_*`) or a negative errno.
    pub algo: i64,
    pub digest: [u8; 32],
}

/// Loads and attaches both programs and runs the probe on `exe` (the
/// agent's own executable); on any failure none stays attached.
/// `Ok` holds the hooks for the `ready` record, the digest map and what the
/// probe measured (the caller checks algorithm and digest).
pub fn attach(
    ebpf: &mut Ebpf,
    btf_path: &Path,
    exe: &Path,
) -> Result<(Vec<HookOutcome>, DigestMap, Measured), MeasureError> {
    let result = try_attach(ebpf, btf_path, exe);
    if result.is_err() {
        detach(ebpf);
    }
    result
}

/// Unloads both programs (their links go with them).
pub fn detach(ebpf: &mut Ebpf) {
    for (program, _) in MEASURE_PROGRAMS {
        if let Some(p) = ebpf.program_mut(program)
            && let Ok(p) = <&mut Lsm>::try_from(p)
        {
            let _ = p.unload();
        }
    }
}

fn try_attach(
    ebpf: &mut Ebpf,
    btf_path: &Path,
    exe: &Path,
) -> Result<(Vec<HookOutcome>, DigestMap, Measured), MeasureError> {
    let btf = Btf::parse_file(btf_path, Endianness::default())
        .map_err(|e| MeasureError::Btf { path: btf_path.display().to_string(), detail: chain(&e) })?;
    let mut outcomes = Vec::new();
    for (program, hook) in MEASURE_PROGRAMS {
        let p = ebpf.program_mut(program).ok_or(MeasureError::Missing(program))?;
        let p: &mut Lsm = p.try_into().map_err(|_| MeasureError::Missing(program))?;
        let refused = |step, e: &aya::programs::ProgramError| {
            let detail = chain(e);
            MeasureError::Refused {
                program,
                hook,
                step,
                hint: hint(&detail),
                detail: verifier_words(&detail),
            }
        };
        p.load(hook, &btf).map_err(|e| refused("load", &e))?;
        p.attach().map_err(|e| refused("attach", &e))?;
        outcomes.push(HookOutcome {
            name: program,
            attach: format!("lsm.s/{hook}"),
            required: false,
            state: HookState::Attached,
        });
    }
    let measured = probe(ebpf, exe)?;
    let map = ebpf.take_map(MAP_ALLOWED_DIGESTS).ok_or(MeasureError::Missing(MAP_ALLOWED_DIGESTS))?;
    let map =
        HashMap::try_from(map).map_err(|e| MeasureError::Probe(format!("{MAP_ALLOWED_DIGESTS}: {e}")))?;
    Ok((outcomes, DigestMap(map), measured))
}

/// Maps `exe` executable in this process and reads what the `mmap_file`
/// program measured.
fn probe(ebpf: &mut Ebpf, exe: &Path) -> Result<Measured, MeasureError> {
    let map = ebpf.map_mut(MAP_MEASURE_PROBE).ok_or(MeasureError::Missing(MAP_MEASURE_PROBE))?;
    let mut probe: Array<&mut MapData, MeasureProbe> =
        Array::try_from(map).map_err(|e| MeasureError::Probe(format!("{MAP_MEASURE_PROBE}: {e}")))?;
    let ask = MeasureProbe { tgid: std::process::id(), ..MeasureProbe::default() };
    probe.set(0, ask, 0).map_err(|e| MeasureError::Probe(format!("writing {MAP_MEASURE_PROBE}: {e}")))?;
    let mapped = map_exec(exe);
    let answer =
        probe.get(&0, 0).map_err(|e| MeasureError::Probe(format!("reading {MAP_MEASURE_PROBE}: {e}")));
    let _ = probe.set(0, MeasureProbe::default(), 0);
    mapped?;
    let answer = answer?;
    if answer.done == 0 {
        return Err(MeasureError::Probe(format!(
            "mapping {} executable did not reach the mmap_file program (is bpf an active LSM?)",
            exe.display()
        )));
    }
    Ok(Measured { algo: answer.algo, digest: answer.digest })
}

/// `mmap(PROT_READ | PROT_EXEC)` of the first page of `path`, unmapped at once.
fn map_exec(path: &Path) -> Result<(), MeasureError> {
    let file = std::fs::File::open(path)
        .map_err(|e| MeasureError::Probe(format!("opening {}: {e}", path.display())))?;
    let len = 4096;
    // SAFETY: a fresh private read-only mapping nothing else refers to;
    // it is never read and is unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        return Err(MeasureError::Probe(format!("mapping {} executable: {e}", path.display())));
    }
    // SAFETY: the mapping made above, of `len` bytes.
    unsafe { libc::munmap(addr, len) };
    Ok(())
}

/// Whether what the probe measured is usable: SHA-256 and equal to
/// `expected` (the agent's own SHA-256 of the same file); else why not,
/// with what to do.
pub fn check(measured: &Measured, expected: Option<[u8; 32]>) -> Result<(), String> {
    match measured.algo {
        HASH_ALGO_SHA256 => {}
        algo if algo < 0 => {
            return Err(format!(
                "bpf_ima_file_hash failed ({}): the kernel's IMA cannot hash files here",
                std::io::Error::from_raw_os_error((-algo) as i32)
            ));
        }
        algo => {
            return Err(format!(
                "the IMA hash algorithm is {}: boot with ima_hash=sha256",
                ima_algo_name(algo)
            ));
        }
    }
    match expected {
        Some(e) if e == measured.digest => Ok(()),
        Some(_) => Err("the kernel's SHA-256 of the agent's executable differs from the agent's own".into()),
        None => Err("the agent could not hash its own executable to check the kernel's measurement".into()),
    }
}

/// What to do about a refused load or attach, from the kernel's words.
fn hint(detail: &str) -> String {
    if detail.contains("unknown func") || detail.contains("invalid func") {
        "bpf_ima_file_hash needs Linux 5.18+".into()
    } else if detail.contains("Sleepable programs can only use") {
        "sleepable programs here cannot use the maps measurement needs (and bpf_ima_file_hash needs Linux 5.18+)".into()
    } else if detail.contains("sleepable") {
        "the kernel does not allow a sleepable BPF LSM program on this hook (bpf_ima_file_hash needs Linux 5.18+)".into()
    } else if let Err(why) = crate::lsm::active_lsms(false) {
        why
    } else {
        "see the kernel verifier's words".into()
    }
}

/// The last words of a verifier log that say why (its closing statistics
/// left out).
fn verifier_words(detail: &str) -> String {
    let stats = ["verification time", "stack depth", "processed "];
    let lines: Vec<&str> = detail
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !stats.iter().any(|s| l.starts_with(s)))
        .collect();
    lines[lines.len().saturating_sub(3)..].join(" | ")
}

#[cfg(test)]
#[path = "measure_tests.rs"]
mod tests;
