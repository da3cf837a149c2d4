//! Patterns for images, namespaces, labels, container names and paths.
//!
//! `*` matches any run of characters and `?` one character; nothing else
//! is special. For image references, names and labels `*` crosses `/`
//! (`registry.example/team/*` covers every repository below `team`). For
//! file paths `*` stays inside one path segment and `**` crosses them
//! (`/opt/app/*` is not `/opt/app/sub/x`; `/opt/**` is), so an exception
//! reaches no further than it reads.

/// A compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Lit(char),
    /// One character (not `/` for paths).
    One,
    /// A run within one segment (paths) or of anything (names).
    Star,
    /// A run of anything, `/` included.
    StarStar,
}

/// Where a pattern is used: decides whether `*` crosses `/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Name,
    Path,
}

impl Glob {
    /// Compiles `text`. Never fails: every string is a pattern; the
    /// validation of what a pattern may look like is the caller's.
    pub fn new(text: &str, kind: Kind) -> Self {
        let mut tokens = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::StarStar
                }
                '*' if kind == Kind::Name => Token::StarStar,
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Lit(c),
            });
        }
        Self { text: text.to_owned(), tokens }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        let s: Vec<char> = s.chars().collect();
        // Iterative matching with one backtrack point per star kind is not
        // enough with two kinds; a small table over (token, char) is: the
        // inputs are image names and paths, a few hundred characters.
        let m = s.len();
        let mut row = vec![false; m + 1];
        row[0] = true;
        for t in &self.tokens {
            let mut next = vec![false; m + 1];
            match t {
                Token::Lit(c) => (0..m).for_each(|j| next[j + 1] = row[j] && s[j] == *c),
                Token::One => (0..m).for_each(|j| next[j + 1] = row[j] && s[j] != '/'),
                Token::Star | Token::StarStar => {
                    let cross = *t == Token::StarStar;
                    next[0] = row[0];
                    for j in 0..m {
                        next[j + 1] = row[j + 1] || (next[j] && (cross || s[j] != '/'));
                    }
                }
            }
            row = next;
        }
        row[m]
    }

    /// Whether the pattern has a wildcard (a literal matches one string).
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Lit(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cross_slashes_paths_do_not() {
        let img = Glob::new("registry.example/team/*", Kind::Name);
        assert!(img.matches("registry.example/team/app:1"));
        assert!(img.matches("registry.example/team/sub/app"));
        assert!(!img.matches("registry.example/other/app"));
        let p = Glob::new("/opt/app/*", Kind::Path);
        assert!(p.matches("/opt/app/run"));
        assert!(!p.matches("/opt/app/sub/run"));
        assert!(Glob::new("/opt/**", Kind::Path).matches("/opt/app/sub/run"));
        assert!(Glob::new("/usr/bin/python3.??", Kind::Path).matches("/usr/bin/python3.11"));
        assert!(!Glob::new("/usr/bin/python3.??", Kind::Path).matches("/usr/bin/python3.1"));
    }

    #[test]
    fn literals_match_only_themselves() {
        let g = Glob::new("api", Kind::Name);
        assert!(g.is_literal() && g.matches("api"));
        assert!(!g.matches("api2") && !g.matches("ap"));
        assert!(Glob::new("*", Kind::Name).matches(""));
        assert!(Glob::new("a*b*c", Kind::Name).matches("axxbyyc"));
        assert!(!Glob::new("a*b*c", Kind::Name).matches("axxbyy"));
    }
}
