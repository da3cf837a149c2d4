//! How many entries the kernel maps of optional features get at load.
//!
//! Every hash and LRU map of the object is preallocated: the kernel
//! allocates all `max_entries` elements when the map is created, whether
//! or not anything is ever stored, and since Linux 5.11 charges them to
//! the loading process's memory cgroup, so a DaemonSet's memory limit
//! pays for them. The maps must exist (the programs reference them), but
//! those of a feature the agent will not use are created with one entry:
//!
//! | feature (off when) | maps | full size (MiB) |
//! | --- | --- | --- |
//! | verification (no `--sbom*`, no host baseline) | `WATCHED`, `VERIFIED`, `VERIFIED_INODES`, `WRITTEN` | 1.25 + 7.0 + 5.5 + 5.5 |
//! | enforcement (no `--enforce*`, no enforcing policy) | `ENFORCE`, `ALLOWED` | 0.3 + 14.0 |
//! | measurement (no `--enforce-measure`, or no enforcement) | `ALLOWED_DIGESTS` | 7.0 |
//! | throttle (`--exec-limit 0`) | `THROTTLE`, `THROTTLE_SUPPRESSED`, `THROTTLE_NEW` | 1.6 + 1.75 + 1.75 |
//!
//! Measured (Linux 6.18, 2 CPUs; `tests/tests/map_sizes.rs` prints it):
//! `verifier agent --containers-only` with default flags held 47.7 MiB of
//! maps (sum of `bytes_memlock` in `bpftool map show`) before this sizing,
//! 7.2 MiB after (the throttle maps and the 2 MiB ring buffer remain). Its
//! memory cgroup was charged 9.0 MiB, against 51.5 MiB for an agent with
//! every map full (`--sbom`, `--enforce`, `--enforce-measure`). With a
//! feature on, its maps keep their full size: nothing changes for it.
//!
//! A feature off here must stay off for the agent's whole run: the kernel
//! programs of a 1-entry map keep working (a lookup misses, an insert
//! fails or evicts), but nothing could be remembered in it.

use verifier_common::{
    enforce::{ALLOWED_MAX, ENFORCE_MAX, MAP_ALLOWED, MAP_ENFORCE},
    fastpath::{
        MAP_VERIFIED, MAP_VERIFIED_INODES, MAP_WATCHED, MAP_WRITTEN, VERIFIED_MAX, WATCHED_MAX, WRITTEN_MAX,
    },
    measure::{ALLOWED_DIGESTS_MAX, MAP_ALLOWED_DIGESTS},
    throttle::{MAP_THROTTLE, MAP_THROTTLE_NEW, MAP_THROTTLE_SUPPRESSED, THROTTLE_MAX, THROTTLE_NEW_MAX},
};

/// Which optional features get their maps in full. The throttle's follow
/// from [`crate::loader::LoadOptions::exec_limit`] (0: never throttled).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// Containers are verified against baselines (the fast path and the
    /// write-open tracking).
    pub verification: bool,
    /// Some container may be enforced (blocked or dry-run).
    pub enforcement: bool,
    /// In-kernel measurement may be tried (`--enforce-measure`).
    pub measurement: bool,
}

impl MapSizes {
    /// Every map at its full size.
    pub const FULL: Self = Self { verification: true, enforcement: true, measurement: true };

    /// `(map, max_entries)` for every map of an optional feature, as this
    /// load creates it: its full size when the feature is on, else 1.
    pub fn max_entries(&self, exec_limit: u32) -> Vec<(&'static str, u32)> {
        let throttle = exec_limit != 0;
        let groups: [(bool, &[(&'static str, u32)]); 4] = [
            (
                self.verification,
                &[
                    (MAP_WATCHED, WATCHED_MAX),
                    (MAP_VERIFIED, VERIFIED_MAX),
                    (MAP_VERIFIED_INODES, VERIFIED_MAX),
                    (MAP_WRITTEN, WRITTEN_MAX),
                ],
            ),
            (self.enforcement, &[(MAP_ENFORCE, ENFORCE_MAX), (MAP_ALLOWED, ALLOWED_MAX)]),
            (self.measurement && self.enforcement, &[(MAP_ALLOWED_DIGESTS, ALLOWED_DIGESTS_MAX)]),
            (
                throttle,
                &[
                    (MAP_THROTTLE, THROTTLE_MAX),
                    (MAP_THROTTLE_SUPPRESSED, THROTTLE_MAX),
                    (MAP_THROTTLE_NEW, THROTTLE_NEW_MAX),
                ],
            ),
        ];
        groups
            .into_iter()
            .flat_map(|(on, maps)| maps.iter().map(move |&(name, full)| (name, if on { full } else { 1 })))
            .collect()
    }
}

impl Default for MapSizes {
    fn default() -> Self {
        Self::FULL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(sizes: MapSizes, exec_limit: u32, name: &str) -> u32 {
        let all = sizes.max_entries(exec_limit);
        let found: Vec<u32> = all.iter().filter(|(n, _)| *n == name).map(|&(_, m)| m).collect();
        assert_eq!(found.len(), 1, "{name} listed once in {all:?}");
        found[0]
    }

    #[test]
    fn full_keeps_every_declared_size() {
        for (name, max) in MapSizes::FULL.max_entries(5_000) {
            assert!(max > 1, "{name} is sized {max} with every feature on");
        }
        assert_eq!(size(MapSizes::FULL, 1, MAP_ALLOWED_DIGESTS), ALLOWED_DIGESTS_MAX);
        assert_eq!(size(MapSizes::FULL, 1, MAP_ALLOWED), ALLOWED_MAX);
    }

    #[test]
    fn a_feature_off_shrinks_only_its_own_maps() {
        let no_measure = MapSizes { measurement: false, ..MapSizes::FULL };
        assert_eq!(size(no_measure, 1, MAP_ALLOWED_DIGESTS), 1);
        assert_eq!(size(no_measure, 1, MAP_ALLOWED), ALLOWED_MAX);
        assert_eq!(size(no_measure, 1, MAP_WRITTEN), WRITTEN_MAX);

        let observe = MapSizes { verification: false, enforcement: false, measurement: false };
        for name in [MAP_WATCHED, MAP_VERIFIED, MAP_VERIFIED_INODES, MAP_WRITTEN, MAP_ENFORCE, MAP_ALLOWED] {
            assert_eq!(size(observe, 1, name), 1, "{name}");
        }
        assert_eq!(size(observe, 1, MAP_THROTTLE), THROTTLE_MAX, "throttling is on");
        assert_eq!(size(observe, 0, MAP_THROTTLE_NEW), 1, "exec limit 0 never throttles");
    }

    #[test]
    fn measurement_needs_enforcement() {
        let sizes = MapSizes { verification: true, enforcement: false, measurement: true };
        assert_eq!(size(sizes, 1, MAP_ALLOWED_DIGESTS), 1);
    }
}
