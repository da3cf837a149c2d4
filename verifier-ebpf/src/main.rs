//! The verifier's kernel programs, one module per hook.
//!
//! Built by `verifier-user/build.rs` (aya-build) for `bpfel-unknown-none` and
//! embedded in the agent binary. Struct offsets are never compiled in: the
//! agent resolves them from BTF and writes them to [`maps::CONFIG`] before
//! loading.
#![no_std]
#![no_main]

mod exec;
mod kernel;
mod maps;

/// GPL-compatible licence: the probe-read helpers are GPL-only.
#[unsafe(no_mangle)]
#[unsafe(link_section = "license")]
pub static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    // The verifier rejects any program that can reach this loop, so a panic
    // path shows up as a load error, never as a hang.
    loop {}
}
