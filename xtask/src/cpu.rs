//! CPU accounting for the overhead benchmarks: where the CPU of an exec
//! storm goes, read from the kernel's own counters before and after it.
//!
//! Wall-clock exec rates on a shared 2-core VM swing by 10-20% from one
//! round to the next (the hypervisor and the other tenants decide when we
//! run), far more than the 2% the targets ask to resolve. CPU time charged
//! to the work is much less sensitive to when it ran, so the benchmarks
//! print, beside the wall-clock rates, three CPU figures per storm:
//!
//! - **the container's CPU**: the container's cgroup counter (cgroup v2
//!   `cpu.stat` `usage_usec`, or v1 `cpuacct.usage` on a hybrid host),
//!   found from `/proc/<container init>/cgroup`. eBPF programs run in the
//!   context of the task that execs, so their cost is in this number;
//! - **a process's CPU** (the agent, nats-server): the sum over its
//!   threads of `/proc/<pid>/task/<tid>/schedstat` (ns; a thread that
//!   exits between the two readings loses its share since the first);
//!   `/proc/<pid>/stat` ticks (10 ms) only if schedstat is missing;
//! - **the eBPF programs' own run time**: with `kernel.bpf_stats_enabled`
//!   on (see [`BpfStatsOn`]), `run_time_ns` and `run_cnt` per program from
//!   `bpftool prog show --json`; the programs that belong to a process are
//!   those whose ids its fds hold (`/proc/<pid>/fdinfo/*`, `prog_id:`).
//!   Programs of anybody else (another agent on the machine) are summed
//!   apart: their cost also lands in the container's CPU, so a reader must
//!   know when there were any.
//!
//! BPF stats cost two clock reads per program run, paid in every mode that
//! runs programs; the mode without an agent runs none. The programs' run
//! time counts every run in the window, also those that other processes
//! on the machine trigger (a compiler's `openat`s): on a busy machine it
//! overstates the storm's share a little, the same for every agent mode.
//!
//! Whole-CPU figures are tighter than wall clock but still move with the
//! load (CPU time per exec grows when other tenants share the caches);
//! the eBPF run time and the agent's CPU are the costs the kernel charges
//! to the agent by name, and the tightest way to compare two agent modes.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// `kernel.bpf_stats_enabled` on while this lives; the previous value is
/// written back when it drops (also when the benchmark fails part-way).
pub(crate) struct BpfStatsOn {
    old: String,
}

impl BpfStatsOn {
    pub(crate) fn enable() -> anyhow::Result<Self> {
        let old = std::fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}: this kernel has no BPF run-time statistics"))?;
        std::fs::write(BPF_STATS, "1").with_context(|| format!("writing 1 to {BPF_STATS}: run as root"))?;
        Ok(Self { old: old.trim().to_owned() })
    }
}

impl Drop for BpfStatsOn {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.old);
    }
}

/// The CPU counter of a process's cgroup.
#[derive(Clone, Debug)]
pub(crate) struct CgroupCpu {
    file: PathBuf,
    /// `cpu.stat` (us) rather than v1 `cpuacct.usage` (ns).
    v2: bool,
}

impl CgroupCpu {
    /// The cgroup of `pid`: its v2 cgroup when it has one below the root
    /// with `cpu.stat`, else its v1 `cpuacct` cgroup.
    pub(crate) fn of(pid: u32) -> anyhow::Result<Self> {
        let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .with_context(|| format!("reading /proc/{pid}/cgroup: is the container running?"))?;
        let mounts =
            std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
        // mountinfo: id parent dev root mountpoint opts... - fstype source superopts
        let mount_of = |wanted: &dyn Fn(&str, &str) -> bool| {
            mounts.lines().find_map(|l| {
                let (left, right) = l.split_once(" - ")?;
                let point = left.split_whitespace().nth(4)?;
                let mut r = right.split_whitespace();
                let (fstype, superopts) = (r.next()?, r.nth(1)?);
                wanted(fstype, superopts).then(|| PathBuf::from(point))
            })
        };
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
            if id != "0" || !ctrls.is_empty() || path == "/" {
                continue;
            }
            if let Some(mnt) = mount_of(&|t, _| t == "cgroup2") {
                let file = join(&mnt, path).join("cpu.stat");
                if read_v2(&file).is_ok() {
                    return Ok(Self { file, v2: true });
                }
            }
        }
        for line in own.lines() {
            let mut f = line.splitn(3, ':');
            let (Some(_), Some(ctrls), Some(path)) = (f.next(), f.next(), f.next()) else { continue };
            if ctrls.split(',').any(|c| c == "cpuacct") {
                let mnt = mount_of(&|t, o| t == "cgroup" && o.split(',').any(|c| c == "cpuacct"))
                    .context("no cgroup v1 cpuacct mount in /proc/self/mountinfo")?;
                return Ok(Self { file: join(&mnt, path).join("cpuacct.usage"), v2: false });
            }
        }
        bail!("pid {pid} has neither a cgroup v2 cpu.stat nor a v1 cpuacct cgroup: {own}")
    }

    /// CPU used by the cgroup so far, in ns.
    pub(crate) fn ns(&self) -> anyhow::Result<u64> {
        if self.v2 {
            return read_v2(&self.file);
        }
        let text = std::fs::read_to_string(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))?;
        text.trim().parse().with_context(|| format!("{}: not a number: {text}", self.file.display()))
    }
}

