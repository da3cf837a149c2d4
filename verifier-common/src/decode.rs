//! Safe decoding of raw ring buffer records.
//!
//! The ring buffer hands userspace a byte slice. Nothing about it is trusted:
//! a record shorter than its header, an unknown kind, or a file name length
//! that runs past the record is a [`DecodeError`], counted by the agent, never
//! a panic or an out-of-bounds read.

use core::fmt;

use crate::event::{
    ARGS_MAX, CGROUP_HEADER_SIZE, CgroupHeader, ExecHeader, FILENAME_MAX, HEADER_SIZE, KIND_EXEC,
    MAPPED_PATH_MAX, MMAP_RECORD_SIZE, MmapRecord, RecordKind, WRITE_RECORD_SIZE, WriteRecord,
};
use crate::throttle::{THROTTLE_RECORD_SIZE, ThrottleRecord};

/// A decoded exec record, borrowing the file name from the ring buffer.
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord<'a> {
    pub header: ExecHeader,
    /// Raw file name bytes, exactly as the kernel had them (may not be UTF-8).
    pub filename: &'a [u8],
    /// The argv strings, NUL-separated (possibly cut, see the flags).
    pub args: &'a [u8],
}

/// A decoded new-cgroup record, borrowing the path.
#[derive(Clone, Copy, Debug)]
pub struct CgroupRecord<'a> {
    pub header: CgroupHeader,
    /// The cgroup path relative to its hierarchy's root, exact bytes.
    pub path: &'a [u8],
}

/// A decoded block record, borrowing the path of the file blocked.
#[derive(Clone, Copy, Debug)]
pub struct BlockRecordRef<'a> {
    pub record: crate::enforce::BlockRecord,
    /// The file's name as the kernel had it (exact bytes; empty: the hook
    /// did not carry one).
    pub path: &'a [u8],
}

/// A decoded executable-mapping record, borrowing the path's names.
#[derive(Clone, Copy, Debug)]
pub struct MmapRecordRef<'a> {
    pub record: MmapRecord,
    /// The mapped file's names, leaf first, each NUL-terminated, as the
    /// kernel walked them ([`crate::event::MAPPED_PATH_MAX`]); empty: none.
    pub names: &'a [u8],
}

/// Any record the programs send.
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    Exec(ExecRecord<'a>),
    CgroupMkdir(CgroupRecord<'a>),
    WriteOpen(WriteRecord),
    Throttle(ThrottleRecord),
    MmapExec(MmapRecordRef<'a>),
    Block(BlockRecordRef<'a>),
}

impl Record<'_> {
    /// The kind number this record was decoded from.
    pub const fn kind(&self) -> RecordKind {
        match self {
            Record::Exec(_) => RecordKind::Exec,
            Record::CgroupMkdir(_) => RecordKind::CgroupMkdir,
            Record::WriteOpen(_) => RecordKind::WriteOpen,
            Record::Throttle(_) => RecordKind::Throttle,
            Record::MmapExec(_) => RecordKind::MmapExec,
            Record::Block(_) => RecordKind::Block,
        }
    }
}

/// Why a record could not be decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than a header.
    Truncated { len: usize },
    /// The first field names no known record kind.
    UnknownKind { kind: u16 },
    /// `filename_len` says more bytes follow than the record has, or more
    /// than the kernel could ever send.
    BadFilenameLength { claimed: usize, available: usize },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { len } => {
                write!(f, "record of {len} bytes is shorter than the {HEADER_SIZE}-byte header")
            }
            DecodeError::UnknownKind { kind } => write!(f, "unknown record kind {kind}"),
            DecodeError::BadFilenameLength { claimed, available } => {
                write!(f, "record claims a {claimed}-byte file name but carries {available} bytes")
            }
        }
    }
}

