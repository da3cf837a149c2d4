//! Line reading for the text formats (apk, dpkg, SPDX tag-value): bounded
//! line length, UTF-8 checked, line numbers kept for errors.

use std::io::{BufRead, Read};

use super::error::{Location, SbomError, hint};

/// Longest line accepted. Real lines are under a few KiB; a longer one is a
/// binary file or an attack on memory.
pub(crate) const MAX_LINE: usize = 1 << 20;

pub(crate) struct LineReader<R> {
    r: R,
    buf: Vec<u8>,
    line: u64,
    file: String,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(r: R, file: &str) -> LineReader<R> {
        LineReader { r, buf: Vec::new(), line: 0, file: file.to_owned() }
    }

    /// An error at the current line.
    pub(crate) fn malformed(&self, message: impl Into<String>, hint: &'static str) -> SbomError {
        SbomError::Malformed {
            file: self.file.clone(),
            at: Location::line(self.line),
            message: message.into(),
            hint,
        }
    }

    /// The next line without its end-of-line, `None` at the end.
    pub(crate) fn next_line(&mut self) -> Result<Option<&str>, SbomError> {
        self.buf.clear();
        let n = (&mut self.r)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|source| SbomError::Io { file: self.file.clone(), source })?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        } else if self.buf.len() > MAX_LINE {
            return Err(self.malformed(format!("the line is longer than {MAX_LINE} bytes"), hint::TOO_LONG));
        }
        match std::str::from_utf8(&self.buf) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(SbomError::Malformed {
                file: self.file.clone(),
                at: Location { line: Some(self.line), column: Some(e.valid_up_to() as u64 + 1), path: None },
                message: "the text is not valid UTF-8 (a file name in another encoding?)".into(),
                hint: hint::UTF8,
            }),
        }
    }
}
