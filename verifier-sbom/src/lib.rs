#![warn(unreachable_pub)]
//! SBOMs, from reading to judging: readers, the manifest model, `sbom
//! generate`, the hash engine, the one digest comparison ([`digest`]) and
//! the offline `check`.
//!
//! This crate knows nothing of the kernel, containers or the network, so
//! the fuzz targets, the SBOM benchmarks and `check` build on it alone.
//!
//! The agent can only call an executable drift if it knows what the image
//! shipped. That list comes from whatever SBOM the user has, written by
//! whichever tool they use, so this module reads them all into one model, the
//! [`Manifest`]: normalized absolute path -> digests (+ owning package).
//!
//! # Reading
//!
//! [`load_path`] and [`load_reader`] detect the format from the first bytes
//! (or take [`LoadOptions::format`]) and hand the stream to one reader:
//!
//! | format | reader | file digests from |
//! | --- | --- | --- |
//! | SPDX 2.2/2.3 JSON | `json` | `files[].checksums`; packages via `hasFiles` and `CONTAINS` |
//! | SPDX 2.x tag-value | `tagvalue` | `FileName` + `FileChecksum` |
//! | SPDX 3.0 JSON-LD | `json` | `software_File.verifiedUsing` |
//! | CycloneDX JSON 1.2-1.7 | `json` | `type: file` components (nested too), path from `*:path` properties, evidence occurrences or name |
//! | Syft JSON | `json` | `files[].digests` |
//! | in-toto / DSSE / Sigstore bundle | `json` | the predicate, read as one of the above |
//! | apk `installed` | `apk` | `Z:Q1...` (base64 SHA-1) under `F:`/`R:` |
//! | dpkg `*.md5sums` | `dpkg` | MD5 per line; a database directory adds the conffiles' MD5 from `status` / `status.d` |
//!
//! JSON is read *streaming*, in bounded memory: a small scanner walks the
//! top-level object and cuts `files`, `packages`, `relationships`,
//! `components`, `@graph` into elements, and serde_json parses each element
//! from a slice of the read buffer (`json::chunked`). A 500 MB SBOM costs the
//! manifest plus one element, not a `serde_json::Value` tree ten times the
//! file size. Element structs name only the fields we use, default
//! everything, treat `null` as empty and ignore unknown fields: real SBOMs
//! are rarely schema-valid. [`load_bytes`] parses an in-memory document with
//! serde_json directly, through the same element parsers; the tests and
//! fuzz targets hold the two paths to the same results.
//!
//! # What is kept, what is said
//!
//! Readers keep every usable digest with its algorithm and strength, and put
//! everything they could not use into [`Manifest::warnings`]: unknown
//! algorithms, all-zero placeholders (these mean "no hash", never a
//! mismatch), conflicting digests for one path (both kept), a stripped scan
//! directory, an SBOM that lists packages but no file digests, signatures not
//! checked. A broken document (bad syntax, wrong types, duplicate keys,
//! truncation, nesting beyond 128 levels, non-UTF-8 text, absurd lengths)
//! is an [`SbomError`] naming the file, the line/column and the JSON path.

pub mod alloc;
mod apk;
pub mod check;
mod de;
pub mod digest;
mod dpkg;
mod error;
pub mod fsroot;
pub mod generate;
pub mod hash;
pub mod inspect;
mod json;
mod links;
mod model;
mod path;
mod sink;
mod tagvalue;
mod text;
pub mod time;
pub mod walk;

use std::io::{BufReader, Read};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

pub use error::{Location, SbomError, file_kind};
pub use model::{
    Digest, DigestRef, Digests, Envelope, FileEntry, HashAlg, Manifest, PackageRef, SbomFormat, SbomSource,
    Strength,
};
pub use path::normalize_path;

/// How to read an SBOM.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// The directory the SBOM's paths were made from (`/tmp/rootfs`): it is
    /// stripped from every path. Without it, a scan directory is detected
    /// when unambiguous (all paths under one non-standard directory that
    /// holds `usr`, `etc`, ...).
    pub root_prefix: Option<String>,
    /// Skip detection and read as this format.
    pub format: Option<SbomFormat>,
}

