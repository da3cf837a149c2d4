//! Fast readers for the elements that make up nearly all of a big SBOM:
//! SPDX 2 `files` and `relationships`, CycloneDX `components`.
//!
//! The serde path cuts an element out of the buffer with the scanner and
//! then parses it with serde_json into owned or decoded fields: two passes
//! and a few allocations per element. Here one pass over the read buffer
//! (see [`Cursor`]) collects borrowed slices, and digests are decoded only
//! when kept, straight into the manifest's digest buffer.
//!
//! The fast readers cover the common shape only. Whatever else they meet
//! (escapes in fields we keep, Syft fields, nested components, evidence,
//! duplicate keys, odd types, overlong fields) makes them give up before
//! touching the manifest, and the element goes through the serde path
//! (`chunked::list`), which gives the same result or the same error as
//! before. The differential fuzz target holds the two paths together.

use super::super::model::PackageRef;
use super::super::sink::MAX_PATH;
use super::cursor::{Bail, Cursor, Res};
use super::{Ctx, Key, MAX_FIELD, spdx2};
use crate::de::DigestText;

/// Most digests (or `:path` properties) one element may carry here.
const MAX_ITEMS: usize = 8;

/// Up to [`MAX_ITEMS`] small things, on the stack.
struct Few<T> {
    items: [T; MAX_ITEMS],
    len: usize,
}

impl<T: Copy + Default> Few<T> {
    fn new() -> Self {
        Few { items: [T::default(); MAX_ITEMS], len: 0 }
    }
    fn push(&mut self, t: T) -> Res<()> {
        let slot = self.items.get_mut(self.len).ok_or(Bail::Fallback)?;
        *slot = t;
        self.len += 1;
        Ok(())
    }
    fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// Reads one element of the list under `key` from the start of `bytes` and
/// applies it; `Ok(len)` is how many bytes it took. On `Err` nothing was
/// changed.
pub(super) fn element(ctx: &mut Ctx, key: Key, bytes: &[u8]) -> Res<usize> {
    let mut c = Cursor::new(bytes);
    match key {
        Key::Files => {
            let f = spdx_file(&mut c)?;
            apply_file(ctx, &f)?;
        }
        Key::Relationships => {
            let (from, kind, to) = relationship(&mut c)?;
            spdx2::contains(ctx, from, kind, to);
        }
        Key::Components => {
            let comp = component(&mut c)?;
            apply_component(ctx, &comp)?;
        }
        _ => return Err(Bail::Fallback),
    }
    Ok(c.pos())
}

/// Marks a known key as seen; a second one is left to serde (it refuses).
fn once(seen: &mut u32, bit: u32) -> Res<()> {
    if *seen & (1 << bit) != 0 {
        return Err(Bail::Fallback);
    }
    *seen |= 1 << bit;
    Ok(())
}

/// A string (or `null`) no longer than `MAX_FIELD`.
fn field<'a>(c: &mut Cursor<'a>) -> Res<Option<&'a str>> {
    let s = c.opt_str()?;
    if s.is_some_and(|s| s.len() > MAX_FIELD) {
        return Err(Bail::Fallback);
    }
    Ok(s)
}

/// A list of `{name_key: .., value_key: ..}` digests, or `null`.
fn digests<'a>(c: &mut Cursor<'a>, alg_key: &[u8], hex_key: &[u8], out: &mut Few<DigestText<'a>>) -> Res<()> {
    if c.null_or_list()? || !c.list_first()? {
        return Ok(());
    }
    loop {
        c.eat(b'{')?;
        let mut d = DigestText::default();
        let mut seen = 0;
        if c.object_first()? {
            loop {
                let k = c.key()?;
                if k == alg_key {
                    once(&mut seen, 0)?;
                    d.alg = c.opt_str()?;
                } else if k == hex_key {
                    once(&mut seen, 1)?;
                    d.hex = c.opt_str()?;
                } else {
                    c.skip()?;
                }
                if !c.object_next()? {
                    break;
                }
            }
        }
        out.push(d)?;
        if !c.list_next()? {
            return Ok(());
        }
    }
}

struct SpdxFile<'a> {
    id: Option<&'a str>,
    name: Option<&'a str>,
    digests: Few<DigestText<'a>>,
}

fn spdx_file<'a>(c: &mut Cursor<'a>) -> Res<SpdxFile<'a>> {
    let mut f = SpdxFile { id: None, name: None, digests: Few::new() };
    c.eat(b'{')?;
    if !c.object_first()? {
        return Ok(f);
    }
    let mut seen = 0;
    loop {
        match c.key()? {
            b"SPDXID" => {
                once(&mut seen, 0)?;
                f.id = c.opt_str()?;
            }
            b"fileName" => {
                once(&mut seen, 1)?;
                f.name = c.opt_str()?;
            }
            b"checksums" => {
                once(&mut seen, 2)?;
                digests(c, b"algorithm", b"checksumValue", &mut f.digests)?;
            }
            // Syft's form of a file: the serde reader knows it.
            b"id" | b"location" | b"digests" | b"metadata" => return Err(Bail::Fallback),
            _ => c.skip()?,
        }
        if !c.object_next()? {
            return Ok(f);
        }
    }
}

