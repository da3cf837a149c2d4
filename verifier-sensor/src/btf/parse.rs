//! A reader of the BTF wire format, just enough to answer "at which byte
//! offset is member `a.b.c` of `struct x`, and how big is `struct y`",
//! looking through anonymous structs and unions as the C compiler does.

use std::path::Path;

/// Why BTF could not be read or a field could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error(
        "cannot read kernel BTF at {path} (the kernel must be built with CONFIG_DEBUG_INFO_BTF=y, or pass --btf FILE)"
    )]
    Read { path: String, source: std::io::Error },
    #[error("{path}: not BTF data ({why})")]
    Format { path: String, why: String },
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF has no member `{member}` in struct `{strukt}`")]
    NoMember { strukt: String, member: String },
    #[error("member `{member}` of struct `{strukt}` is a bitfield; cannot read it by byte offset")]
    Bitfield { strukt: String, member: String },
}

const MAGIC: u16 = 0xeb9f;

// Kinds, from include/uapi/linux/btf.h.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// One member of a struct or union.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: &'a [u8],
    /// Type id of the member.
    pub type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    pub bit_offset: u32,
    /// Non-zero for bitfields.
    pub bitfield_size: u32,
}

/// Parsed BTF. Kernel BTF holds ~150,000 types; the agent needs a dozen, so
/// this keeps the raw bytes plus one position per type and decodes members
/// and names only when asked (a few MiB rather than tens of MiB at start-up).
#[derive(Debug)]
pub struct Btf {
    data: Vec<u8>,
    strings: std::ops::Range<usize>,
    /// Byte position of each type's header; index = type id (0 = void).
    type_pos: Vec<u32>,
}

