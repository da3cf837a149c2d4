//! What every reader does with what it found: normalize paths, decode and
//! vet digests, count what had to be dropped, and at the end strip the scan
//! directory and turn the counts into plain warnings.
//!
//! Warnings are counted, not pushed one per file: a 200,000-file SBOM full of
//! MD2 checksums should say so once, with a few examples.

use std::collections::BTreeMap;

use super::LoadOptions;
use super::de::DigestText;
use super::de::{Alg, Hex, decode_hex};
use super::model::{AddError, DigestBuf, HashAlg, Manifest, SbomFormat, SbomSource};
use super::path::{PrefixGuess, detect_root_prefix, normalize_into, normalize_path};

/// Longest path accepted (Linux `PATH_MAX`).
pub(crate) const MAX_PATH: usize = 4096;
/// How many example paths a counted warning names.
const EXAMPLES: usize = 3;

#[derive(Default)]
struct Counted {
    count: usize,
    examples: Vec<String>,
}

impl Counted {
    fn add(&mut self, example: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(example());
        }
    }

    fn describe(&self) -> String {
        let more = if self.count > self.examples.len() { ", ..." } else { "" };
        format!("{}{more}", self.examples.join(", "))
    }
}

/// Why [`Sink::add_file`] refused a path; the reader turns it into an
/// [`super::SbomError`] with its own location.
#[derive(Debug)]
pub(crate) enum FileRefused {
    TooLong(usize),
    StorageFull,
}

impl FileRefused {
    pub(crate) fn message(&self) -> String {
        match self {
            FileRefused::TooLong(n) => {
                format!("a file path is {n} bytes long, more than the {MAX_PATH} Linux allows")
            }
            FileRefused::StorageFull => "the SBOM's paths add up to more than 4 GiB".to_owned(),
        }
    }
}

/// The manifest under construction plus what was dropped on the way.
pub(crate) struct Sink {
    pub m: Manifest,
    /// File name for errors and warnings.
    pub file: String,
    norm: String,
    no_path: Counted,
    placeholder: Counted,
    bad_digest: Counted,
    unknown_alg: BTreeMap<String, usize>,
    conflicts: Counted,
}

impl Sink {
    pub fn new(format: SbomFormat, file: &str) -> Sink {
        Sink {
            m: Manifest::new(SbomSource::new(format)),
            file: file.to_owned(),
            norm: String::new(),
            no_path: Counted::default(),
            placeholder: Counted::default(),
            bad_digest: Counted::default(),
            unknown_alg: BTreeMap::new(),
            conflicts: Counted::default(),
        }
    }

    /// Adds a digest given as an algorithm name and hex; drops (and counts)
    /// unknown algorithms, malformed hex and all-zero placeholders.
    pub fn push_hex(&mut self, buf: &mut DigestBuf, alg_name: &str, hex_value: &str, file_hint: &str) {
        let Some(alg) = HashAlg::parse(alg_name) else {
            self.unknown_alg_seen(alg_name);
            return;
        };
        let hex_value = hex_value.trim();
        let mut raw = [0u8; 64];
        let n = alg.digest_len();
        if !decode_hex(hex_value.as_bytes(), &mut raw[..n]) {
            let shown: String = hex_value.chars().take(80).collect();
            self.bad_digest.add(|| format!("{file_hint} ({alg} {shown:?})"));
            return;
        }
        self.push_raw(buf, alg, &raw[..n], file_hint);
    }

    /// Adds raw digest bytes of the right length, unless all zero.
    pub fn push_raw(&mut self, buf: &mut DigestBuf, alg: HashAlg, raw: &[u8], file_hint: &str) {
        if raw.len() != alg.digest_len() {
            self.bad_digest.add(|| format!("{file_hint} ({alg}, {} bytes)", raw.len()));
        } else if raw.iter().all(|&b| b == 0) {
            self.placeholder.add(|| file_hint.to_owned());
        } else {
            buf.push(alg, raw);
        }
    }

    /// Adds a digest read by the JSON readers (see `de`).
    pub fn push_decoded(&mut self, buf: &mut DigestBuf, alg: &Alg, value: &Hex, file_hint: &str) {
        let alg = match alg {
            Alg::Known(a) => *a,
            Alg::Unknown(name) => return self.unknown_alg_seen(name),
            Alg::Missing => return self.unknown_alg_seen("(none)"),
        };
        match value.value() {
            Ok(raw) => self.push_raw(buf, alg, raw, file_hint),
            Err(text) => self.bad_digest.add(|| format!("{file_hint} ({alg} {text:?})")),
        }
    }

    /// Adds a digest as the fast JSON readers find it (algorithm name and
    /// hex text, `None` for `null` or missing): the same checks, counts and
    /// messages as [`Sink::push_decoded`], with the hex decoded only for an
    /// algorithm that is kept, straight into `buf`.
    pub fn push_text(&mut self, buf: &mut DigestBuf, d: DigestText<'_>, file_hint: &str) {
        let Some(name) = d.alg else {
            return self.unknown_alg_seen("(none)");
        };
        let Some(alg) = HashAlg::parse(name) else {
            // As `Alg::Unknown` keeps it: the first 40 characters.
            let cut = name.char_indices().nth(40).map_or(name.len(), |(i, _)| i);
            return self.unknown_alg_seen(&name[..cut]);
        };
        let text = d.hex.unwrap_or_default().trim();
        let n = text.len() / 2;
        let mut raw = [0u8; 64];
        if d.hex.is_none()
            || !text.len().is_multiple_of(2)
            || n > raw.len()
            || !decode_hex(text.as_bytes(), &mut raw[..n])
        {
            let shown: String = text.chars().take(80).collect();
            self.bad_digest.add(|| format!("{file_hint} ({alg} {shown:?})"));
            return;
        }
        self.push_raw(buf, alg, &raw[..n], file_hint);
    }

