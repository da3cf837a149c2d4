//! The streaming JSON path: a small hand-written scanner walks the
//! top-level object and cuts the big lists (`files`, `packages`,
//! `relationships`, `components`, `@graph`, ...) into elements; serde_json
//! then parses each element from a slice of the read buffer.
//!
//! Why not `serde_json::from_reader`: it pulls bytes one at a time through
//! `io::Read` and copies every string, and measured at about half the speed
//! of parsing slices. Here the buffer holds at most one element plus one
//! read chunk (elements over [`MAX_ELEMENT`] are refused), values we skip are
//! scanned and dropped as they stream by, and the element parsers are the
//! same ones the in-memory path uses.
//!
//! The scanner only finds where a value ends (strings, escapes, bracket
//! depth); serde_json validates every value we read. Values of keys we do
//! not use are skipped unparsed: like unknown fields anywhere, they are not
//! our business beyond being well-bracketed.

use std::io::{self, Read};

use serde::Deserialize;
use serde::de::{DeserializeSeed, Error as _};

use super::super::LoadOptions;
use super::super::error::{Location, SbomError, hint};
use super::super::model::{Envelope, Manifest, SbomFormat};
use super::cursor::Bail;
use super::{Ctx, Key, Seg, Value, cdx, fast, finish, spdx2, spdx3, syft};

/// Largest single element (a file, a package, a component with its nested
/// components) or read value held in memory.
pub(crate) const MAX_ELEMENT: usize = 64 << 20;
const CHUNK: usize = 256 << 10;

enum ScanErr {
    Eof,
    Syntax(String),
    TooBig,
    Io(io::Error),
}

impl From<io::Error> for ScanErr {
    fn from(e: io::Error) -> ScanErr {
        ScanErr::Io(e)
    }
}

struct Src<R> {
    r: R,
    buf: Vec<u8>,
    /// Next unread byte; offsets handed out are relative to it.
    pos: usize,
    end: usize,
    eof: bool,
    /// Line and column (1-based) of `buf[pos]`.
    line: u64,
    col: u64,
}

impl<R: Read> Src<R> {
    fn new(r: R) -> Src<R> {
        Src { r, buf: vec![0; CHUNK], pos: 0, end: 0, eof: false, line: 1, col: 1 }
    }

