//! `map-exec [--mprotect] PATH...`: maps each file `PROT_READ | PROT_EXEC`,
//! as the dynamic loader maps a shared library (with `--mprotect`: maps it
//! `PROT_READ`, then makes it executable with `mprotect`), then holds the
//! mappings for a moment so the agent can look them up.
//!
//! Built by `cargo xtask kernels` with plain `rustc` (no crates) as a static
//! binary and shipped inside the guest's container image, so the matrix can
//! check the mmap hook where no python3 or compiler exists.

use std::{os::fd::AsRawFd as _, time::Duration};

const PROT_READ: i32 = 1;
const PROT_EXEC: i32 = 4;
const MAP_PRIVATE: i32 = 2;

unsafe extern "C" {
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn mprotect(addr: *mut u8, len: usize, prot: i32) -> i32;
}

fn main() {
    let mut failed = false;
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let later = args.first().is_some_and(|a| a == "--mprotect");
    if later {
        args.remove(0);
    }
    for path in args {
        let mapped = std::fs::File::open(&path).and_then(|f| {
            let len = f.metadata()?.len() as usize;
            let prot = if later { PROT_READ } else { PROT_READ | PROT_EXEC };
            // SAFETY: a fresh private mapping of an open file; never read.
            let at = unsafe { mmap(std::ptr::null_mut(), len, prot, MAP_PRIVATE, f.as_raw_fd(), 0) };
            if at as isize == -1 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: the mapping just made, whole.
            if later && unsafe { mprotect(at, len, PROT_READ | PROT_EXEC) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
        if let Err(e) = mapped {
            eprintln!("map-exec: {path}: {e}");
            failed = true;
        }
    }
    // Long enough for the agent to find the mapping under a slow emulated
    // CPU (half a second was not).
    std::thread::sleep(Duration::from_secs(15));
    std::process::exit(i32::from(failed));
}
