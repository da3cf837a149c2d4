//! What can be wrong with a policy file, with the place to fix it.

use std::{ops::Range, path::PathBuf};

/// A line and column in the file (1-based), from a byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    /// The position of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Self {
        let before = &text.as_bytes()[..offset.min(text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[start..]).chars().count() + 1;
        Self { line, column }
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// One problem in the file's content.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Where, when known (TOML syntax errors and checked values have one).
    pub at: Option<Position>,
    /// What is wrong and what to write instead.
    pub message: String,
}

impl Problem {
    pub(crate) fn at(text: &str, span: Option<Range<usize>>, message: impl Into<String>) -> Self {
        Self { at: span.map(|s| Position::of(text, s.start)), message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some(at) => write!(f, "{at}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Loading a policy failed.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source} (check the path and its permissions)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("policy file {path} is not UTF-8 text: save it as UTF-8")]
    NotText { path: PathBuf },
    #[error("policy file {path} is not valid:\n{}", list(.problems))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

fn list(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Position::of(text, 0), Position { line: 1, column: 1 });
        assert_eq!(Position::of(text, 6), Position { line: 2, column: 1 });
        assert_eq!(Position::of(text, 10), Position { line: 2, column: 4 }, "é is one column");
        assert_eq!(Position::of(text, 999).line, 3, "past the end: the last line");
    }
}