/// Reads the SBOM at `path` (format auto-detected). A directory is read as
/// a dpkg database directory: every `*.md5sums` in it (`/var/lib/dpkg/info`,
/// distroless `/var/lib/dpkg/status.d`), merged, with the conffiles its
/// status file(s) record.
pub fn load_path(path: &Path, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let name = path.display().to_string();
    let io_err = |source| SbomError::Io { file: name.clone(), source };
    // Non-blocking, so that opening a FIFO returns at once instead of
    // waiting for a writer; then only a regular file (or a dpkg directory)
    // is read.
    let file =
        std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if meta.is_dir() {
        drop(file);
        return dpkg::load_dir(path, opts);
    }
    if !meta.is_file() {
        return Err(SbomError::NotAFile { file: name, kind: file_kind(&meta) });
    }
    let mut m = load_reader(file, &name, opts)?;
    m.source_mut().path = Some(path.to_owned());
    Ok(m)
}

/// Reads an SBOM from `r`; `name` names it in errors and warnings (a file
/// name, `<stdin>`, an image reference). Reads through a `BufReader`, in
/// bounded memory for JSON and line formats.
pub fn load_reader(mut r: impl Read, name: &str, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    // Detection looks at up to 64 KiB, read whole even from a reader that
    // hands out a few bytes at a time, then put back in front of the rest.
    let mut head = Vec::new();
    (&mut r)
        .take(64 * 1024)
        .read_to_end(&mut head)
        .map_err(|source| SbomError::Io { file: name.to_owned(), source })?;
    let format = match opts.format {
        Some(f) => Some(f),
        None => detect(&head, name)?,
    };
    let r = BufReader::with_capacity(256 * 1024, std::io::Cursor::new(head).chain(r));
    match format {
        Some(SbomFormat::ApkInstalled) => apk::read(r, name, opts),
        Some(SbomFormat::DpkgMd5sums) => dpkg::read(r, name, opts),
        Some(SbomFormat::Spdx2TagValue) => tagvalue::read(r, name, opts),
        // JSON formats (and envelopes) are told apart by their keys.
        Some(_) | None => json::read(r, name, opts, format),
    }
}

/// Reads an SBOM held in memory (an attestation layer fetched from a
/// registry, a file already read). JSON is parsed from the slice, which is
/// about twice as fast as from a stream.
pub fn load_bytes(bytes: &[u8], name: &str, opts: &LoadOptions) -> Result<Manifest, SbomError> {
    let format = match opts.format {
        Some(f) => Some(f),
        None => detect(&bytes[..bytes.len().min(64 * 1024)], name)?,
    };
    match format {
        Some(SbomFormat::ApkInstalled | SbomFormat::DpkgMd5sums | SbomFormat::Spdx2TagValue) => {
            load_reader(bytes, name, &LoadOptions { format, ..opts.clone() })
        }
        Some(_) | None => json::read_slice(bytes, name, opts, format),
    }
}

/// Looks at the first bytes: `{` is JSON (decided later by keys, so `None`);
/// otherwise one of the line formats.
fn detect(buf: &[u8], name: &str) -> Result<Option<SbomFormat>, SbomError> {
    let text = buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(buf);
    let start = text.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Err(SbomError::UnknownFormat { file: name.to_owned(), reason: "the file is empty".into() });
    };
    let text = &text[start..];
    if text[0] == b'{' {
        return Ok(None);
    }
    let first_line = text.split(|&b| b == b'\n').next().unwrap_or_default();
    let is_tag_value = text.split(|&b| b == b'\n').take(64).any(|l| l.starts_with(b"SPDXVersion:"));
    if is_tag_value {
        return Ok(Some(SbomFormat::Spdx2TagValue));
    }
    if first_line.len() >= 2 && first_line[0].is_ascii_alphabetic() && first_line[1] == b':' {
        return Ok(Some(SbomFormat::ApkInstalled));
    }
    if dpkg::looks_like_md5sums_line(first_line) {
        return Ok(Some(SbomFormat::DpkgMd5sums));
    }
    let shown: String = String::from_utf8_lossy(&first_line[..first_line.len().min(40)]).into_owned();
    Err(SbomError::UnknownFormat { file: name.to_owned(), reason: format!("it starts with {shown:?}") })
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