/// Decodes one ring buffer record.
pub fn decode(bytes: &[u8]) -> Result<ExecRecord<'_>, DecodeError> {
    if bytes.len() < HEADER_SIZE {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    // SAFETY: the slice holds at least HEADER_SIZE bytes, ExecHeader is
    // repr(C) plain-old-data valid for any bit pattern, and read_unaligned
    // makes no alignment assumption about the ring buffer.
    let header: ExecHeader = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
    if header.kind != KIND_EXEC {
        return Err(DecodeError::UnknownKind { kind: header.kind });
    }
    let claimed = usize::from(header.filename_len);
    let args = usize::from(header.args_len);
    let rest = &bytes[HEADER_SIZE..];
    if claimed + args > rest.len() || claimed > FILENAME_MAX || args > ARGS_MAX {
        return Err(DecodeError::BadFilenameLength { claimed: claimed + args, available: rest.len() });
    }
    Ok(ExecRecord { header, filename: &rest[..claimed], args: &rest[claimed..claimed + args] })
}

/// Decodes a record of any kind.
pub fn decode_any(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    if bytes.len() < 2 {
        return Err(DecodeError::Truncated { len: bytes.len() });
    }
    let kind = u16::from_ne_bytes([bytes[0], bytes[1]]);
    let Some(kind) = RecordKind::from_u16(kind) else {
        return Err(DecodeError::UnknownKind { kind });
    };
    match kind {
        RecordKind::Exec => decode(bytes).map(Record::Exec),
        RecordKind::CgroupMkdir => {
            if bytes.len() < CGROUP_HEADER_SIZE {
                return Err(DecodeError::Truncated { len: bytes.len() });
            }
            // SAFETY: at least CGROUP_HEADER_SIZE bytes; CgroupHeader is
            // repr(C) plain-old-data valid for any bit pattern; unaligned read.
            let header: CgroupHeader = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let claimed = usize::from(header.path_len);
            let rest = &bytes[CGROUP_HEADER_SIZE..];
            if claimed > rest.len() || claimed > FILENAME_MAX {
                return Err(DecodeError::BadFilenameLength { claimed, available: rest.len() });
            }
            Ok(Record::CgroupMkdir(CgroupRecord { header, path: &rest[..claimed] }))
        }
        RecordKind::WriteOpen => {
            if bytes.len() < WRITE_RECORD_SIZE {
                return Err(DecodeError::Truncated { len: bytes.len() });
            }
            // SAFETY: at least WRITE_RECORD_SIZE bytes of a repr(C)
            // plain-old-data struct; unaligned read.
            Ok(Record::WriteOpen(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) }))
        }
        RecordKind::Throttle => {
            if bytes.len() < THROTTLE_RECORD_SIZE {
                return Err(DecodeError::Truncated { len: bytes.len() });
            }
            // SAFETY: at least THROTTLE_RECORD_SIZE bytes of a repr(C)
            // plain-old-data struct; unaligned read.
            Ok(Record::Throttle(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) }))
        }
        RecordKind::MmapExec => {
            if bytes.len() < MMAP_RECORD_SIZE {
                return Err(DecodeError::Truncated { len: bytes.len() });
            }
            // SAFETY: at least MMAP_RECORD_SIZE bytes of a repr(C)
            // plain-old-data struct; unaligned read.
            let record: MmapRecord = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let claimed = usize::from(record.path_len);
            let rest = &bytes[MMAP_RECORD_SIZE..];
            if claimed > rest.len() || claimed > MAPPED_PATH_MAX {
                return Err(DecodeError::BadFilenameLength { claimed, available: rest.len() });
            }
            Ok(Record::MmapExec(MmapRecordRef { record, names: &rest[..claimed] }))
        }
        RecordKind::Block => {
            if bytes.len() < crate::enforce::BLOCK_RECORD_SIZE {
                return Err(DecodeError::Truncated { len: bytes.len() });
            }
            // SAFETY: at least BLOCK_RECORD_SIZE bytes of a repr(C)
            // plain-old-data struct; unaligned read.
            let record: crate::enforce::BlockRecord =
                unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast()) };
            let claimed = usize::from(record.path_len);
            let rest = &bytes[crate::enforce::BLOCK_RECORD_SIZE..];
            if claimed > rest.len() || claimed > crate::enforce::BLOCK_PATH_MAX {
                return Err(DecodeError::BadFilenameLength { claimed, available: rest.len() });
            }
            Ok(Record::Block(BlockRecordRef { record, path: &rest[..claimed] }))
        }
    }
}

