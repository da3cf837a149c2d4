//! Pre-verification: the files an enforced container may run, judged
//! before it runs them.
//!
//! Why: enforcement decides in the kernel, at the exec, with no time to
//! ask userspace. A file the kernel does not know as allowed is killed,
//! so the legitimate files must be known before the workload runs them.
//! When an enforced container is resolved, every path its SBOM lists that
//! can be code (an executable bit, or `.so` in the name: shared libraries
//! and the dynamic loader) is opened beneath the container's root, hashed
//! and judged with the same verdict policy as an exec
//! ([`super::verdict::judge`]). Each file whose verdict is not one the
//! operator blocks is allowed by its identity (device, inode, size,
//! ctime: what the kernel compares); the rest are named in the result.
//!
//! What it proves: what the agent hashed is what the identity names at
//! that moment; a later write moves ctime (and is in the kernel's
//! `WRITTEN` map), so the allowed identity no longer matches. A file is
//! hashed once even when listed under several paths (merged `/usr`).
//! Runs on a blocking thread, two hashing threads; cost is measured and
//! reported with the result.

use std::{
    collections::HashSet,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _},
    sync::Mutex,
    time::{Duration, Instant},
};

use verifier_common::event::FileIdentity;
use verifier_sbom::{digest, hash::hash_reader};
use verifier_sensor::events::identity_of;

use super::{
    engine::Context,
    verdict::{self, Verdict},
};

/// What pre-verification found in one container.
#[derive(Debug, Default)]
pub(crate) struct PreVerified {
    /// Identities the container may run or map as code.
    pub allowed: Vec<FileIdentity>,
    /// Of those, the files judged `ok`: (identity, path, SHA-256), for the
    /// kernel fast path.
    pub ok: Vec<(FileIdentity, String, Option<[u8; 32]>)>,
    /// SHA-256 of every allowed file that was hashed (in-kernel measurement
    /// compares against these).
    pub digests: Vec<[u8; 32]>,
    /// Candidate files not allowed: (path, verdict, reason).
    pub refused: Vec<(String, Verdict, String)>,
    /// Paths the SBOM lists.
    pub listed: usize,
    /// Of those, regular files that can be code (hashed once per identity).
    pub candidates: usize,
    /// Bytes hashed.
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Threads hashing one container's candidates.
const THREADS: usize = 2;

/// Judges `ctx`'s candidate files; `blocks(verdict)` says which verdicts
/// keep a file out. Files over `max_bytes` are judged unhashed.
pub(crate) fn preverify(
    ctx: &Context,
    blocks: &(dyn Fn(Verdict) -> bool + Sync),
    max_bytes: u64,
) -> PreVerified {
    let started = Instant::now();
    let mut result = PreVerified::default();
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for (path, _) in ctx.manifest.files() {
        result.listed += 1;
        let rel = path.strip_prefix('/').unwrap_or(path);
        let Ok(file) = ctx.root.open_read(rel.as_bytes()) else { continue };
        let Ok(meta) = file.metadata() else { continue };
        let library = path.contains(".so");
        if !meta.is_file() || (meta.permissions().mode() & 0o111 == 0 && !library) {
            continue;
        }
        if seen.insert((meta.dev(), meta.ino())) {
            candidates.push((path.to_owned(), file, library));
        }
    }
    result.candidates = candidates.len();
    let shared = Mutex::new(result);
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                let mut buf = vec![0u8; 256 << 10];
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((path, file, library)) = candidates.get(i) else { break };
                    let judged = judge_one(ctx, path, file, max_bytes, &mut buf);
                    let mut r = shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    match judged {
                        Ok((identity, j, bytes, sha256)) => {
                            r.bytes += bytes;
                            if j.verdict == Verdict::Ok {
                                r.ok.push((identity, path.clone(), sha256));
                            }
                            let as_code = if *library && j.verdict != Verdict::Ok {
                                Verdict::LibraryDrift
                            } else {
                                j.verdict
                            };
                            if j.verdict == Verdict::Ok || !(blocks(j.verdict) || blocks(as_code)) {
                                r.allowed.push(identity);
                                r.digests.extend(sha256);
                            } else {
                                r.refused.push((path.clone(), j.verdict, j.reason));
                            }
                        }
                        Err(why) => r.refused.push((path.clone(), Verdict::Unverifiable, why)),
                    }
                }
            });
        }
    });
    let mut result = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    result.elapsed = started.elapsed();
    result
}

/// One file judged: its identity, judgement, bytes read and SHA-256.
type Judged = (FileIdentity, verdict::Judgement, u64, Option<[u8; 32]>);

