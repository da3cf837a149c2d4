//! Kernel struct offsets from BTF.
//!
//! The exec program reads `task_struct`, `mm_struct`, `file`, `inode`, ...
//! at offsets that differ between kernel builds and change between kernel
//! versions (the inode ctime became `i_ctime_sec`/`i_ctime_nsec` in 6.11, for
//! one). Hard-coding them would silently read garbage on the next kernel, so
//! the agent reads the running kernel's own type information
//! (`/sys/kernel/btf/vmlinux`) at start-up and hands the offsets to the
//! program. A kernel without BTF, or without one of the fields, is a clear
//! error at start, naming the field.
//!
//! [`parse`] is a small reader of the BTF wire format (see the kernel's
//! `Documentation/bpf/btf.rst`); [`offsets`] turns it into
//! [`verifier_common::offsets::KernelOffsets`].

pub mod offsets;
mod parse;

pub use parse::{Btf, BtfError, Member};

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[cfg(test)]
mod tests;