/// `comm` up to its first NUL.
pub fn comm_bytes(comm: &[u8; 16]) -> &[u8] {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
    &comm[..end]
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    fn record(name: &[u8], claimed: u16) -> Vec<u8> {
        let header = ExecHeader {
            kind: KIND_EXEC,
            filename_len: claimed,
            pid: 42,
            tgid: 42,
            comm: *b"busybox\0\0\0\0\0\0\0\0\0",
            root_ino: 2,
            root_dev: 0x0010_0003,
            ..ExecHeader::default()
        };
        // SAFETY: ExecHeader is repr(C) plain-old-data.
        let head: [u8; HEADER_SIZE] = unsafe { core::mem::transmute(header) };
        let mut out = head.to_vec();
        out.extend_from_slice(name);
        out
    }

    #[test]
    fn round_trip() {
        let bytes = record(b"/bin/ls", 7);
        let rec = decode(&bytes).expect("decodes");
        assert_eq!(rec.filename, b"/bin/ls");
        assert_eq!(rec.header.tgid, 42);
        assert_eq!((rec.header.root_ino, rec.header.root_dev), (2, 0x0010_0003));
        assert_eq!(comm_bytes(&rec.header.comm), b"busybox");
    }

    #[test]
    fn arguments_follow_the_name_and_are_bounded() {
        let mut bytes = record(b"/bin/ls", 7);
        bytes[6..8].copy_from_slice(&9u16.to_ne_bytes()); // args_len
        bytes.extend_from_slice(b"ls\0-l\0/x\0");
        let rec = decode(&bytes).expect("decodes");
        assert_eq!((rec.filename, rec.args), (&b"/bin/ls"[..], &b"ls\0-l\0/x\0"[..]));
        bytes.truncate(bytes.len() - 1);
        assert_eq!(decode(&bytes).err(), Some(DecodeError::BadFilenameLength { claimed: 16, available: 15 }));
        bytes[6..8].copy_from_slice(&((ARGS_MAX + 1) as u16).to_ne_bytes());
        bytes.resize(HEADER_SIZE + 7 + ARGS_MAX + 1, 0);
        assert!(matches!(decode(&bytes), Err(DecodeError::BadFilenameLength { .. })), "over ARGS_MAX");
    }

    #[test]
    fn truncated_header() {
        let bytes = record(b"/bin/ls", 7);
        for len in [0, 1, HEADER_SIZE - 1] {
            assert_eq!(decode(&bytes[..len]).err(), Some(DecodeError::Truncated { len }));
        }
    }

    #[test]
    fn filename_longer_than_record() {
        let bytes = record(b"/bin/ls", 200);
        assert_eq!(decode(&bytes).err(), Some(DecodeError::BadFilenameLength { claimed: 200, available: 7 }));
    }

    #[test]
    fn filename_longer_than_path_max() {
        let name = [b'a'; FILENAME_MAX + 10];
        let bytes = record(&name, (FILENAME_MAX + 1) as u16);
        assert!(matches!(decode(&bytes), Err(DecodeError::BadFilenameLength { .. })));
    }

    #[test]
    fn unknown_kind() {
        let mut bytes = record(b"x", 1);
        bytes[0] = 0xff;
        bytes[1] = 0x7f;
        assert_eq!(decode(&bytes).err(), Some(DecodeError::UnknownKind { kind: 0x7fff }));
    }

    #[test]
    fn trailing_bytes_and_odd_names_are_kept_exactly() {
        // Non-UTF-8, embedded newline, trailing padding after the claimed length.
        let mut bytes = record(b"/tmp/\xff\nx", 8);
        bytes.extend_from_slice(&[0, 0, 0]);
        let rec = decode(&bytes).expect("decodes");
        assert_eq!(rec.filename, b"/tmp/\xff\nx");
    }

    #[test]
    fn empty_filename() {
        let bytes = record(b"", 0);
        assert_eq!(decode(&bytes).expect("decodes").filename, b"");
    }

    fn cgroup_record(path: &[u8], claimed: u16) -> Vec<u8> {
        let header = CgroupHeader {
            kind: crate::event::KIND_CGROUP_MKDIR,
            path_len: claimed,
            id: 7,
            level: 2,
            ..Default::default()
        };
        // SAFETY: CgroupHeader is repr(C) plain-old-data.
        let head: [u8; CGROUP_HEADER_SIZE] = unsafe { core::mem::transmute(header) };
        let mut out = head.to_vec();
        out.extend_from_slice(path);
        out
    }

    #[test]
    fn any_kind_dispatches_and_checks_bounds() {
        let exec = record(b"/bin/ls", 7);
        assert!(matches!(decode_any(&exec), Ok(Record::Exec(r)) if r.filename == b"/bin/ls"));
        let cg = cgroup_record(b"/system.slice/x.scope", 21);
        match decode_any(&cg) {
            Ok(Record::CgroupMkdir(r)) => {
                assert_eq!((r.path, r.header.id, r.header.level), (&b"/system.slice/x.scope"[..], 7, 2));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_any(&cg[..CGROUP_HEADER_SIZE - 1]).err(), Some(DecodeError::Truncated { len: 31 }));
        assert_eq!(decode_any(&cg[..1]).err(), Some(DecodeError::Truncated { len: 1 }));
        let long = cgroup_record(b"/a", 300);
        assert_eq!(
            decode_any(&long).err(),
            Some(DecodeError::BadFilenameLength { claimed: 300, available: 2 })
        );
        let mut odd = cgroup_record(b"x", 1);
        odd[0] = 9;
        assert_eq!(decode_any(&odd).err(), Some(DecodeError::UnknownKind { kind: 9 }));
    }

    #[test]
    fn write_records_decode_and_truncation_is_an_error() {
        let rec = WriteRecord {
            kind: crate::event::KIND_WRITE_OPEN,
            fd: 3,
            ino: 99,
            dev: 7,
            slot: 2,
            ..Default::default()
        };
        // SAFETY: WriteRecord is repr(C) plain-old-data.
        let bytes: [u8; WRITE_RECORD_SIZE] = unsafe { core::mem::transmute(rec) };
        match decode_any(&bytes) {
            Ok(Record::WriteOpen(w)) => assert_eq!((w.fd, w.ino, w.dev, w.slot), (3, 99, 7, 2)),
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_any(&bytes[..63]).err(), Some(DecodeError::Truncated { len: 63 }));
    }

    #[test]
    fn throttle_records_decode_and_truncation_is_an_error() {
        let rec = ThrottleRecord {
            kind: crate::event::KIND_THROTTLE,
            limit: 50,
            cgroup_id: 77,
            ktime_ns: 5,
            ..Default::default()
        };
        // SAFETY: ThrottleRecord is repr(C) plain-old-data without padding.
        let bytes: [u8; THROTTLE_RECORD_SIZE] = unsafe { core::mem::transmute(rec) };
        match decode_any(&bytes) {
            Ok(Record::Throttle(t)) => assert_eq!((t.limit, t.cgroup_id, t.ktime_ns), (50, 77, 5)),
            other => panic!("{other:?}"),
        }
        assert_eq!(decode_any(&bytes[..55]).err(), Some(DecodeError::Truncated { len: 55 }));
    }

    /// The smallest well-formed record of `kind`: its header (or fixed
    /// record) zeroed but for the kind, with nothing after it.
    fn minimal(kind: RecordKind) -> Vec<u8> {
        let size = match kind {
            RecordKind::Exec => HEADER_SIZE,
            RecordKind::CgroupMkdir => CGROUP_HEADER_SIZE,
            RecordKind::WriteOpen => WRITE_RECORD_SIZE,
            RecordKind::Throttle => THROTTLE_RECORD_SIZE,
            RecordKind::MmapExec => MMAP_RECORD_SIZE,
            RecordKind::Block => crate::enforce::BLOCK_RECORD_SIZE,
        };
        let mut bytes = std::vec![0u8; size];
        bytes[..2].copy_from_slice(&(kind as u16).to_ne_bytes());
        bytes
    }

    #[test]
    fn block_records_decode_with_their_fields() {
        let rec = crate::enforce::BlockRecord {
            kind: crate::event::KIND_BLOCK,
            reasons: crate::enforce::REASON_FILELESS,
            mode: crate::enforce::MODE_ENFORCE,
            cgroup_id: 77,
            identity: crate::event::FileIdentity { ino: 9, ..Default::default() },
            fd: -1,
            ..Default::default()
        };
        // SAFETY: BlockRecord is repr(C) plain-old-data without padding.
        let bytes: [u8; crate::enforce::BLOCK_RECORD_SIZE] = unsafe { core::mem::transmute(rec) };
        match decode_any(&bytes) {
            Ok(Record::Block(BlockRecordRef { record: b, path })) => {
                assert_eq!((b.reasons, b.mode, b.cgroup_id, b.identity.ino, b.fd), (4, 2, 77, 9, -1));
                assert!(path.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_block_carries_its_path_within_bounds() {
        let rec = crate::enforce::BlockRecord {
            kind: crate::event::KIND_BLOCK,
            path_len: 11,
            ..Default::default()
        };
        // SAFETY: BlockRecord is repr(C) plain-old-data without padding.
        let head: [u8; crate::enforce::BLOCK_RECORD_SIZE] = unsafe { core::mem::transmute(rec) };
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"/tmp/enf/sh\0garbage");
        match decode_any(&bytes) {
            Ok(Record::Block(b)) => assert_eq!(b.path, b"/tmp/enf/sh"),
            other => panic!("{other:?}"),
        }
        // A length past the record, or past the buffer the kernel fills,
        // is refused.
        bytes.truncate(crate::enforce::BLOCK_RECORD_SIZE + 5);
        assert!(matches!(
            decode_any(&bytes),
            Err(DecodeError::BadFilenameLength { claimed: 11, available: 5 })
        ));
        let huge = crate::enforce::BlockRecord {
            kind: crate::event::KIND_BLOCK,
            path_len: (crate::enforce::BLOCK_PATH_MAX + 1) as u16,
            ..Default::default()
        };
        // SAFETY: as above.
        let head: [u8; crate::enforce::BLOCK_RECORD_SIZE] = unsafe { core::mem::transmute(huge) };
        let mut bytes = head.to_vec();
        bytes.resize(crate::enforce::BLOCK_MESSAGE_SIZE + 8, 0);
        assert!(decode_any(&bytes).is_err());
    }

    #[test]
    fn every_kind_number_round_trips_to_its_variant() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::from_u16(kind as u16), Some(kind));
            let bytes = minimal(kind);
            let rec = decode_any(&bytes).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(rec.kind(), kind, "{rec:?}");
            let short = &bytes[..bytes.len() - 1];
            assert_eq!(
                decode_any(short).err(),
                Some(DecodeError::Truncated { len: short.len() }),
                "{kind:?}"
            );
        }
        let numbers: Vec<u16> = RecordKind::ALL.iter().map(|&k| k as u16).collect();
        for n in 0..=64u16 {
            assert_eq!(RecordKind::from_u16(n).is_some(), numbers.contains(&n), "kind number {n}");
        }
        let mut sorted = numbers.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, numbers, "kind numbers distinct and in order");
    }

    #[test]
    fn comm_without_nul() {
        assert_eq!(comm_bytes(&[b'a'; 16]).len(), 16);
    }
}
