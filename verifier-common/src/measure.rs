//! In-kernel measurement: the SHA-256 of a file about to run in an
//! enforced container, computed by the kernel's IMA
//! (`bpf_ima_file_hash`, Linux 5.18+) from a sleepable BPF LSM program,
//! and compared with the digests the container may run.
//!
//! Identity (`ALLOWED`) says "this inode, unchanged since it was
//! verified"; it cannot see bytes changed without a visible identity
//! change or a watched write (host-side writes to a lower layer, a
//! rewrite within one ctime tick, a `WRITTEN` entry evicted). The digest
//! says "these bytes are bytes the SBOM lists", whatever the identity.
//!
//! Two maps, both written only by the agent:
//! - `ALLOWED_DIGESTS`: [`DigestKey`] (baseline slot, SHA-256) -> 1,
//!   filled by the same pre-verification that fills `ALLOWED`.
//! - `MEASURE_PROBE`: one [`MeasureProbe`]: the agent writes its own tgid,
//!   maps its own executable with `PROT_EXEC`, and the `mmap_file`
//!   program writes what IMA returned, so the agent knows at start that
//!   measurement works here (and with which algorithm).

/// [`DigestKey`] -> `u32` (always 1).
pub const MAP_ALLOWED_DIGESTS: &str = "ALLOWED_DIGESTS";
/// Array of one [`MeasureProbe`].
pub const MAP_MEASURE_PROBE: &str = "MEASURE_PROBE";
/// Digests remembered, over all enforced containers (preallocated: a
/// sleepable program may use only preallocated hash maps before 6.1).
pub const ALLOWED_DIGESTS_MAX: u32 = 65_536;

/// `HASH_ALGO_SHA256` (include/uapi/linux/hash_info.h): the only IMA
/// algorithm whose digests are compared.
pub const HASH_ALGO_SHA256: i64 = 4;

/// A digest a container of one baseline slot may run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DigestKey {
    pub sha256: [u8; 32],
    /// The container's baseline slot (`WATCHED`).
    pub slot: u32,
}

const _: () = assert!(size_of::<DigestKey>() == 36);

/// The start-up probe's exchange with the `mmap_file` program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeasureProbe {
    /// Written by the agent: the process whose executable mapping is
    /// measured (0: none).
    pub tgid: u32,
    /// Written by the program: 1 once it measured.
    pub done: u32,
    /// `bpf_ima_file_hash`'s return: the IMA hash algorithm (`HASH_ALGO_*`)
    /// or a negative errno.
    pub algo: i64,
    /// The first 32 bytes of the digest.
    pub digest: [u8; 32],
}

const _: () = assert!(size_of::<MeasureProbe>() == 48);

#[cfg(feature = "user")]
// SAFETY: plain-old-data, repr(C), every bit pattern valid, no padding.
unsafe impl aya::Pod for DigestKey {}
#[cfg(feature = "user")]
// SAFETY: as above.
unsafe impl aya::Pod for MeasureProbe {}

/// The name of an IMA hash algorithm number (`enum hash_algo`).
pub const fn ima_algo_name(algo: i64) -> &'static str {
    match algo {
        0 => "md4",
        1 => "md5",
        2 => "sha1",
        3 => "rmd160",
        4 => "sha256",
        5 => "sha384",
        6 => "sha512",
        7 => "sha224",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_key_layout_is_digest_then_slot() {
        let key = DigestKey { sha256: [7; 32], slot: 0x0102_0304 };
        // SAFETY: repr(C), 36 bytes, no padding (asserted above).
        let bytes: [u8; 36] = unsafe { core::mem::transmute(key) };
        assert_eq!(&bytes[..32], &[7; 32]);
        assert_eq!(&bytes[32..], &0x0102_0304u32.to_ne_bytes());
        assert_eq!(ima_algo_name(HASH_ALGO_SHA256), "sha256");
        assert_eq!(ima_algo_name(2), "sha1");
        assert_eq!(ima_algo_name(-95), "unknown");
    }
}
