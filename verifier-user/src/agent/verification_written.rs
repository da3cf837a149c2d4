//! Write-opens of verified files: the kernel took a file out of the fast
//! path because it was opened for writing in its container; what is still
//! known of it (path, digest, container) becomes a `verifier.write.v1`
//! record (`image-file-written`).

use std::sync::Arc;

use crate::{attribution::ContainerRef, verify::containers::ContainerInfo};

/// A verified file opened for writing in its container.
pub(crate) struct Written {
    pub record: verifier_common::event::WriteRecord,
    pub unix_ns: i128,
    /// Path and digest it was verified with, when still remembered.
    pub path: Option<Vec<u8>>,
    pub sha256: Option<[u8; 32]>,
    pub info: Option<Arc<ContainerInfo>>,
}

impl super::Verification {
    /// The kernel reported a write-open of a file in the fast path.
    pub(crate) fn write_open(&mut self, w: &verifier_sensor::events::WriteEvent) -> Written {
        let rec = &w.record;
        let known = self.trusted.remove(&(rec.dev, rec.ino, rec.slot));
        Written {
            record: *rec,
            unix_ns: w.unix_ns,
            path: known.as_ref().map(|k| k.0.clone()),
            sha256: known.and_then(|k| k.1),
            info: self.infos.get(&rec.cgroup_id).cloned(),
        }
    }
}

/// `verifier.write.v1`: a file the image shipped (verified `ok` earlier)
/// opened for writing inside its container.
#[derive(serde::Serialize)]
pub(crate) struct WrittenJson<'a> {
    pub schema: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub time: String,
    pub node: &'a str,
    pub verdict: &'static str,
    pub pid: u32,
    pub tgid: u32,
    pub comm: String,
    pub fd: i32,
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    /// The digest the file had when it was verified.
    pub sha256_verified: Option<String>,
    pub ino: u64,
    pub cgroup_id: u64,
    pub container: Option<&'a ContainerRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

impl<'a> WrittenJson<'a> {
    pub(crate) fn new(w: &Written, node: &'a str, attribution: &'a crate::attribution::Attribution) -> Self {
        let text = w.path.as_deref().map(String::from_utf8_lossy);
        let exact = text.as_ref().is_none_or(|t| matches!(t, std::borrow::Cow::Borrowed(_)));
        Self {
            schema: "verifier.write.v1",
            kind: "write",
            time: crate::output::rfc3339(w.unix_ns),
            node,
            verdict: "image-file-written",
            pid: w.record.pid,
            tgid: w.record.tgid,
            comm: String::from_utf8_lossy(verifier_common::decode::comm_bytes(&w.record.comm)).into_owned(),
            fd: w.record.fd,
            path: text.map(std::borrow::Cow::into_owned),
            path_hex: (!exact).then(|| w.path.as_deref().map(hex::encode)).flatten(),
            sha256_verified: w.sha256.map(hex::encode),
            ino: w.record.ino,
            cgroup_id: w.record.cgroup_id,
            container: match attribution {
                crate::attribution::Attribution::Container(c) => Some(c),
                _ => None,
            },
            image: w.info.as_ref().and_then(|i| i.image_name.clone().or(i.image_digest.clone())),
        }
    }
}