fn join(mount: &Path, cgroup: &str) -> PathBuf {
    mount.join(cgroup.trim_start_matches('/'))
}

fn read_v2(file: &Path) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let usec = text
        .lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .with_context(|| format!("{} has no usage_usec", file.display()))?;
    Ok(usec.trim().parse::<u64>()? * 1000)
}

/// CPU time of each thread of a process so far (ns by tid).
#[derive(Clone, Debug, Default)]
pub(crate) struct Threads(BTreeMap<u32, u64>);

impl Threads {
    /// The threads of `pid` (empty when it has gone).
    pub(crate) fn of(pid: u32) -> Self {
        let mut map = BTreeMap::new();
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in tasks.flatten() {
                let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else { continue };
                let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
                if let Some(ns) = stat.split_whitespace().next().and_then(|v| v.parse().ok()) {
                    map.insert(tid, ns);
                }
            }
        }
        if map.is_empty() {
            // No schedstat: utime + stime, kept under tid 0.
            map.insert(0, stat_ns(&format!("/proc/{pid}/stat"), 2));
        }
        Self(map)
    }

    /// CPU used since `before`, in ns.
    pub(crate) fn since(&self, before: &Self) -> u64 {
        self.0.iter().map(|(tid, ns)| ns.saturating_sub(before.0.get(tid).copied().unwrap_or(0))).sum()
    }
}

/// The sum of the first `fields` of utime, stime, cutime, cstime (fields
/// 14-17 of a `/proc/<pid>/stat` line), in ns: USER_HZ ticks, 100 a second
/// on every Linux this runs on. 0 when unreadable.
fn stat_ns(file: &str, fields: usize) -> u64 {
    let stat = std::fs::read_to_string(file).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else { return 0 };
    // Fields after the command (which may hold spaces) start at the 3rd.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 =
        f.get(11..11 + fields).map_or(0, |f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum());
    ticks * 10_000_000
}

/// Where the workload's CPU is read.
#[derive(Clone, Debug)]
pub(crate) enum Workload {
    /// A container: its cgroup.
    Cgroup(CgroupCpu),
    /// This process and the children it has waited for (a storm run by
    /// its own threads): `/proc/self/stat`, 10 ms ticks, enough for
    /// seconds-long storms.
    SelfAndChildren,
}

impl Workload {
    fn ns(&self) -> anyhow::Result<u64> {
        match self {
            Self::Cgroup(c) => c.ns(),
            Self::SelfAndChildren => Ok(stat_ns("/proc/self/stat", 4)),
        }
    }
}

/// Run time and run count of eBPF programs.
#[derive(Clone, Debug, Default)]
pub(crate) struct BpfRuns {
    /// The owner's programs: name -> (run_time_ns, run_cnt).
    pub(crate) by_name: BTreeMap<String, (u64, u64)>,
    /// Every other program on the machine, run time in ns.
    pub(crate) others_ns: u64,
}

