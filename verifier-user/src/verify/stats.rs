//! The verification counters of the stats record (`stats.verify`): what
//! the engine decided, what the container baselines did, and the kernel
//! fast path fed from both. Kept here, beside what it counts, so that the
//! records that report it (`output`) need nothing above `verify`.

use super::{containers::ContainerStats, engine::VerifyStats};

/// `stats.verify`.
#[derive(Clone, Debug, serde::Serialize)]
pub(crate) struct VerificationStats {
    #[serde(flatten)]
    pub engine: VerifyStats,
    #[serde(flatten)]
    pub containers: ContainerStats,
    /// Execs waiting for hashing or for their container.
    pub in_flight: u64,
    /// Files proven good and handed to the kernel's fast path.
    pub fast_path_inserted: u64,
    /// Fast-path map updates that failed (those execs are then verified
    /// in userspace each time).
    pub fast_path_errors: u64,
}
