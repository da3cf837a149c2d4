//! A reader of the BTF wire format, just enough to answer "at which byte
//! offset is member `a.b.c` of `struct x`, and how big is `struct y`",
//! looking through anonymous structs and unions as the C compiler does.

use std::{collections::HashMap, path::Path};

/// Why BTF could not be read or a field could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    #[error("cannot read kernel BTF at {path}: {source}; the kernel must be built with CONFIG_DEBUG_INFO_BTF=y")]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Type id of the member.
    pub type_id: u32,
    /// Offset in bits from the start of the enclosing struct.
    pub bit_offset: u32,
    /// Non-zero for bitfields.
    pub bitfield_size: u32,
}

#[derive(Clone, Debug)]
struct Type {
    kind: u32,
    name: String,
    /// `size` for sized kinds, referenced type id for the others.
    size_or_type: u32,
    members: Vec<Member>,
}

/// Parsed BTF: every type by id, and struct/union ids by name.
#[derive(Debug)]
pub struct Btf {
    types: Vec<Type>,
    by_name: HashMap<String, Vec<u32>>,
}

impl Btf {
    /// Reads and parses a BTF file (normally [`super::VMLINUX_BTF`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        let data = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&data).map_err(|why| BtfError::Format {
            path: path.display().to_string(),
            why,
        })
    }

    /// Parses BTF bytes (little-endian, as on this machine).
    pub fn parse(data: &[u8]) -> Result<Self, String> {
        let u16_at = |off: usize| -> Result<u16, String> {
            data.get(off..off + 2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .ok_or_else(|| format!("truncated at byte {off}"))
        };
        let u32_at = |off: usize| -> Result<u32, String> {
            data.get(off..off + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| format!("truncated at byte {off}"))
        };
        if u16_at(0)? != MAGIC {
            return Err("bad magic (big-endian BTF is not supported)".into());
        }
        let hdr_len = u32_at(4)? as usize;
        let type_off = u32_at(8)? as usize;
        let type_len = u32_at(12)? as usize;
        let str_off = u32_at(16)? as usize;
        let str_len = u32_at(20)? as usize;
        let types_start = hdr_len + type_off;
        let types_end = types_start + type_len;
        let strs_start = hdr_len + str_off;
        let strings = data
            .get(strs_start..strs_start + str_len)
            .ok_or("string section out of bounds")?;
        let name = |off: u32| -> String {
            let s = strings.get(off as usize..).unwrap_or_default();
            let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
            String::from_utf8_lossy(&s[..end]).into_owned()
        };
        if types_end > data.len() {
            return Err("type section out of bounds".into());
        }

        // Type id 0 is void.
        let mut types = vec![Type { kind: 0, name: String::new(), size_or_type: 0, members: vec![] }];
        let mut pos = types_start;
        while pos < types_end {
            let name_off = u32_at(pos)?;
            let info = u32_at(pos + 4)?;
            let size_or_type = u32_at(pos + 8)?;
            pos += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            pos += match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = pos + i * 12;
                        let raw_off = u32_at(m + 8)?;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (raw_off & 0xff_ffff, raw_off >> 24)
                        } else {
                            (raw_off, 0)
                        };
                        members.push(Member {
                            name: name(u32_at(m)?),
                            type_id: u32_at(m + 4)?,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                other => return Err(format!("unknown BTF kind {other} at byte {}", pos - 12)),
            };
            types.push(Type { kind, name: name(name_off), size_or_type, members });
        }
        let mut by_name: HashMap<String, Vec<u32>> = HashMap::new();
        for (id, t) in types.iter().enumerate() {
            if matches!(t.kind, KIND_STRUCT | KIND_UNION) && !t.name.is_empty() {
                by_name.entry(t.name.clone()).or_default().push(id as u32);
            }
        }
        Ok(Self { types, by_name })
    }

    /// Number of types, including void.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// Whether there are no types besides void.
    pub fn is_empty(&self) -> bool {
        self.types.len() <= 1
    }

    fn struct_id(&self, name: &str) -> Result<u32, BtfError> {
        // A name can repeat (a complete definition and an unused duplicate);
        // the one with members is the definition.
        let ids = self.by_name.get(name).ok_or_else(|| BtfError::NoStruct(name.into()))?;
        ids.iter()
            .copied()
            .find(|&id| !self.types[id as usize].members.is_empty())
            .or_else(|| ids.first().copied())
            .ok_or_else(|| BtfError::NoStruct(name.into()))
    }

    /// Size in bytes of `struct name`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.types[self.struct_id(name)? as usize].size_or_type)
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            let Some(t) = self.types.get(id as usize) else { return id };
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.size_or_type;
                }
                _ => return id,
            }
        }
        id
    }

    /// Finds `member` directly in type `id` or inside its anonymous
    /// struct/union members; returns (bit offset, member).
    fn find_member(&self, id: u32, member: &str) -> Option<(u32, &Member)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        if !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for m in &t.members {
            if m.name == member {
                return Some((m.bit_offset, m));
            }
        }
        for m in t.members.iter().filter(|m| m.name.is_empty()) {
            if let Some((off, found)) = self.find_member(m.type_id, member) {
                return Some((m.bit_offset + off, found));
            }
        }
        None
    }

    /// Byte offset of a dotted member path (`"ns.inum"`) in `struct strukt`.
    /// Each step must be an embedded struct or union (not a pointer).
    pub fn member_offset(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = self.struct_id(strukt)?;
        let mut bits = 0u32;
        for part in path.split('.') {
            let (off, m) = self.find_member(id, part).ok_or_else(|| BtfError::NoMember {
                strukt: strukt.into(),
                member: path.into(),
            })?;
            if m.bitfield_size != 0 || off % 8 != 0 {
                return Err(BtfError::Bitfield { strukt: strukt.into(), member: path.into() });
            }
            bits += off;
            id = m.type_id;
        }
        Ok(bits / 8)
    }

    /// Whether `struct strukt` has a member at `path`.
    pub fn has_member(&self, strukt: &str, path: &str) -> bool {
        self.member_offset(strukt, path).is_ok()
    }

    /// Whether the member at `path` of `strukt` is a pointer.
    pub fn member_is_pointer(&self, strukt: &str, path: &str) -> bool {
        let Ok(mut id) = self.struct_id(strukt) else { return false };
        let mut last = None;
        for part in path.split('.') {
            let Some((_, m)) = self.find_member(id, part) else { return false };
            id = m.type_id;
            last = Some(m.type_id);
        }
        last.is_some_and(|t| self.types[self.resolve(t) as usize].kind == KIND_PTR)
    }
}
