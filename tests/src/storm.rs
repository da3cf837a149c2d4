//! An exec storm: workers that fork and exec a tiny program as fast as they
//! can, for a count or a duration.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Runs `program` `count` times across `workers` threads. Returns the
/// number of successful execs and the wall time.
pub fn by_count(program: &Path, count: u64, workers: u64) -> (u64, Duration) {
    let started = Instant::now();
    let per = count / workers;
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let program = program.to_path_buf();
            let n = if w == workers - 1 { count - per * (workers - 1) } else { per };
            std::thread::spawn(move || (0..n).filter(|_| spawn_one(&program)).count() as u64)
        })
        .collect();
    let done = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (done, started.elapsed())
}

/// Runs `program` for `duration` across `workers` threads; returns execs
/// completed and the exact elapsed time.
pub fn by_time(program: &Path, duration: Duration, workers: u64) -> (u64, Duration) {
    let started = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let program = program.to_path_buf();
            std::thread::spawn(move || {
                let mut n = 0u64;
                while started.elapsed() < duration {
                    if spawn_one(&program) {
                        n += 1;
                    }
                }
                n
            })
        })
        .collect();
    let done = handles.into_iter().map(|h| h.join().unwrap_or(0)).sum();
    (done, started.elapsed())
}

fn spawn_one(program: &Path) -> bool {
    Command::new(program)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Copies a tiny program (`/bin/true`) to a unique path in `dir`, so its
/// execs can be told apart from everything else on the machine.
pub fn marker_program(dir: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(name);
    std::fs::copy("/bin/true", &path)?;
    Ok(path)
}

/// A minimal static x86-64 ELF executable that exits 0 at once, followed by
/// `tag` (never loaded as code, but part of the file: each tag gives a
/// different SHA-256). Cheaper to exec than any real binary, so an exec
/// storm of it stresses the agent hardest.
#[cfg(target_arch = "x86_64")]
pub fn tiny_elf(tag: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE_AT: u64 = 64 + 56;
    // xor edi, edi; mov eax, 60 (exit); syscall
    let code: [u8; 9] = [0x31, 0xff, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05];
    let len = CODE_AT + code.len() as u64 + tag.len() as u64;
    let mut f = Vec::with_capacity(len as usize);
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&0x3eu16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&(BASE + CODE_AT).to_le_bytes()); // entry
    f.extend_from_slice(&64u64.to_le_bytes()); // phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for v in [0u64, BASE, BASE, len, len, 0x1000] {
        f.extend_from_slice(&v.to_le_bytes()); // offset vaddr paddr filesz memsz align
    }
    f.extend_from_slice(&code);
    f.extend_from_slice(tag);
    f
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn the_tiny_elf_runs_and_exits_zero() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tiny");
        std::fs::write(&path, super::tiny_elf(b"tag")).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        assert!(std::process::Command::new(&path).status().expect("exec").success());
    }
}
