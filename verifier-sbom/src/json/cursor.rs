//! A small JSON cursor for the fast element readers (`fast.rs`): it walks one
//! element straight from the read buffer, in one pass, and hands out strings
//! as slices of that buffer.
//!
//! It accepts exactly what serde_json accepts, or less: on anything it does
//! not handle itself (an escape in a string we keep, a key that is not
//! plain ASCII, a type we do not expect, a value it is unsure of) it gives up
//! with [`Bail::Fallback`], and the element is read again by the serde path,
//! which has the final word, its error messages included. Values we skip
//! are still checked as serde_json's `IgnoredAny` checks them (escapes,
//! control characters, number grammar, brackets), so a document the serde
//! path refuses is never accepted here.

use memchr::memchr2;

/// Why the cursor stopped.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Bail {
    /// The element runs past the end of the bytes given.
    More,
    /// Something the fast path does not handle: read it with serde.
    Fallback,
}

pub(crate) type Res<T> = Result<T, Bail>;

/// Deeper nesting inside a skipped value is left to serde.
const MAX_SKIP_DEPTH: u32 = 128;

pub(crate) struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Cursor<'a> {
        Cursor { b, i: 0 }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.i
    }

    /// The next byte that is not JSON whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Res<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(c);
            }
            self.i += 1;
        }
        Err(Bail::More)
    }

    /// Consumes `c` (after whitespace), or falls back.
    #[inline]
    pub fn eat(&mut self, c: u8) -> Res<()> {
        if self.peek()? != c {
            return Err(Bail::Fallback);
        }
        self.i += 1;
        Ok(())
    }

    /// Consumes `c` if it is next; false if something else is.
    #[inline]
    pub fn eat_if(&mut self, c: u8) -> Res<bool> {
        let hit = self.peek()? == c;
        self.i += usize::from(hit);
        Ok(hit)
    }

    /// A string with no escape, as raw bytes (the quotes are consumed).
    #[inline]
    fn plain_bytes(&mut self) -> Res<&'a [u8]> {
        if self.peek()? != b'"' {
            return Err(Bail::Fallback);
        }
        let start = self.i + 1;
        let rest = self.b.get(start..).unwrap_or_default();
        let k = memchr2(b'"', b'\\', rest).ok_or(Bail::More)?;
        if rest[k] == b'\\' {
            return Err(Bail::Fallback);
        }
        let s = &rest[..k];
        if has_control(s) {
            return Err(Bail::Fallback);
        }
        self.i = start + k + 1;
        Ok(s)
    }

    /// A string with no escape, valid UTF-8.
    #[inline]
    pub fn str(&mut self) -> Res<&'a str> {
        std::str::from_utf8(self.plain_bytes()?).map_err(|_| Bail::Fallback)
    }

    /// A string or `null`.
    #[inline]
    pub fn opt_str(&mut self) -> Res<Option<&'a str>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Ok(None);
        }
        self.str().map(Some)
    }

    /// An object key (plain ASCII, no escape) and its `:`.
    #[inline]
    pub fn key(&mut self) -> Res<&'a [u8]> {
        let k = self.plain_bytes()?;
        if !k.is_ascii() {
            return Err(Bail::Fallback);
        }
        self.eat(b':')?;
        Ok(k)
    }

    /// After `{`: true when the object has a first key (false for `{}`).
    #[inline]
    pub fn object_first(&mut self) -> Res<bool> {
        Ok(!self.eat_if(b'}')?)
    }

    /// After a member: true when another follows (`,`), false at `}`.
    #[inline]
    pub fn object_next(&mut self) -> Res<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Ok(true)
            }
            b'}' => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Bail::Fallback),
        }
    }

    /// After `[`: true when the list has a first element.
    #[inline]
    pub fn list_first(&mut self) -> Res<bool> {
        Ok(!self.eat_if(b']')?)
    }

    /// After an element: true when another follows.
    #[inline]
    pub fn list_next(&mut self) -> Res<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Ok(true)
            }
            b']' => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Bail::Fallback),
        }
    }

    /// `null` (true) or the `[` of a list (false); anything else falls back.
    #[inline]
    pub fn null_or_list(&mut self) -> Res<bool> {
        match self.peek()? {
            b'n' => {
                self.literal(b"null")?;
                Ok(true)
            }
            b'[' => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(Bail::Fallback),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Res<()> {
        let rest = &self.b[self.i..];
        let n = rest.len().min(word.len());
        if rest[..n] != word[..n] {
            return Err(Bail::Fallback);
        }
        if n < word.len() {
            return Err(Bail::More);
        }
        self.i += word.len();
        Ok(())
    }

    fn byte(&self) -> Res<u8> {
        self.b.get(self.i).copied().ok_or(Bail::More)
    }

    /// A string skipped as serde_json's `ignore_str` does: escapes checked,
    /// control characters refused, UTF-8 not checked.
    fn skip_str(&mut self) -> Res<()> {
        self.i += 1;
        loop {
            let rest = &self.b[self.i..];
            let k = memchr2(b'"', b'\\', rest).ok_or(Bail::More)?;
            if has_control(&rest[..k]) {
                return Err(Bail::Fallback);
            }
            self.i += k + 1;
            if rest[k] == b'"' {
                return Ok(());
            }
            match self.byte()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 1,
                b'u' => {
                    let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Bail::More)?;
                    if !hex.iter().all(u8::is_ascii_hexdigit) {
                        return Err(Bail::Fallback);
                    }
                    self.i += 5;
                }
                _ => return Err(Bail::Fallback),
            }
        }
    }

    fn digits(&mut self) -> Res<usize> {
        let start = self.i;
        while self.byte()?.is_ascii_digit() {
            self.i += 1;
        }
        Ok(self.i - start)
    }

    /// A number, with serde_json's grammar (no leading zeros, a digit on
    /// both sides of `.`, an exponent with digits).
    fn skip_number(&mut self) -> Res<()> {
        if self.byte()? == b'-' {
            self.i += 1;
        }
        match self.byte()? {
            b'0' => {
                self.i += 1;
                if self.byte()?.is_ascii_digit() {
                    return Err(Bail::Fallback);
                }
            }
            b'1'..=b'9' => {
                self.digits()?;
            }
            _ => return Err(Bail::Fallback),
        }
        if self.byte()? == b'.' {
            self.i += 1;
            if self.digits()? == 0 {
                return Err(Bail::Fallback);
            }
        }
        if matches!(self.byte()?, b'e' | b'E') {
            self.i += 1;
            if matches!(self.byte()?, b'+' | b'-') {
                self.i += 1;
            }
            if self.digits()? == 0 {
                return Err(Bail::Fallback);
            }
        }
        Ok(())
    }

    /// A key of a skipped object and its `:`.
    fn skip_key(&mut self) -> Res<()> {
        if self.peek()? != b'"' {
            return Err(Bail::Fallback);
        }
        self.skip_str()?;
        self.eat(b':')
    }

    /// Any value, checked and dropped.
    pub fn skip(&mut self) -> Res<()> {
        // One bit per open bracket, innermost highest: 1 for an object.
        let mut objects: u128 = 0;
        let mut depth: u32 = 0;
        loop {
            match self.peek()? {
                b'"' => self.skip_str()?,
                b'-' | b'0'..=b'9' => self.skip_number()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                open @ (b'{' | b'[') => {
                    if depth == MAX_SKIP_DEPTH {
                        return Err(Bail::Fallback);
                    }
                    self.i += 1;
                    let obj = open == b'{';
                    let close = if obj { b'}' } else { b']' };
                    if !self.eat_if(close)? {
                        objects = (objects << 1) | u128::from(obj);
                        depth += 1;
                        if obj {
                            self.skip_key()?;
                        }
                        continue;
                    }
                }
                _ => return Err(Bail::Fallback),
            }
            // After a value: close what ends here, then on to the next one.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let obj = objects & 1 == 1;
                match self.peek()? {
                    b',' => {
                        self.i += 1;
                        if obj {
                            self.skip_key()?;
                        }
                        break;
                    }
                    b'}' if obj => {}
                    b']' if !obj => {}
                    _ => return Err(Bail::Fallback),
                }
                self.i += 1;
                objects >>= 1;
                depth -= 1;
            }
        }
    }
}

/// Whether `s` holds a byte below 0x20, which JSON strings may not.
#[inline]
fn has_control(s: &[u8]) -> bool {
    s.iter().fold(0xffu8, |m, &c| m.min(c)) < 0x20
}

#[cfg(test)]
#[path = "cursor_tests.rs"]
mod tests;
