//! A `#!` script that was run: its own bytes, and the interpreter its
//! first line names.
//!
//! The kernel runs a script by running its interpreter with the script's
//! path as an argument; what it reports as executed (`mm->exe_file`, the
//! identity in the record) is the interpreter, and it flags the record as a
//! script. So an exec of a script is judged twice: the interpreter as any
//! executed file (proven by the kernel's identity), and the script by its
//! own path and digests against the same SBOM. Both must be `ok`.
//!
//! The interpreter can be found after the script has gone: the script's
//! `#!` line, read beneath the container root, names it, and the file found
//! there must have the kernel's identity (device, inode, ctime, size), the
//! same proof as for a path the process named.
//!
//! The gap, said plainly: the script itself has no kernel identity in the
//! record, so its bytes are hashed when it is judged, not when it ran. A
//! script rewritten between its run and its judging (milliseconds) is judged
//! by its new bytes. That is why a script's decision is never cached nor
//! put in the kernel fast path: every run is judged again.

use std::{fs::File, os::unix::fs::FileExt as _, os::unix::fs::MetadataExt as _};

use verifier_sbom::{
    fsroot::RootDir,
    hash::{Algs, FileHashes, hash_reader},
};

/// The kernel reads this much of a file to find a `#!` line
/// (`BINPRM_BUF_SIZE`).
const HEAD: usize = 256;

/// A `#!` script run through an interpreter.
#[derive(Debug)]
pub(crate) struct Script {
    /// Canonical path inside the container (or the executed path as the
    /// kernel had it, when it no longer resolves).
    pub path: Vec<u8>,
    /// `None`: not a readable regular file within the size cap.
    pub hashes: Option<FileHashes>,
}

/// Opens the script at `path` beneath `root`, hashes it with `algs` (the
/// algorithms the SBOM compares by: dpkg's MD5 too) and reads the
/// interpreter its `#!` line names.
pub(crate) fn read_script(
    root: &RootDir,
    path: Vec<u8>,
    algs: Algs,
    max: u64,
    buf: &mut [u8],
) -> (Script, Option<Vec<u8>>) {
    let rel = path.strip_prefix(b"/").unwrap_or(&path);
    let Some(file) = root.open_read(rel).ok().filter(|f| f.metadata().is_ok_and(|m| m.is_file())) else {
        return (Script { path, hashes: None }, None);
    };
    let interpreter = head(&file).as_deref().and_then(interpreter).map(<[u8]>::to_vec);
    let hashes =
        file.metadata().is_ok_and(|m| m.size() <= max).then(|| hash_reader(&file, algs, buf).ok()).flatten();
    (Script { path, hashes }, interpreter)
}

/// The first bytes of a file, read without moving its offset.
fn head(file: &File) -> Option<Vec<u8>> {
    let mut head = vec![0u8; HEAD];
    let n = file.read_at(&mut head, 0).ok()?;
    head.truncate(n);
    Some(head)
}

/// The interpreter of a `#!` line, as the kernel's `binfmt_script` reads
/// it: after `#!` and any blanks, up to the next blank or end of line.
pub(crate) fn interpreter(head: &[u8]) -> Option<&[u8]> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n' || b == 0).next()?;
    let start = line.iter().position(|&b| b != b' ' && b != b'\t')?;
    let name = &line[start..];
    let end = name.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(name.len());
    Some(&name[..end]).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interpreter_is_the_first_word_of_the_shebang_line() {
        assert_eq!(interpreter(b"#!/bin/sh\nexec grep -E \"$@\"\n"), Some(&b"/bin/sh"[..]));
        assert_eq!(interpreter(b"#! /usr/bin/env python3\n"), Some(&b"/usr/bin/env"[..]));
        assert_eq!(interpreter(b"#!\t/bin/bash -e\n"), Some(&b"/bin/bash"[..]));
        assert_eq!(interpreter(b"#!/bin/sh"), Some(&b"/bin/sh"[..]), "no newline within the head");
        assert_eq!(interpreter(b"#!   \n/bin/sh\n"), None, "nothing on the line");
        assert_eq!(interpreter(b"\x7fELF"), None);
        assert_eq!(interpreter(b""), None);
    }

    #[test]
    fn a_script_is_hashed_with_every_algorithm_asked_and_its_interpreter_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = b"#!/bin/sh\necho hi\n";
        std::fs::write(dir.path().join("s"), text).expect("write");
        let root = RootDir::open(dir.path()).expect("root");
        let algs = Algs::SHA256.with(verifier_sbom::HashAlg::Md5);
        let (s, interp) = read_script(&root, b"/s".to_vec(), algs, 1 << 20, &mut [0; 64]);
        assert_eq!(interp.as_deref(), Some(&b"/bin/sh"[..]));
        let h = s.hashes.expect("hashed");
        let want = <sha2::Sha256 as sha2::Digest>::digest(text);
        assert_eq!(h.sha256.map(|d| d.to_vec()), Some(want.to_vec()));
        assert!(h.digest(verifier_sbom::HashAlg::Md5).is_some(), "MD5 too (dpkg)");
        let (gone, none) = read_script(&root, b"/missing".to_vec(), algs, 1 << 20, &mut [0; 64]);
        assert!(gone.hashes.is_none() && none.is_none());
        let (big, _) = read_script(&root, b"/s".to_vec(), algs, 4, &mut [0; 64]);
        assert!(big.hashes.is_none(), "over the cap");
    }
}