impl BpfRuns {
    /// All programs now, those held by `owner`'s fds apart (none: all are
    /// others).
    pub(crate) fn read(owner: Option<u32>) -> anyhow::Result<Self> {
        let out = Command::new("bpftool")
            .args(["prog", "show", "--json"])
            .output()
            .context("running bpftool (installed by `cargo xtask setup`)")?;
        if !out.status.success() {
            bail!("bpftool prog show failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        let progs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).context("bpftool's JSON")?;
        let owned = owner.map(owned_prog_ids).unwrap_or_default();
        let mut runs = Self::default();
        for p in progs {
            let ns = p["run_time_ns"].as_u64().unwrap_or(0);
            let id = p["id"].as_u64().unwrap_or(0);
            if owned.contains(&id) {
                let name = p["name"].as_str().unwrap_or("?").to_owned();
                let e = runs.by_name.entry(name).or_default();
                e.0 += ns;
                e.1 += p["run_cnt"].as_u64().unwrap_or(0);
            } else {
                runs.others_ns += ns;
            }
        }
        Ok(runs)
    }

    /// What ran since `before`.
    pub(crate) fn since(&self, before: &Self) -> Self {
        let by_name = self
            .by_name
            .iter()
            .map(|(name, &(ns, cnt))| {
                let (ns0, cnt0) = before.by_name.get(name).copied().unwrap_or_default();
                (name.clone(), (ns.saturating_sub(ns0), cnt.saturating_sub(cnt0)))
            })
            .collect();
        Self { by_name, others_ns: self.others_ns.saturating_sub(before.others_ns) }
    }

    /// Run time of the owner's programs, ns.
    pub(crate) fn total_ns(&self) -> u64 {
        self.by_name.values().map(|v| v.0).sum()
    }
}

/// Ids of the eBPF programs a process holds (program and link fds).
fn owned_prog_ids(pid: u32) -> BTreeSet<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else { return BTreeSet::new() };
    fds.flatten()
        .filter_map(|fd| std::fs::read_to_string(fd.path()).ok())
        .filter_map(|info| info.lines().find_map(|l| l.strip_prefix("prog_id:")?.trim().parse().ok()))
        .collect()
}

/// What a benchmark run reads: the workload, and the agent and server
/// processes when there are.
#[derive(Clone, Debug)]
pub(crate) struct Meter {
    pub(crate) workload: Workload,
    pub(crate) agent: Option<u32>,
    pub(crate) server: Option<u32>,
}

/// CPU used during one measured stretch, in ns.
#[derive(Clone, Debug, Default)]
pub(crate) struct Usage {
    /// The workload's (the container's).
    pub(crate) container: u64,
    pub(crate) agent: u64,
    pub(crate) server: u64,
    pub(crate) bpf: BpfRuns,
}

impl Usage {
    /// Container plus agent CPU per exec, in us (the node's cost; a
    /// benchmark's local nats-server is apart).
    pub(crate) fn us_per_exec(&self, execs: impl Into<u64>) -> f64 {
        (self.container + self.agent) as f64 / 1000.0 / execs.into().max(1) as f64
    }
}

impl Meter {
    /// Runs `f`, reading every counter just before and just after it.
    pub(crate) fn measure<T>(&self, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, Usage)> {
        let bpf0 = BpfRuns::read(self.agent)?;
        let (agent0, server0) = (self.agent.map(Threads::of), self.server.map(Threads::of));
        let container0 = self.workload.ns()?;
        let value = f()?;
        let container = self.workload.ns()?.saturating_sub(container0);
        let agent = self.agent.map(Threads::of).zip(agent0).map_or(0, |(a, b)| a.since(&b));
        let server = self.server.map(Threads::of).zip(server0).map_or(0, |(a, b)| a.since(&b));
        let bpf = BpfRuns::read(self.agent)?.since(&bpf0);
        Ok((value, Usage { container, agent, server, bpf }))
    }
}

/// `total ns (name ns xcount, ...)` per exec of the owner's programs,
/// over `(usage, execs)` storms.
pub(crate) fn bpf_per_exec<'a>(usages: impl Iterator<Item = (&'a Usage, u64)>) -> String {
    let mut by_name = BTreeMap::<&str, (u64, u64)>::new();
    let mut n = 0u64;
    for (u, execs) in usages {
        n += execs;
        for (name, (ns, cnt)) in &u.bpf.by_name {
            let e = by_name.entry(name).or_default();
            e.0 += ns;
            e.1 += cnt;
        }
    }
    let n = n.max(1) as f64;
    let total: u64 = by_name.values().map(|v| v.0).sum();
    let parts: Vec<String> = by_name
        .iter()
        .filter(|(_, (_, cnt))| *cnt > 0)
        .map(|(name, (ns, cnt))| format!("{name} {:.0} ns x{:.2}", *ns as f64 / n, *cnt as f64 / n))
        .collect();
    format!("{:.0} ns ({})", total as f64 / n, parts.join(", "))
}

/// Median, min and max (zeros for none).
pub(crate) fn spread(v: &[f64]) -> (f64, f64, f64) {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    (median, v.first().copied().unwrap_or(0.0), v.last().copied().unwrap_or(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_deltas_count_new_threads_whole_and_never_go_negative() {
        let before = Threads(BTreeMap::from([(1, 100), (2, 50)]));
        let after = Threads(BTreeMap::from([(1, 130), (3, 7)]));
        assert_eq!(after.since(&before), 37);
    }

    #[test]
    fn our_own_process_uses_cpu() {
        let before = Threads::of(std::process::id());
        let mut x = 0u64;
        for i in 0..3_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(Threads::of(std::process::id()).since(&before) > 0);
    }

    #[test]
    fn spread_gives_median_and_range() {
        assert_eq!(spread(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(spread(&[]), (0.0, 0.0, 0.0));
    }
}