/// Hashes and judges one file; its identity, judgement and bytes read.
fn judge_one(
    ctx: &Context,
    path: &str,
    file: &std::fs::File,
    max_bytes: u64,
    buf: &mut [u8],
) -> Result<Judged, String> {
    let before = identity_of(&file.metadata().map_err(|e| format!("fstat: {e}"))?);
    let content = ctx.content.as_deref().map(|c| c as &dyn verdict::ImageContent);
    if before.size as u64 > max_bytes {
        let why = format!("{} bytes, over the hashing limit", before.size);
        return Ok((
            before,
            verdict::judge_unhashed(&ctx.manifest, content, Some(path), &why, false),
            0,
            None,
        ));
    }
    let algs = digest::algs_for(ctx.manifest.get(path));
    let hashes = hash_reader(file, algs, buf).map_err(|e| format!("reading: {e}"))?;
    let after = identity_of(&file.metadata().map_err(|e| format!("fstat: {e}"))?);
    if after != before {
        return Err("the file changed while it was being hashed".into());
    }
    let j = verdict::judge(&ctx.manifest, content, Some(path), &hashes, false, false);
    Ok((before, j, hashes.size, hashes.sha256))
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt as _, sync::Arc};

    use verifier_sbom::fsroot::RootDir;

    use super::*;
    use crate::verify::{index::LazyIndex, test_sbom};

    fn context(root: &std::path::Path, files: &[(&str, &[u8])]) -> Context {
        let hexes: Vec<(&str, String)> = files.iter().map(|(p, b)| (*p, sha256_hex(b))).collect();
        let manifest = test_sbom::manifest(&hexes.iter().map(|(p, h)| (*p, h.as_str())).collect::<Vec<_>>());
        Context {
            key: 1,
            root: Arc::new(RootDir::open(root).expect("root")),
            manifest: Arc::new(manifest),
            index: Arc::new(LazyIndex::default()),
            content: None,
            any_algs: verifier_sbom::hash::Algs::SHA256,
        }
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        let h = hash_reader(bytes, verifier_sbom::hash::Algs::SHA256, &mut [0u8; 64]).expect("hash");
        hex::encode(h.sha256.expect("sha256"))
    }

    #[test]
    fn listed_code_is_allowed_and_changed_code_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = dir.path();
        fs::create_dir_all(r.join("bin")).expect("mkdir");
        fs::create_dir_all(r.join("lib")).expect("mkdir");
        for (p, body, mode) in [
            ("bin/ok", &b"good"[..], 0o755),
            ("bin/changed", b"evil", 0o755),
            ("lib/libx.so.1", b"lib", 0o644),
            ("etc-data", b"data", 0o644),
        ] {
            fs::write(r.join(p), body).expect("write");
            fs::set_permissions(r.join(p), fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let ctx = context(
            r,
            &[
                ("/bin/ok", b"good"),
                ("/bin/changed", b"original"),
                ("/lib/libx.so.1", b"lib"),
                ("/etc-data", b"data"),
            ],
        );
        let block = |v: Verdict| matches!(v, Verdict::ModifiedBinary | Verdict::LibraryDrift);
        let p = preverify(&ctx, &block, 1 << 20);
        assert_eq!((p.listed, p.candidates), (4, 3), "data files are not candidates: {p:?}");
        let ids = |n: &str| identity_of(&fs::metadata(r.join(n)).expect("stat"));
        assert!(p.allowed.contains(&ids("bin/ok")) && p.allowed.contains(&ids("lib/libx.so.1")), "{p:?}");
        assert!(!p.allowed.contains(&ids("bin/changed")), "{p:?}");
        assert_eq!(p.refused.len(), 1, "{p:?}");
        assert_eq!(p.ok.len(), 2, "both allowed files are ok: {p:?}");
        let digest = |b: &[u8]| {
            hash_reader(b, verifier_sbom::hash::Algs::SHA256, &mut [0u8; 64]).expect("hash").sha256
        };
        let mut want = vec![digest(b"good").expect("sha256"), digest(b"lib").expect("sha256")];
        let mut got = p.digests.clone();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want, "the allowed files' digests, not the refused one's");
        assert_eq!((p.refused[0].0.as_str(), p.refused[0].1), ("/bin/changed", Verdict::ModifiedBinary));
        let none = |_: Verdict| false;
        assert_eq!(preverify(&ctx, &none, 1 << 20).allowed.len(), 3, "nothing blocked: all allowed");
    }
}