fn le32(data: &[u8], off: usize) -> Option<u32> {
    data.get(off..off + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

impl Btf {
    /// Reads and parses a BTF file (normally [`super::VMLINUX_BTF`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let data = std::fs::read(path)
            .map_err(|source| BtfError::Read { path: path.display().to_string(), source })?;
        Self::parse(data).map_err(|why| BtfError::Format { path: path.display().to_string(), why })
    }

    /// Parses BTF bytes (little-endian, as on this machine).
    pub fn parse(data: impl Into<Vec<u8>>) -> Result<Self, String> {
        let data = data.into();
        let u32_at = |off: usize| le32(&data, off).ok_or_else(|| format!("truncated at byte {off}"));
        let magic = data.get(0..2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        if magic != Some(MAGIC) {
            return Err("bad magic (big-endian BTF is not supported)".into());
        }
        let hdr_len = u32_at(4)? as usize;
        let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
        let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
        let types_start = hdr_len.saturating_add(type_off);
        let types_end = types_start.saturating_add(type_len);
        let strs_start = hdr_len.saturating_add(str_off);
        let strings = strs_start..strs_start.saturating_add(str_len);
        if strings.end > data.len() {
            return Err("string section out of bounds".into());
        }
        if types_end > data.len() {
            return Err("type section out of bounds".into());
        }
        let mut type_pos = vec![0u32];
        let mut pos = types_start;
        while pos < types_end {
            let info = u32_at(pos + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                other => return Err(format!("unknown BTF kind {other} at byte {pos}")),
            };
            type_pos.push(pos as u32);
            pos += 12 + extra;
        }
        if pos > types_end {
            return Err(format!("last type runs past the type section (byte {pos})"));
        }
        Ok(Self { data, strings, type_pos })
    }

    /// Number of types, including void.
    pub fn len(&self) -> usize {
        self.type_pos.len()
    }

    /// Whether there are no types besides void.
    pub fn is_empty(&self) -> bool {
        self.type_pos.len() <= 1
    }

    fn word(&self, off: usize) -> u32 {
        // Bounds were checked by `parse` for every type it indexed.
        le32(&self.data, off).unwrap_or(0)
    }

    /// (name offset, kind, kind_flag, vlen, size_or_type) of type `id`.
    fn header(&self, id: u32) -> Option<(u32, u32, bool, usize, u32)> {
        let pos = *self.type_pos.get(id as usize)? as usize;
        if id == 0 {
            return None;
        }
        let info = self.word(pos + 4);
        Some((
            self.word(pos),
            (info >> 24) & 0x1f,
            info >> 31 == 1,
            (info & 0xffff) as usize,
            self.word(pos + 8),
        ))
    }

    fn name(&self, off: u32) -> &[u8] {
        let s = self.data.get(self.strings.start + off as usize..self.strings.end).unwrap_or_default();
        &s[..s.iter().position(|&b| b == 0).unwrap_or(s.len())]
    }

    /// Members of struct/union `id` (empty for other kinds).
    fn members(&self, id: u32) -> impl Iterator<Item = Member<'_>> {
        let (kind, flag, vlen) = match self.header(id) {
            Some((_, k @ (KIND_STRUCT | KIND_UNION), flag, vlen, _)) => (k, flag, vlen),
            _ => (0, false, 0),
        };
        let base = self.type_pos.get(id as usize).map_or(0, |&p| p as usize + 12);
        (0..if kind == 0 { 0 } else { vlen }).map(move |i| {
            let m = base + i * 12;
            let raw = self.word(m + 8);
            let (bit_offset, bitfield_size) = if flag { (raw & 0xff_ffff, raw >> 24) } else { (raw, 0) };
            Member { name: self.name(self.word(m)), type_id: self.word(m + 4), bit_offset, bitfield_size }
        })
    }

    fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        // A name can repeat (a definition and a forward-declared or empty
        // duplicate); the one with members is the definition.
        let mut fallback = None;
        for id in 1..self.type_pos.len() as u32 {
            let Some((name_off, kind, _, vlen, _)) = self.header(id) else { continue };
            if matches!(kind, KIND_STRUCT | KIND_UNION) && self.name(name_off) == name.as_bytes() {
                if vlen > 0 {
                    return Ok(id);
                }
                fallback.get_or_insert(id);
            }
        }
        fallback.ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    /// Size in bytes of `struct name`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        let id = self.struct_id(name)?;
        Ok(self.header(id).map_or(0, |h| h.4))
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.header(id) {
                Some((
                    _,
                    KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG,
                    _,
                    _,
                    t,
                )) => {
                    id = t;
                }
                _ => return id,
            }
        }
        id
    }

    /// Finds `member` directly in type `id` or inside its anonymous
    /// struct/union members (depth-bounded); returns (bit offset, member).
    fn find_member(&self, id: u32, member: &str, depth: u32) -> Option<(u32, Member<'_>)> {
        if depth > 8 {
            return None;
        }
        let id = self.resolve(id);
        if let Some(m) = self.members(id).find(|m| m.name == member.as_bytes()) {
            return Some((m.bit_offset, m));
        }
        self.members(id).filter(|m| m.name.is_empty()).find_map(|anon| {
            self.find_member(anon.type_id, member, depth + 1)
                .map(|(off, found)| (anon.bit_offset + off, found))
        })
    }

    /// Byte offset of a dotted member path (`"ns.inum"`) in `struct strukt`.
    /// Each step must be an embedded struct or union (not a pointer).
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = self.struct_id(strukt)?;
        let mut bits = 0u32;
        for part in path.split('.') {
            let (off, m) = self
                .find_member(id, part, 0)
                .ok_or_else(|| BtfError::NoMember { strukt: strukt.into(), member: path.into() })?;
            if m.bitfield_size != 0 || off % 8 != 0 {
                return Err(BtfError::Bitfield { strukt: strukt.into(), member: path.into() });
            }
            bits += off;
            id = m.type_id;
        }
        Ok(bits / 8)
    }

    /// Whether the member at `path` of `strukt` is a pointer.
    pub fn member_is_pointer(&self, strukt: &str, path: &str) -> bool {
        let Ok(mut id) = self.struct_id(strukt) else { return false };
        for part in path.split('.') {
            let Some((_, m)) = self.find_member(id, part, 0) else { return false };
            id = m.type_id;
        }
        self.header(self.resolve(id)).is_some_and(|h| h.1 == KIND_PTR)
    }
}
