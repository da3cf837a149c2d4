//! The alert file: JSON lines appended to a path, rotated by size
//! (`alerts.jsonl` -> `alerts.jsonl.1` -> ... -> `.N`, the oldest dropped),
//! a line never split across two files. What log shippers (Fluent Bit,
//! Vector, the Splunk forwarder) tail.
//!
//! As a [`Sink`], a failed write loses those lines from this file only:
//! they are counted (`file_errors`), the first failure is logged, and the
//! other sinks still get them.

use std::{
    fs::{File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

use super::{AlertStats, sink::Sink};

#[derive(Debug, thiserror::Error)]
pub enum FileSinkError {
    #[error("alert file {path}: {source} (check that the directory exists and is writable)")]
    Open { path: PathBuf, source: std::io::Error },
    #[error("writing alert file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("rotating alert file {path}: {source}")]
    Rotate { path: PathBuf, source: std::io::Error },
}

pub struct FileSink {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u32,
    pub rotations: u64,
    /// Lines that could not be written.
    errors: u64,
}

impl FileSink {
    /// Opens (appends to) `path`. `max_bytes == 0`: never rotate.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, FileSinkError> {
        let file = open_append(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(Self { path: path.to_path_buf(), file, size, max_bytes, keep, rotations: 0, errors: 0 })
    }

    /// Appends lines (each without its newline).
    pub fn write_lines(&mut self, lines: &[Vec<u8>]) -> Result<(), FileSinkError> {
        for line in lines {
            let len = line.len() as u64 + 1;
            if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
                self.rotate()?;
            }
            let mut buf = Vec::with_capacity(line.len() + 1);
            buf.extend_from_slice(line);
            buf.push(b'\n');
            self.file
                .write_all(&buf)
                .map_err(|source| FileSinkError::Write { path: self.path.clone(), source })?;
            self.size += len;
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), FileSinkError> {
        let err = |source| FileSinkError::Rotate { path: self.path.clone(), source };
        if self.keep == 0 {
            std::fs::remove_file(&self.path).map_err(err)?;
        } else {
            let _ = std::fs::remove_file(numbered(&self.path, self.keep));
            for i in (1..self.keep).rev() {
                let from = numbered(&self.path, i);
                if from.exists() {
                    std::fs::rename(&from, numbered(&self.path, i + 1)).map_err(err)?;
                }
            }
            std::fs::rename(&self.path, numbered(&self.path, 1)).map_err(err)?;
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
        if let Err(e) = self.write_lines(lines) {
            if self.errors == 0 {
                tracing::warn!("{e}; alerts still go to the other sinks");
            }
            self.errors += lines.len() as u64;
        }
        Ok(())
    }

    fn add_stats(&self, stats: &mut AlertStats) {
        stats.file_errors += self.errors;
        stats.file_rotations += self.rotations;
    }
}

fn numbered(path: &Path, i: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

fn open_append(path: &Path) -> Result<File, FileSinkError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| FileSinkError::Open { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_every_line_whole_and_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("alerts.jsonl");
        let mut sink = FileSink::open(&path, 500, 3).expect("open");
        let lines: Vec<Vec<u8>> = (0..60)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i % 40)).into_bytes())
            .collect();
        for chunk in lines.chunks(7) {
            sink.write_lines(chunk).expect("write");
        }
        assert!(sink.rotations >= 3, "{} rotations", sink.rotations);
        assert!(!numbered(&path, 4).exists(), "keep 3");
        let mut read = Vec::new();
        for p in [numbered(&path, 3), numbered(&path, 2), numbered(&path, 1), path.clone()] {
            let text = std::fs::read_to_string(&p).expect("read");
            assert!(text.len() <= 500, "{} is {} bytes", p.display(), text.len());
            assert!(text.ends_with('\n'));
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).expect("a whole JSON line");
                read.push(v["n"].as_u64().expect("n"));
            }
        }
        // The oldest files were dropped; what is kept is the newest, in order.
        let last = *read.last().expect("lines");
        assert_eq!(last, 59);
        let first = read[0];
        assert_eq!(read, (first..=59).collect::<Vec<_>>());
    }

    #[test]
    fn an_unwritable_directory_says_what_to_check() {
        let e = FileSink::open(Path::new("/nonexistent-dir/alerts.jsonl"), 0, 1).err().expect("fails");
        assert!(
            e.to_string().contains("/nonexistent-dir/alerts.jsonl") && e.to_string().contains("writable")
        );
    }
}