    /// Reads more; false at the end of input. Moves the unread bytes to the
    /// front first when the buffer is full (offsets from `pos` stay valid).
    fn fill(&mut self) -> Result<bool, ScanErr> {
        if self.eof {
            return Ok(false);
        }
        if self.end == self.buf.len() {
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.end, 0);
                self.end -= self.pos;
                self.pos = 0;
            }
            if self.end == self.buf.len() {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        loop {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Consumes `n` bytes, keeping line and column.
    fn consume(&mut self, n: usize) {
        let bytes = &self.buf[self.pos..self.pos + n];
        match memchr::memrchr(b'\n', bytes) {
            Some(last) => {
                self.line += memchr::memchr_iter(b'\n', bytes).count() as u64;
                self.col = (n - last) as u64;
            }
            None => self.col += n as u64,
        }
        self.pos += n;
    }

    /// The next byte that is not whitespace, not consumed; `None` at the end.
    fn peek(&mut self) -> Result<Option<u8>, ScanErr> {
        loop {
            let ws = self.avail().iter().take_while(|b| matches!(b, b' ' | b'\n' | b'\r' | b'\t')).count();
            self.consume(ws);
            if let Some(&b) = self.avail().first() {
                return Ok(Some(b));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    fn expect_peek(&mut self) -> Result<u8, ScanErr> {
        self.peek()?.ok_or(ScanErr::Eof)
    }

    /// Length of the value at `pos` (whose first byte is not whitespace).
    /// With `keep` false the bytes are consumed while scanning (a value we
    /// skip need not fit in memory) and the length left is returned.
    fn scan(&mut self, keep: bool) -> Result<usize, ScanErr> {
        let first = self.avail().first().copied().ok_or(ScanErr::Eof)?;
        let scalar = !matches!(first, b'{' | b'[' | b'"');
        let mut in_str = first == b'"';
        let mut i = usize::from(in_str);
        // Open brackets, innermost last: `{]` is an error even in a value we
        // skip.
        let mut open: Vec<u8> = Vec::new();
        let mut escaped = false;
        loop {
            if self.pos + i >= self.end {
                if keep {
                    if i > MAX_ELEMENT {
                        return Err(ScanErr::TooBig);
                    }
                } else {
                    self.consume(i);
                    i = 0;
                }
                if !self.fill()? {
                    return if scalar { Ok(i) } else { Err(ScanErr::Eof) };
                }
                continue;
            }
            if escaped {
                escaped = false;
                i += 1;
                continue;
            }
            let rest = &self.buf[self.pos + i..self.end];
            if in_str {
                match memchr::memchr2(b'"', b'\\', rest) {
                    None => i += rest.len(),
                    Some(k) if rest[k] == b'\\' => {
                        escaped = true;
                        i += k + 1;
                    }
                    Some(k) => {
                        in_str = false;
                        i += k + 1;
                        if open.is_empty() {
                            return Ok(i);
                        }
                    }
                }
                continue;
            }
            let b = rest[0];
            if scalar {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                    return Ok(i);
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => in_str = true,
                b'{' => open.push(b'}'),
                b'[' => open.push(b']'),
                b'}' | b']' => {
                    if open.pop() != Some(b) {
                        self.consume(i);
                        return Err(ScanErr::Syntax(format!("unexpected `{}`", b as char)));
                    }
                    if open.is_empty() {
                        return Ok(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Reads a JSON SBOM (or JSON lines of envelopes) from a stream.
pub(crate) fn read(
    r: impl Read,
    name: &str,
    opts: &LoadOptions,
    hinted: Option<SbomFormat>,
) -> Result<Manifest, SbomError> {
    let mut ctx = Ctx::new(name);
    let mut src = Src::new(r);
    let res = (|| {
        src.fill()?;
        if src.avail().starts_with(b"\xEF\xBB\xBF") {
            src.consume(3);
        }
        loop {
            object(&mut src, &mut ctx)?;
            match src.peek()? {
                None => return Ok(()),
                // `.intoto.jsonl`: another envelope.
                Some(_) if ctx.kind.envelope.is_some() => {}
                Some(_) => {
                    return Err(ScanErr::Syntax("trailing characters after the document".into()));
                }
            }
        }
    })();
    if let Err(e) = res {
        return Err(scan_error(&mut ctx, &src, e));
    }
    finish(ctx, name, opts, hinted)
}

fn scan_error<R>(ctx: &mut Ctx, src: &Src<R>, e: ScanErr) -> SbomError {
    if let Some(f) = ctx.fatal.take() {
        return f;
    }
    let file = ctx.sink.file.clone();
    let at = Location { line: Some(src.line), column: Some(src.col), path: ctx.path() };
    match e {
        ScanErr::Eof => SbomError::Truncated { file, at, message: "EOF while parsing".into() },
        ScanErr::Syntax(message) => SbomError::Malformed {
            file,
            at,
            message,
            hint: "the file is not valid JSON: regenerate it, or check that it was not altered",
        },
        ScanErr::TooBig => SbomError::Malformed {
            file,
            at,
            message: format!("one value is larger than {} MiB", MAX_ELEMENT >> 20),
            hint: hint::TOO_LONG,
        },
        ScanErr::Io(source) => SbomError::Io { file, source },
    }
}

/// An error from serde_json inside a value that starts at `line`/`col`.
fn value_error<R>(ctx: &mut Ctx, src: &Src<R>, e: serde_json::Error) -> ScanErr {
    if ctx.fatal.is_none() {
        let (line, col) = (src.line, src.col);
        let mut err = ctx.error_from(e, "");
        if let SbomError::Malformed { at, .. } | SbomError::Truncated { at, .. } = &mut err {
            match (at.line, at.column) {
                (Some(1), Some(c)) => at.column = Some(col + c - 1),
                (Some(l), _) => at.line = Some(line + l - 1),
                (None, _) => at.column = Some(col),
            }
            at.line = at.line.map(|l| if l == 1 { line } else { l }).or(Some(line));
        }
        ctx.fatal = Some(err);
    }
    ScanErr::Syntax(String::new())
}

/// Our own check failed at the current place.
fn fatal<R>(ctx: &mut Ctx, src: &Src<R>, f: super::Fail) -> ScanErr {
    let at = Location { line: Some(src.line), column: Some(src.col), path: ctx.path() };
    ctx.fatal.get_or_insert(SbomError::Malformed {
        file: ctx.sink.file.clone(),
        at,
        message: f.message,
        hint: f.hint,
    });
    ScanErr::Syntax(String::new())
}

/// One JSON object of the document: the top level, or a wrapped predicate.
fn object<R: Read>(src: &mut Src<R>, ctx: &mut Ctx) -> Result<(), ScanErr> {
    if src.expect_peek()? != b'{' {
        return Err(ScanErr::Syntax("expected an SBOM document (a JSON object)".into()));
    }
    src.consume(1);
    let mut seen = 0u64;
    let mut first = true;
    loop {
        let mut c = src.expect_peek()?;
        if c == b'}' {
            src.consume(1);
            return Ok(());
        }
        if !first {
            if c != b',' {
                return Err(ScanErr::Syntax("expected `,` or `}` after a value".into()));
            }
            src.consume(1);
            c = src.expect_peek()?;
        }
        first = false;
        if c != b'"' {
            return Err(ScanErr::Syntax("expected a key (a string)".into()));
        }
        let len = src.scan(true)?;
        let raw = &src.avail()[1..len - 1];
        let key = match std::str::from_utf8(raw) {
            Ok(k) if !k.contains('\\') => {
                let key = Key::parse(k);
                if key == Key::Other && ctx.other_keys.len() < 8 {
                    ctx.other_keys.push(k.chars().take(40).collect());
                }
                key
            }
            _ => Key::Other,
        };
        src.consume(len);
        if src.expect_peek()? != b':' {
            return Err(ScanErr::Syntax("expected `:` after a key".into()));
        }
        src.consume(1);
        let start = src.expect_peek()?;
        if key == Key::Other {
            let len = src.scan(false)?;
            src.consume(len);
            continue;
        }
        if let Err(f) = ctx.enter_key(key, &mut seen) {
            return Err(fatal(ctx, src, f));
        }
        match (key, start) {
            (Key::Files | Key::Packages | Key::Relationships | Key::Components | Key::Graph, b'[')
            | (Key::Artifacts | Key::ArtifactRelationships, b'[') => list(src, ctx, key)?,
            (Key::Predicate | Key::Data | Key::DsseEnvelope, b'{') => {
                if key == Key::DsseEnvelope {
                    ctx.kind.envelope = Some(Envelope::SigstoreBundle);
                    ctx.kind.signed = true;
                } else {
                    ctx.kind.envelope.get_or_insert(Envelope::InToto);
                }
                if let Err(f) = ctx.enter_wrapper() {
                    return Err(fatal(ctx, src, f));
                }
                object(src, ctx)?;
                ctx.wrap_depth -= 1;
            }
            _ => {
                let len = src.scan(true)?;
                let mut de = serde_json::Deserializer::from_slice(&src.avail()[..len]);
                let r = Value { ctx: &mut *ctx, key }.deserialize(&mut de).and_then(|()| de.end());
                if let Err(e) = r {
                    return Err(value_error(ctx, src, e));
                }
                src.consume(len);
            }
        }
        ctx.stack.pop();
    }
}

/// A big list, element by element.
fn list<R: Read>(src: &mut Src<R>, ctx: &mut Ctx, key: Key) -> Result<(), ScanErr> {
    match key {
        Key::Components => ctx.kind.cdx = true,
        Key::Graph => ctx.kind.spdx3 = true,
        _ => {}
    }
    src.consume(1);
    let mut i = 0;
    loop {
        let mut c = src.expect_peek()?;
        if c == b']' {
            src.consume(1);
            return Ok(());
        }
        if i > 0 {
            if c != b',' {
                return Err(ScanErr::Syntax("expected `,` or `]` after an element".into()));
            }
            src.consume(1);
            c = src.expect_peek()?;
        }
        if c == b']' {
            return Err(ScanErr::Syntax("a list may not end with `,`".into()));
        }
        ctx.stack.push(Seg::Index(i));
        match fast::element(ctx, key, src.avail()) {
            Ok(len) => {
                src.consume(len);
                ctx.stack.pop();
                i += 1;
                continue;
            }
            Err(Bail::Fallback) => {}
            // Not whole in the buffer: cut it out first, then try again.
            Err(Bail::More) => {
                let len = src.scan(true)?;
                if let Ok(n) = fast::element(ctx, key, &src.avail()[..len]) {
                    src.consume(n);
                    ctx.stack.pop();
                    i += 1;
                    continue;
                }
            }
        }
        let len = src.scan(true)?;
        let mut de = serde_json::Deserializer::from_slice(&src.avail()[..len]);
        let r = element(ctx, key, &mut de).and_then(|()| de.end());
        if let Err(e) = r {
            return Err(value_error(ctx, src, e));
        }
        src.consume(len);
        ctx.stack.pop();
        i += 1;
    }
}

fn element(
    ctx: &mut Ctx,
    key: Key,
    de: &mut serde_json::Deserializer<serde_json::de::SliceRead<'_>>,
) -> Result<(), serde_json::Error> {
    fn apply<T>(
        ctx: &mut Ctx,
        t: T,
        f: fn(&mut Ctx, T) -> Result<(), super::Fail>,
    ) -> Result<(), serde_json::Error> {
        f(ctx, t).map_err(|fail| ctx.fail(fail))
    }
    match key {
        Key::Files => apply(ctx, spdx2::File::deserialize(de)?, spdx2::file),
        Key::Packages => apply(ctx, spdx2::Package::deserialize(de)?, spdx2::package),
        Key::Relationships => apply(ctx, spdx2::Relationship::deserialize(de)?, spdx2::relationship),
        Key::Graph => apply(ctx, spdx3::Element::deserialize(de)?, spdx3::element),
        Key::Artifacts => apply(ctx, syft::Artifact::deserialize(de)?, syft::artifact),
        Key::ArtifactRelationships => apply(ctx, syft::Relationship::deserialize(de)?, syft::relationship),
        Key::Components => cdx::Component::seed(ctx).deserialize(de).map(drop),
        _ => Err(serde_json::Error::custom("not a list key")),
    }
}