fn apply_file(ctx: &mut Ctx, f: &SpdxFile<'_>) -> Res<()> {
    let path = f.name.unwrap_or_default();
    if path.len() > MAX_PATH {
        return Err(Bail::Fallback);
    }
    ctx.digests.clear();
    for d in f.digests.as_slice() {
        ctx.sink.push_text(&mut ctx.digests, *d, path);
    }
    let index = ctx.sink.add_file(path, &ctx.digests, None, false).map_err(|_| Bail::Fallback)?;
    if let (Some(i), Some(id)) = (index, f.id) {
        ctx.links.file(id, i);
    }
    Ok(())
}

type Relationship<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn relationship<'a>(c: &mut Cursor<'a>) -> Res<Relationship<'a>> {
    let (mut from, mut kind, mut to) = (None, None, None);
    c.eat(b'{')?;
    if !c.object_first()? {
        return Ok((from, kind, to));
    }
    let mut seen = 0;
    loop {
        match c.key()? {
            b"spdxElementId" => {
                once(&mut seen, 0)?;
                from = c.opt_str()?;
            }
            b"relationshipType" => {
                once(&mut seen, 1)?;
                kind = c.opt_str()?;
            }
            b"relatedSpdxElement" => {
                once(&mut seen, 2)?;
                to = c.opt_str()?;
            }
            _ => c.skip()?,
        }
        if !c.object_next()? {
            return Ok((from, kind, to));
        }
    }
}

struct Component<'a> {
    is_file: bool,
    name: Option<&'a str>,
    version: Option<&'a str>,
    purl: Option<&'a str>,
    digests: Few<DigestText<'a>>,
    /// Values of properties whose name ends in `:path`.
    paths: Few<&'a str>,
}

/// `"type"`: a string or `null`.
fn is_file(c: &mut Cursor<'_>) -> Res<bool> {
    Ok(c.opt_str()? == Some("file"))
}

/// `properties`: keeps the values of `*:path` ones.
fn path_properties<'a>(c: &mut Cursor<'a>, out: &mut Few<&'a str>) -> Res<()> {
    if c.null_or_list()? || !c.list_first()? {
        return Ok(());
    }
    loop {
        c.eat(b'{')?;
        let (mut name, mut value) = (None, None);
        let mut seen = 0;
        if c.object_first()? {
            loop {
                match c.key()? {
                    b"name" => {
                        once(&mut seen, 0)?;
                        name = c.opt_str()?;
                    }
                    b"value" => {
                        once(&mut seen, 1)?;
                        value = c.opt_str()?;
                    }
                    _ => c.skip()?,
                }
                if !c.object_next()? {
                    break;
                }
            }
        }
        if let (Some(n), Some(v)) = (name, value)
            && super::cdx::is_path_property(n)
        {
            if v.len() > MAX_PATH {
                return Err(Bail::Fallback);
            }
            out.push(v)?;
        }
        if !c.list_next()? {
            return Ok(());
        }
    }
}

fn component<'a>(c: &mut Cursor<'a>) -> Res<Component<'a>> {
    let mut comp = Component {
        is_file: false,
        name: None,
        version: None,
        purl: None,
        digests: Few::new(),
        paths: Few::new(),
    };
    c.eat(b'{')?;
    if !c.object_first()? {
        return Ok(comp);
    }
    let mut seen = 0;
    loop {
        match c.key()? {
            b"type" => {
                once(&mut seen, 0)?;
                comp.is_file = is_file(c)?;
            }
            b"name" => {
                once(&mut seen, 1)?;
                comp.name = field(c)?;
            }
            b"version" => {
                once(&mut seen, 2)?;
                comp.version = field(c)?;
            }
            b"purl" => {
                once(&mut seen, 3)?;
                comp.purl = field(c)?;
            }
            b"hashes" => {
                once(&mut seen, 4)?;
                digests(c, b"alg", b"content", &mut comp.digests)?;
            }
            b"properties" => {
                once(&mut seen, 5)?;
                path_properties(c, &mut comp.paths)?;
            }
            // Nested components and evidence: the serde reader handles them.
            b"components" | b"evidence" => return Err(Bail::Fallback),
            _ => c.skip()?,
        }
        if !c.object_next()? {
            return Ok(comp);
        }
    }
}

/// What `cdx::Component` does at the end of a component without nested
/// components or evidence.
fn apply_component(ctx: &mut Ctx, comp: &Component<'_>) -> Res<()> {
    if comp.is_file {
        let name = comp.name.as_slice();
        let paths = if comp.paths.len == 0 { name } else { comp.paths.as_slice() };
        if paths.iter().any(|p| p.len() > MAX_PATH) {
            return Err(Bail::Fallback);
        }
        let hint = paths.first().copied().unwrap_or_default();
        ctx.digests.clear();
        for d in comp.digests.as_slice() {
            ctx.sink.push_text(&mut ctx.digests, *d, hint);
        }
        for p in paths {
            ctx.sink.add_file(p, &ctx.digests, None, false).map_err(|_| Bail::Fallback)?;
        }
        if paths.is_empty() {
            // Counted as a file without a usable path.
            let _ = ctx.sink.add_file("", &ctx.digests, None, false);
        }
        return Ok(());
    }
    if comp.name.is_none() && comp.version.is_none() && comp.purl.is_none() {
        return Ok(());
    }
    ctx.sink.m.add_package(PackageRef {
        name: comp.name.unwrap_or_default().to_owned(),
        version: comp.version.map(str::to_owned),
        purl: comp.purl.map(str::to_owned),
    });
    Ok(())
}

#[cfg(test)]
#[path = "fast_tests.rs"]
mod tests;
