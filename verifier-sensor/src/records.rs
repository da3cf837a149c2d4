//! The one enum of records the sensor hands the agent.
//!
//! A ring-buffer record is decoded by `verifier_common::decode` (bounds,
//! kind numbers) and turned here into an owned [`Record`] with wall-clock
//! times. One variant per kind: the agent matches on it once, and a new
//! kind is a new variant the compiler then asks every consumer to handle.
//! A library mapping is a record of its own ([`Record::Library`]), not an
//! exec with a flag.

use verifier_common::{
    decode::{self, DecodeError},
    event::RecordKind,
};

use crate::events::{BlockEvent, CgroupEvent, Clock, ExecEvent, LibraryEvent, ThrottleEvent, WriteEvent};

/// A decoded record.
#[derive(Clone, Debug)]
pub enum Record {
    /// A program was executed.
    Exec(ExecEvent),
    /// A file was mapped executable (a shared library).
    Library(LibraryEvent),
    /// A verified file was opened for writing.
    Write(WriteEvent),
    /// A cgroup was created.
    Cgroup(CgroupEvent),
    /// A container went past its exec limit.
    Throttle(ThrottleEvent),
    /// An exec or mapping was blocked in an enforced container (or would
    /// have been, in dry-run).
    Block(BlockEvent),
}

impl Record {
    /// Decodes one ring-buffer record; `clock` converts its kernel time.
    pub fn from_bytes(bytes: &[u8], clock: &Clock) -> Result<Self, DecodeError> {
        Ok(match decode::decode_any(bytes)? {
            decode::Record::Exec(r) => Record::Exec(ExecEvent::from_record(&r, clock)),
            decode::Record::MmapExec(r) => Record::Library(LibraryEvent::from_record(&r, clock)),
            decode::Record::WriteOpen(record) => {
                Record::Write(WriteEvent { unix_ns: clock.unix_ns(record.ktime_ns), record })
            }
            decode::Record::CgroupMkdir(r) => Record::Cgroup(CgroupEvent::from_record(&r, clock)),
            decode::Record::Throttle(record) => {
                Record::Throttle(ThrottleEvent { unix_ns: clock.unix_ns(record.ktime_ns), record })
            }
            decode::Record::Block(r) => Record::Block(BlockEvent::from_record(&r, clock)),
        })
    }

    /// The kind number the record came with.
    pub const fn kind(&self) -> RecordKind {
        match self {
            Record::Exec(_) => RecordKind::Exec,
            Record::Library(_) => RecordKind::MmapExec,
            Record::Write(_) => RecordKind::WriteOpen,
            Record::Cgroup(_) => RecordKind::CgroupMkdir,
            Record::Throttle(_) => RecordKind::Throttle,
            Record::Block(_) => RecordKind::Block,
        }
    }
}

#[cfg(test)]
mod tests {
    use verifier_common::{
        event::{
            CGROUP_HEADER_SIZE, CgroupHeader, ExecHeader, FileIdentity, HEADER_SIZE, MMAP_RECORD_SIZE,
            MmapRecord, WRITE_RECORD_SIZE, WriteRecord,
        },
        throttle::{THROTTLE_RECORD_SIZE, ThrottleRecord},
    };

    use super::*;

    /// The bytes of a repr(C) plain-old-data record.
    fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
        // SAFETY: T is one of the repr(C) plain-old-data records, read as
        // exactly size_of::<T>() bytes.
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    /// A well-formed record of each kind, built from its layout.
    fn sample(kind: RecordKind) -> Vec<u8> {
        let k = kind as u16;
        let mut bytes = match kind {
            RecordKind::Exec => bytes_of(&ExecHeader {
                kind: k,
                filename_len: 7,
                ktime_ns: 10,
                tgid: 3,
                ..Default::default()
            }),
            RecordKind::CgroupMkdir => {
                bytes_of(&CgroupHeader { kind: k, path_len: 7, ktime_ns: 10, id: 9, ..Default::default() })
            }
            RecordKind::WriteOpen => {
                bytes_of(&WriteRecord { kind: k, ktime_ns: 10, ino: 5, ..Default::default() })
            }
            RecordKind::Throttle => {
                bytes_of(&ThrottleRecord { kind: k, ktime_ns: 10, cgroup_id: 9, ..Default::default() })
            }
            RecordKind::MmapExec => bytes_of(&MmapRecord {
                kind: k,
                ktime_ns: 10,
                identity: FileIdentity { ino: 5, ..Default::default() },
                ..Default::default()
            }),
            RecordKind::Block => bytes_of(&verifier_common::enforce::BlockRecord {
                kind: k,
                ktime_ns: 10,
                cgroup_id: 9,
                path_len: 7,
                ..Default::default()
            }),
        };
        if matches!(kind, RecordKind::Exec | RecordKind::CgroupMkdir | RecordKind::Block) {
            bytes.extend_from_slice(b"/bin/ls");
        }
        bytes
    }

    #[test]
    fn every_kind_number_maps_to_its_variant() {
        let clock = Clock::new();
        for kind in RecordKind::ALL {
            let record =
                Record::from_bytes(&sample(kind), &clock).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
            assert_eq!(record.kind(), kind, "{record:?}");
            let fixed = match kind {
                RecordKind::Exec => HEADER_SIZE,
                RecordKind::CgroupMkdir => CGROUP_HEADER_SIZE,
                RecordKind::WriteOpen => WRITE_RECORD_SIZE,
                RecordKind::Throttle => THROTTLE_RECORD_SIZE,
                RecordKind::MmapExec => MMAP_RECORD_SIZE,
                RecordKind::Block => verifier_common::enforce::BLOCK_RECORD_SIZE,
            };
            let cut = &sample(kind)[..fixed - 1];
            assert!(Record::from_bytes(cut, &clock).is_err(), "{kind:?} cut short");
        }
    }

    #[test]
    fn a_mapping_is_a_library_record_with_its_own_fields_and_time() {
        let clock = Clock::new();
        let Ok(Record::Library(l)) = Record::from_bytes(&sample(RecordKind::MmapExec), &clock) else {
            panic!("not a library record");
        };
        assert_eq!((l.identity.ino, l.unix_ns), (5, clock.unix_ns(10)));
        let job = ExecEvent::of_library(&l);
        assert!(job.library && job.filename.is_empty());
        assert_eq!(job.exe, Some(l.identity));
        let Ok(Record::Exec(e)) = Record::from_bytes(&sample(RecordKind::Exec), &clock) else {
            panic!("not an exec record");
        };
        assert!(!e.library);
        assert_eq!((e.filename.as_slice(), e.tgid, e.unix_ns), (&b"/bin/ls"[..], 3, clock.unix_ns(10)));
    }

    #[test]
    fn a_block_keeps_the_path_it_carried() {
        let clock = Clock::new();
        let Ok(Record::Block(b)) = Record::from_bytes(&sample(RecordKind::Block), &clock) else {
            panic!("not a block record");
        };
        assert_eq!(
            (b.path.as_slice(), b.path_truncated, b.unix_ns),
            (&b"/bin/ls"[..], false, clock.unix_ns(10))
        );
    }

    #[test]
    fn unknown_kinds_are_errors() {
        let mut bytes = sample(RecordKind::WriteOpen);
        bytes[..2].copy_from_slice(&0x7fffu16.to_ne_bytes());
        assert_eq!(
            Record::from_bytes(&bytes, &Clock::new()).err(),
            Some(DecodeError::UnknownKind { kind: 0x7fff })
        );
    }
}
