//! The alert file: JSON lines appended to a path, rotated by size
//! (`alerts.jsonl` -> `alerts.jsonl.1` -> ... -> `.N`, the oldest dropped),
//! a line never split across two files. What log shippers (Fluent Bit,
//! Vector, the Splunk forwarder) tail.
//!
//! As a [`Sink`], a failed write loses those lines from this file only:
//! they are counted (`file_errors`), the first failure is logged, and the
//! other sinks still get them.
//!
//! What an operator's node does to the file is expected, not fatal:
//! - deleted or replaced under the agent (a cleanup job, a careless `rm`):
//!   before each batch the path's inode is compared with the open file's;
//!   when they differ the path is opened anew (`file_reopens`), so alerts
//!   never go on into an unlinked file nobody can read;
//! - a full disk: a line is written whole or not at all. A short or failed
//!   write is cut back to the last whole line, so a shipper never reads a
//!   torn fragment with the next alert glued onto it;
//! - created `0600`: alerts carry argv, and argv carries secrets.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use super::{
    AlertStats,
    sink::{LastRecord, Sink},
};

#[derive(Debug, thiserror::Error)]
pub(crate) enum FileSinkError {
    #[error("alert file {path}: {source} (check that the directory exists and is writable)")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("writing alert file {path}: {source} (is its filesystem full?)")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("rotating alert file {path}: {source}")]
    Rotate { path: PathBuf, source: std::io::Error },
}

pub(crate) struct FileSink {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u32,
    pub rotations: u64,
    /// Times the path was opened anew after it was deleted or replaced.
    pub reopens: u64,
    /// Lines that could not be written.
    errors: u64,
}

impl FileSink {
    /// Opens (appends to) `path`. `max_bytes == 0`: never rotate.
    pub(crate) fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, FileSinkError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            size,
            max_bytes,
            keep,
            rotations: 0,
            reopens: 0,
            errors: 0,
        })
    }

    /// Appends lines (each without its newline). On a failure the lines
    /// not written are counted in `errors` and the error returned.
    pub(crate) fn write_lines(&mut self, lines: &[Vec<u8>]) -> Result<(), FileSinkError> {
        if let Err(e) = self.follow_path() {
            self.errors += lines.len() as u64;
            return Err(e);
        }
        for (i, line) in lines.iter().enumerate() {
            if let Err(e) = self.write_line(line) {
                self.errors += (lines.len() - i) as u64;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Opens the path anew when it no longer names the open file (deleted,
    /// or replaced), and takes the file's size from the file itself.
    fn follow_path(&mut self) -> Result<(), FileSinkError> {
        let open = self.file.metadata().ok().map(|m| (m.dev(), m.ino(), m.len()));
        let named = std::fs::metadata(&self.path).ok().map(|m| (m.dev(), m.ino()));
        match (open, named) {
            (Some((dev, ino, len)), Some(named)) if (dev, ino) == named => self.size = len,
            _ => {
                self.file = open_append(&self.path)?;
                self.size = self.file.metadata().map(|m| m.len()).unwrap_or(0);
                self.reopens += 1;
            }
        }
        Ok(())
    }

    fn write_line(&mut self, line: &[u8]) -> Result<(), FileSinkError> {
        let len = line.len() as u64 + 1;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            self.rotate()?;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        if let Err(source) = self.file.write_all(&buf) {
            // Part of the line may be in the file: cut back to the last
            // whole line (best effort; the file is ours alone).
            let _ = self.file.set_len(self.size);
            return Err(FileSinkError::Write { path: self.path.clone(), source });
        }
        self.size += len;
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), FileSinkError> {
        let err = |source| FileSinkError::Rotate { path: self.path.clone(), source };
        let gone = |r: std::io::Result<()>| match r {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        };
        if self.keep == 0 {
            gone(std::fs::remove_file(&self.path)).map_err(err)?;
        } else {
            let _ = std::fs::remove_file(numbered(&self.path, self.keep));
            for i in (1..self.keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1)).map_err(err)?;
                }
            }
            gone(std::fs::rename(&self.path, numbered(&self.path, 1))).map_err(err)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.rotations += 1;
        Ok(())
    }
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    fn write(&mut self, lines: &[Vec<u8>], _stdout: &mut dyn std::io::Write) -> std::io::Result<()> {
        let before = self.errors;
        if let Err(e) = self.write_lines(lines)
            && before == 0
        {
            tracing::warn!("{e}; alerts still go to the other sinks");
        }
        Ok(())
    }

    fn last_record(&mut self, line: &[u8], _deadline: std::time::Duration) -> LastRecord<'_> {
        // Appending never waits on anyone: the deadline is not needed.
        let took = self.write_lines(&[line.to_vec()]).is_ok();
        Box::pin(async move { took })
    }

    fn add_stats(&self, stats: &mut AlertStats) {
        stats.file_errors += self.errors;
        stats.file_rotations += self.rotations;
        stats.file_reopens += self.reopens;
    }
}

fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// Appends, creating the file readable by its owner only.
fn open_append(path: &Path) -> Result<File, FileSinkError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| FileSinkError::Open { path: path.to_path_buf(), source })
}

#[cfg(test)]
#[path = "file_tests.rs"]
mod tests;