    pub fn unknown_alg_seen(&mut self, alg_name: &str) {
        if let Some(n) = self.unknown_alg.get_mut(alg_name) {
            *n += 1;
        } else if self.unknown_alg.len() < 32 {
            let shown: String = alg_name.chars().take(40).collect();
            self.unknown_alg.insert(shown, 1);
        }
    }

    /// Counts a digest that could not be used for a reader-specific reason.
    pub fn bad_digest(&mut self, example: impl FnOnce() -> String) {
        self.bad_digest.add(example);
    }

    /// Adds a file. `Ok(None)` when the path is empty after normalization
    /// (counted, warned at the end).
    pub fn add_file(
        &mut self,
        raw_path: &str,
        digests: &DigestBuf,
        package: Option<u32>,
        symlink: bool,
    ) -> Result<Option<usize>, FileRefused> {
        if raw_path.len() > MAX_PATH {
            return Err(FileRefused::TooLong(raw_path.len()));
        }
        if !normalize_into(raw_path, &mut self.norm) {
            self.no_path.add(|| format!("{:?}", raw_path.chars().take(80).collect::<String>()));
            return Ok(None);
        }
        match self.m.add_normalized(&self.norm, digests, package, symlink) {
            Ok((i, conflict)) => {
                if conflict {
                    let p = &self.norm;
                    self.conflicts.add(|| p.clone());
                }
                Ok(Some(i))
            }
            Err(AddError::TooLarge) => Err(FileRefused::StorageFull),
        }
    }

    /// Strips the root prefix, turns counts into warnings, frees spare room.
    pub fn finish(mut self, opts: &LoadOptions) -> Manifest {
        let m = &mut self.m;
        match opts.root_prefix.as_deref().map(normalize_path) {
            Some(Some(prefix)) => {
                let mut outside = Counted::default();
                let conflicts = m.rewrite_paths(|p| {
                    let rest = p.strip_prefix(prefix.as_str()).filter(|r| r.starts_with('/'));
                    if rest.is_none() {
                        outside.add(|| p.to_owned());
                    }
                    rest.map(str::to_owned)
                });
                if outside.count > 0 {
                    m.warn(format!(
                        "{} path(s) are not under the root prefix {prefix} and were kept as they are: {}",
                        outside.count,
                        outside.describe()
                    ));
                }
                if conflicts > 0 {
                    m.warn(format!("{conflicts} path(s) collided with another after stripping {prefix}"));
                }
            }
            Some(None) => {}
            None => match detect_root_prefix(m.files().map(|(p, _)| p)) {
                PrefixGuess::None => {}
                PrefixGuess::Strip(prefix) => {
                    m.rewrite_paths(|p| p.strip_prefix(prefix.as_str()).map(str::to_owned));
                    m.warn(format!(
                        "every path started with {prefix}, the directory the SBOM was made from; it was stripped \
                         (set the root prefix explicitly if that is wrong)"
                    ));
                }
                PrefixGuess::Ambiguous(prefix) => m.warn(format!(
                    "every path starts with {prefix}; if that is the directory the SBOM was made from, set it as \
                     the root prefix, or no path will match the image"
                )),
            },
        }
        if self.no_path.count > 0 {
            m.warn(format!(
                "{} file(s) had no usable path and were skipped: {}",
                self.no_path.count,
                self.no_path.describe()
            ));
        }
        if self.placeholder.count > 0 {
            m.warn(format!(
                "{} all-zero digest(s) are placeholders meaning \"not computed\" and were ignored: {}",
                self.placeholder.count,
                self.placeholder.describe()
            ));
        }
        if self.bad_digest.count > 0 {
            m.warn(format!(
                "{} digest(s) were not valid for their algorithm and were ignored: {}",
                self.bad_digest.count,
                self.bad_digest.describe()
            ));
        }
        if !self.unknown_alg.is_empty() {
            let algs: Vec<String> = self.unknown_alg.iter().map(|(a, n)| format!("{a} ({n})")).collect();
            m.warn(format!(
                "digests with algorithms this tool does not compare were ignored: {}",
                algs.join(", ")
            ));
        }
        if self.conflicts.count > 0 {
            m.warn(format!(
                "{} path(s) are listed more than once with different digests; all are kept and either matches: {}",
                self.conflicts.count,
                self.conflicts.describe()
            ));
        }
        let with = m.len_with_digests();
        if with == 0 {
            m.warn(format!(
                "this SBOM lists {} package(s) and {} file(s) but no per-file digests, so it cannot tell a \
                 shipped binary from a dropped one; generate a file-level SBOM with `verifier sbom generate`",
                m.packages().len(),
                m.len()
            ));
        } else if with < m.len() {
            m.warn(format!(
                "{} of {} file(s) have no usable digest and cannot be verified",
                m.len() - with,
                m.len()
            ));
        }
        m.shrink_to_fit();
        self.m
    }
}
