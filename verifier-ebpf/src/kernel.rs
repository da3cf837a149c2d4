//! Reading kernel memory at offsets resolved from BTF.

use aya_ebpf::helpers::bpf_probe_read_kernel;

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
pub fn read<T>(base: u64, offset: u32) -> Result<T, i64> {
    if base == 0 {
        return Err(-14); // -EFAULT: never dereference NULL
    }
    // SAFETY: bpf_probe_read_kernel validates the address; a bad one is an
    // error, not a fault.
    unsafe { bpf_probe_read_kernel((base + u64::from(offset)) as *const T) }.map_err(i64::from)
}

/// Reads a pointer-sized field at `base + offset`.
#[inline(always)]
pub fn read_ptr(base: u64, offset: u32) -> Result<u64, i64> {
    read::<u64>(base, offset)
}
