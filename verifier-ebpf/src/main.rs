//! The verifier's kernel programs, one module per hook.
//!
//! Built by `verifier-sensor/build.rs` (aya-build) for `bpfel-unknown-none` and
//! embedded in the agent binary. Struct offsets are never compiled in: the
//! agent resolves them from BTF and writes them to [`maps::CONFIG`] before
//! loading.
//!
//! On any other target (e.g. `cargo clippy --workspace` on the host) the
//! crate builds to a stub `main` that says so.
#![cfg_attr(target_arch = "bpf", no_std, no_main)]

#[cfg(target_arch = "bpf")]
mod cgroup;
#[cfg(target_arch = "bpf")]
mod enforce;
#[cfg(target_arch = "bpf")]
mod exec;
#[cfg(target_arch = "bpf")]
mod kernel;
#[cfg(target_arch = "bpf")]
mod lsm;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod measure;
#[cfg(target_arch = "bpf")]
mod mmap;
#[cfg(target_arch = "bpf")]
mod mprotect;
#[cfg(target_arch = "bpf")]
mod throttle;
#[cfg(target_arch = "bpf")]
mod write;

#[cfg(not(target_arch = "bpf"))]
fn main() {
    eprintln!(
        "verifier-ebpf holds kernel programs: build it for bpfel-unknown-none (verifier-sensor/build.rs does)"
    );
}

/// GPL-compatible licence: the probe-read helpers are GPL-only.
#[cfg(target_arch = "bpf")]
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any program that can reach this loop, so a panic
    // path shows up as a load error, never as a hang.
    loop {}
}
