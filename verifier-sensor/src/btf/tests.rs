//! BTF reader tests: synthetic blobs for layout rules and bad input, and the
//! running kernel's BTF checked against `bpftool`'s independent reading.

use std::{collections::HashMap, process::Command};

use super::{Btf, VMLINUX_BTF, offsets};

/// Builds a BTF blob from (name, info, size_or_type, extra words) entries.
fn blob(types: &[(&str, u32, u32, Vec<u32>)], member_names: &[&str]) -> Vec<u8> {
    let mut strings = vec![0u8];
    let mut name_off: HashMap<String, u32> = HashMap::new();
    for n in types.iter().map(|t| t.0).chain(member_names.iter().copied()) {
        if !n.is_empty() && !name_off.contains_key(n) {
            name_off.insert(n.into(), strings.len() as u32);
            strings.extend_from_slice(n.as_bytes());
            strings.push(0);
        }
    }
    let mut tsec = Vec::new();
    for (name, info, sot, extra) in types {
        let off = if name.is_empty() { 0 } else { name_off[*name] };
        for w in [off, *info, *sot] {
            tsec.extend_from_slice(&w.to_le_bytes());
        }
        for w in extra {
            tsec.extend_from_slice(&w.to_le_bytes());
        }
    }
    // Replace member name placeholders: extra words that are u32::MAX - i
    // name member_names[i].
    let mut fixed = Vec::new();
    for chunk in tsec.chunks(4) {
        let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let w = if w > u32::MAX - 100 { name_off[member_names[(u32::MAX - w) as usize]] } else { w };
        fixed.extend_from_slice(&w.to_le_bytes());
    }
    let mut out = Vec::new();
    out.extend_from_slice(&0xeb9fu16.to_le_bytes());
    out.extend_from_slice(&[1, 0]);
    for w in [24u32, 0, fixed.len() as u32, fixed.len() as u32, strings.len() as u32] {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend_from_slice(&fixed);
    out.extend_from_slice(&strings);
    out
}

const fn info(kind: u32, vlen: u32) -> u32 {
    kind << 24 | vlen
}

fn name(i: u32) -> u32 {
    u32::MAX - i
}

#[test]
fn anonymous_union_members_are_found_with_their_offset() {
    // [1] int; [2] union (anon) { int a @0; int b @0 } size 4;
    // [3] struct outer { int x @0; union (anon) @64 bits } size 12
    let types = vec![
        ("int", info(1, 0), 4, vec![32]),
        ("", info(5, 2), 4, vec![name(0), 1, 0, name(1), 1, 0]),
        ("outer", info(4, 2), 12, vec![name(2), 1, 0, 0, 2, 64]),
    ];
    let btf = Btf::parse(blob(&types, &["a", "b", "x"])).expect("parses");
    assert_eq!(btf.member_offset("outer", "x").expect("x"), 0);
    assert_eq!(btf.member_offset("outer", "b").expect("b through anon union"), 8);
    assert_eq!(btf.struct_size("outer").expect("size"), 12);
    assert!(btf.member_offset("outer", "nope").is_err());
    assert!(btf.member_offset("nostruct", "x").is_err());
}

#[test]
fn bitfields_are_refused() {
    // struct s { int f:3 @ bit 5 } with kind_flag set.
    let types = vec![
        ("int", info(1, 0), 4, vec![32]),
        ("s", info(4, 1) | 1 << 31, 4, vec![name(0), 1, (3 << 24) | 5]),
    ];
    let btf = Btf::parse(blob(&types, &["f"])).expect("parses");
    let err = btf.member_offset("s", "f").expect_err("bitfield refused").to_string();
    assert!(err.contains("bitfield"), "{err}");
}

#[test]
fn garbage_and_truncation_are_errors_not_panics() {
    assert!(Btf::parse(b"".to_vec()).is_err());
    assert!(Btf::parse(b"\x00\x00garbage-garbage-garbage".to_vec()).is_err());
    let good = blob(&[("int", info(1, 0), 4, vec![32])], &[]);
    for cut in 0..good.len() {
        let _ = Btf::parse(good[..cut].to_vec());
    }
    let mut bad_kind = good.clone();
    bad_kind[24 + 7] = 30; // kind 30 does not exist
    assert!(Btf::parse(bad_kind).expect_err("bad kind refused").contains("unknown BTF kind"));
}

/// `bpftool btf dump ... format raw`, parsed independently of our reader:
/// type id -> (name, members as (name, type id, bit offset)).
struct Raw(HashMap<u32, RawStruct>);

/// (name, members as (name, type id, bit offset)).
type RawStruct = (String, Vec<(String, u32, u32)>);

impl Raw {
    fn parse(text: &str) -> Self {
        let mut types = HashMap::new();
        let mut current: Option<u32> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix('[') {
                let id: u32 = rest.split(']').next().and_then(|s| s.parse().ok()).unwrap_or(0);
                let is_aggregate = line.contains("] STRUCT '") || line.contains("] UNION '");
                current = is_aggregate.then_some(id);
                if is_aggregate {
                    let name = line.split('\'').nth(1).unwrap_or_default().to_string();
                    types.insert(id, (name, Vec::new()));
                }
            } else if let (Some(id), Some(body)) = (current, line.strip_prefix('\t')) {
                let field = |key: &str| -> u32 {
                    body.split(key)
                        .nth(1)
                        .and_then(|s| s.split_whitespace().next())
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(u32::MAX)
                };
                let name = body.split('\'').nth(1).unwrap_or_default().to_string();
                let entry = types.get_mut(&id).expect("current aggregate");
                entry.1.push((name, field("type_id="), field("bits_offset=")));
            }
        }
        Self(types)
    }

    /// Byte offset of `member` in the named struct, looking into anonymous
    /// members the way C does.
    fn offset(&self, strukt: &str, member: &str) -> Option<u32> {
        let id =
            self.0.iter().filter(|(_, (n, m))| n == strukt && !m.is_empty()).map(|(id, _)| *id).next()?;
        self.offset_in(id, member).map(|bits| bits / 8)
    }

    fn offset_in(&self, id: u32, member: &str) -> Option<u32> {
        let (_, members) = self.0.get(&id)?;
        if let Some((_, _, bits)) = members.iter().find(|(n, _, _)| n == member) {
            return Some(*bits);
        }
        members
            .iter()
            .filter(|(n, _, _)| n == "(anon)")
            .find_map(|(_, t, bits)| self.offset_in(*t, member).map(|inner| bits + inner))
    }
}

