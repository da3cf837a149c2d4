//! Errors from reading an SBOM.
//!
//! Every error names the file and the place in it (line and column, plus the
//! JSON path for JSON documents, e.g. `files[12].checksums`) and says what to
//! do about it: the person who reads it holds an SBOM written by some other
//! tool and needs to know whether to regenerate it, convert it, or tell us.

use std::fmt;
use std::io;

/// Where in a document something went wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// JSON path (`files[3].checksums[0]`) or a reader-specific place
    /// (`package "musl"`), when known.
    pub path: Option<String>,
}

impl Location {
    pub fn line(line: u64) -> Location {
        Location { line: Some(line), ..Location::default() }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(l) = self.line {
            write!(f, "line {l}")?;
            if let Some(c) = self.column {
                write!(f, " column {c}")?;
            }
            sep = ", ";
        }
        if let Some(p) = &self.path {
            write!(f, "{sep}at {p}")?;
            sep = ", ";
        }
        if sep.is_empty() {
            f.write_str("start of file")?;
        }
        Ok(())
    }
}

/// Why an SBOM could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SbomError {
    /// The file could not be opened or read.
    #[error("cannot read SBOM {file}: {source}; check the path and permissions")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// The path names something other than a regular file (a FIFO, a
    /// device, a socket): reading it could block forever or never end.
    #[error("SBOM {file} is a {kind}, not a regular file; point to the SBOM file itself")]
    NotAFile { file: String, kind: &'static str },
    /// Not a format we read.
    #[error(
        "{file}: not an SBOM format this tool reads ({reason}); supported: SPDX 2.2/2.3 JSON and tag-value, \
         SPDX 3 JSON-LD, CycloneDX JSON 1.2-1.7, Syft JSON, apk installed database, dpkg md5sums, and these \
         inside an in-toto/DSSE envelope or Sigstore bundle"
    )]
    UnknownFormat { file: String, reason: String },
    /// The document is malformed: bad syntax, a value of the wrong type, a
    /// duplicate key, a value out of bounds.
    #[error("{file}: {at}: {message}; {hint}")]
    Malformed {
        file: String,
        at: Location,
        message: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The document ends early.
    #[error(
        "{file}: {at}: the document ends early ({message}); the file is truncated: copy or regenerate it"
    )]
    Truncated { file: String, at: Location, message: String },
}

/// What kind of file `meta` describes, in words for an error message.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    match () {
        () if t.is_file() => "regular file",
        () if t.is_dir() => "directory",
        () if t.is_fifo() => "FIFO (named pipe)",
        () if t.is_socket() => "socket",
        () if t.is_char_device() => "character device",
        () if t.is_block_device() => "block device",
        () if t.is_symlink() => "symbolic link",
        () => "special file",
    }
}

impl SbomError {
    /// The place in the file, when the error has one.
    pub fn location(&self) -> Option<&Location> {
        match self {
            SbomError::Malformed { at, .. } | SbomError::Truncated { at, .. } => Some(at),
            _ => None,
        }
    }
}

/// Hints shared by the readers.
pub(crate) mod hint {
    pub(crate) const REGENERATE: &str = "regenerate the SBOM, or report the tool that wrote it";
    pub(crate) const NESTING: &str = "no real SBOM nests this deep; regenerate it";
    pub(crate) const DUPLICATE: &str = "a key may appear once per object; regenerate the SBOM";
    pub(crate) const UTF8: &str =
        "SBOM text must be UTF-8; regenerate it with a tool that escapes file names";
    pub(crate) const TOO_LONG: &str = "no real path or digest is this long; regenerate the SBOM";
}
