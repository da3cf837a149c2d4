//! Shared pieces of the root integration tests, the demo and the
//! benchmarks: a busybox OCI bundle (and test images with SBOMs), a runc driver, the agent as a child
//! process, and an exec storm. Everything here is real: the kernel loads the
//! real programs, runc runs real containers.

pub mod agent;
pub mod agent_image;
pub mod build;
pub mod bundle;
pub mod containerd;
pub mod deb;
pub mod distroless;
pub mod dropped;
pub mod enforce;
pub mod evasion;
pub mod fault;
pub mod http;
pub mod image;
pub mod nats;
pub mod pod;
pub mod real_image;
pub mod real_run;
pub mod registry;
pub mod runc;
pub mod schemas;
pub mod storm;

/// Skips the calling test (with the reason on stderr) unless running as
/// root: the integration tier loads eBPF and runs containers.
#[macro_export]
macro_rules! require_root {
    () => {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: needs root (loads eBPF programs, runs runc)");
            return;
        }
    };
}

/// One lock for tests that watch every exec on the machine: they must not
/// see each other's storms.
pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