#[test]
fn running_kernel_offsets_match_bpftool() {
    let btf = Btf::from_file(VMLINUX_BTF).expect("this machine has kernel BTF");
    let resolved = offsets::resolve(&btf).expect("all exec fields resolve");
    let raw = Command::new("bpftool")
        .args(["btf", "dump", "file", VMLINUX_BTF, "format", "raw"])
        .output()
        .expect("bpftool runs (installed by `cargo xtask setup`)");
    assert!(raw.status.success(), "bpftool failed");
    let raw = Raw::parse(&String::from_utf8_lossy(&raw.stdout));
    let check = |strukt: &str, member: &str, ours: u32| {
        assert_eq!(raw.offset(strukt, member), Some(ours), "{strukt}.{member}");
    };
    check("task_struct", "real_parent", resolved.task_real_parent);
    check("task_struct", "tgid", resolved.task_tgid);
    check("task_struct", "mm", resolved.task_mm);
    check("task_struct", "nsproxy", resolved.task_nsproxy);
    check("task_struct", "thread_pid", resolved.task_thread_pid);
    check("mm_struct", "exe_file", resolved.mm_exe_file);
    check("mm_struct", "arg_start", resolved.mm_arg_start);
    check("mm_struct", "arg_end", resolved.mm_arg_end);
    check("file", "f_inode", resolved.file_f_inode);
    check("inode", "i_ino", resolved.inode_i_ino);
    check("inode", "i_sb", resolved.inode_i_sb);
    check("inode", "i_size", resolved.inode_i_size);
    check("super_block", "s_dev", resolved.sb_s_dev);
    check("nsproxy", "mnt_ns", resolved.nsproxy_mnt_ns);
    check("pid", "level", resolved.pid_level);
    check("pid", "numbers", resolved.pid_numbers);
    check("upid", "nr", resolved.upid_nr);
    check("upid", "ns", resolved.upid_ns);
    check("linux_binprm", "filename", resolved.bprm_filename);
    check("linux_binprm", "interp", resolved.bprm_interp);
    check("linux_binprm", "file", resolved.bprm_file);
    check("task_struct", "files", resolved.task_files);
    check("inode", "i_nlink", resolved.inode_i_nlink);
    check("inode", "i_mode", resolved.inode_i_mode);
    check("files_struct", "fdt", resolved.files_fdt);
    check("fdtable", "fd", resolved.fdtable_fd);
    check("fdtable", "max_fds", resolved.fdtable_max_fds);
    check("file", "f_mode", resolved.file_f_mode);
    check("task_struct", "fs", resolved.task_fs);
    check("dentry", "d_inode", resolved.dentry_d_inode);
    check("dentry", "d_parent", resolved.dentry_d_parent);
    check("vfsmount", "mnt_root", resolved.vfsmount_mnt_root);
    check("mount", "mnt", resolved.mount_mnt);
    check("mount", "mnt_parent", resolved.mount_mnt_parent);
    check("mount", "mnt_mountpoint", resolved.mount_mnt_mountpoint);
    check("vm_area_struct", "vm_file", resolved.vma_vm_file);
    check("syscall_trace_exit", "ret", resolved.tp_sys_exit_ret);
    check("syscall_trace_enter", "args", resolved.tp_sys_enter_args);
    check("trace_event_raw_cgroup", "root", resolved.tp_cgroup_root);
    check("trace_event_raw_cgroup", "level", resolved.tp_cgroup_level);
    check("trace_event_raw_cgroup", "id", resolved.tp_cgroup_id);
    check("trace_event_raw_cgroup", "__data_loc_path", resolved.tp_cgroup_path_loc);
    // Nested: mnt_namespace.ns (struct ns_common) + ns_common.inum.
    let ns = raw.offset("mnt_namespace", "ns").expect("mnt_namespace.ns");
    let inum = raw.offset("ns_common", "inum").expect("ns_common.inum");
    assert_eq!(resolved.mnt_ns_inum, ns + inum);
    // Nested: fs_struct.root (struct path) + path.dentry.
    let root = raw.offset("fs_struct", "root").expect("fs_struct.root");
    let dentry = raw.offset("path", "dentry").expect("path.dentry");
    assert_eq!(resolved.fs_root_dentry, root + dentry);
    assert!(btf.member_is_pointer("fs_struct", "root.dentry"));
    let mnt = raw.offset("path", "mnt").expect("path.mnt");
    assert_eq!(resolved.fs_root_mnt, root + mnt);
    let f_path = raw.offset("file", "f_path").expect("file.f_path");
    assert_eq!((resolved.file_f_path_dentry, resolved.file_f_path_mnt), (f_path + dentry, f_path + mnt));
    let d_name = raw.offset("dentry", "d_name").expect("dentry.d_name");
    let name = raw.offset("qstr", "name").expect("qstr.name");
    assert_eq!(resolved.dentry_d_name_name, d_name + name);
    assert!(btf.member_is_pointer("dentry", "d_name.name"));
    let sec = raw.offset("inode", "i_ctime_sec").or_else(|| raw.offset("inode", "__i_ctime"));
    assert_eq!(Some(resolved.inode_ctime_sec), sec);
    assert!(btf.member_is_pointer("task_struct", "mm"));
    assert!(!btf.member_is_pointer("task_struct", "tgid"));
}
