//! Paths as SBOMs write them, and as the agent looks them up.
//!
//! Tools disagree: `/usr/bin/x`, `./usr/bin/x`, `usr/bin/x` (dpkg, apk),
//! `/tmp/scan/rootfs/usr/bin/x` (the directory that was scanned). The
//! manifest stores one form only, absolute and clean, so that a lookup is a
//! single hash probe. `..` is resolved as a chroot would: it never climbs
//! above `/`.

/// Normalizes an SBOM path to the absolute form the manifest uses:
/// `./usr/bin/x`, `usr/bin/x`, `/usr//bin/./x` all give `/usr/bin/x`.
/// `None` for a path with no file name left (`""`, `/`, `./`) or with a NUL.
pub fn normalize_path(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len() + 1);
    normalize_into(raw, &mut out).then_some(out)
}

/// [`normalize_path`] into a reused buffer; false when there is no path.
pub(crate) fn normalize_into(raw: &str, out: &mut String) -> bool {
    out.clear();
    if raw.as_bytes().contains(&0) {
        return false;
    }
    if is_clean_absolute(raw) {
        out.push_str(raw);
        return true;
    }
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                let cut = out.rfind('/').unwrap_or(0);
                out.truncate(cut);
            }
            _ => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    !out.is_empty()
}

/// Already `/a/b/c` with no empty, `.` or `..` component and no trailing `/`.
fn is_clean_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    if b.len() < 2 || b[0] != b'/' || b[b.len() - 1] == b'/' {
        return false;
    }
    // Each component starts after a '/': it must not be empty, `.` or `..`.
    memchr::memchr_iter(b'/', b).all(|i| {
        let c = &b[i + 1..];
        let end = memchr::memchr(b'/', c).unwrap_or(c.len());
        !matches!(&c[..end], b"" | b"." | b"..")
    })
}

/// Top-level directories that a merged-/usr image makes symlinks into
/// `/usr` (`/bin -> usr/bin`, ...).
const USR_MERGED: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32", "libo32"];

/// The other name of `path` on a merged-/usr image: `/usr/bin/x` <->
/// `/bin/x`, `/usr/sbin` <-> `/sbin`, `/usr/lib*` <-> `/lib*`. `None`
/// outside those directories (and for the directories themselves).
pub(crate) fn usr_merge_alias(path: &str) -> Option<String> {
    let (usr, rest) = match path.strip_prefix("/usr/") {
        Some(rest) => (true, rest),
        None => (false, path.strip_prefix('/')?),
    };
    let (top, below) = rest.split_once('/')?;
    if !USR_MERGED.contains(&top) || below.is_empty() {
        return None;
    }
    Some(if usr { format!("/{rest}") } else { format!("/usr/{rest}") })
}

/// Top-level directories of a Linux root filesystem: an SBOM whose paths all
/// start with one of these was made from `/`, not from a scan directory.
const STANDARD_TOP: &[&str] = &[
    "bin", "boot", "dev", "etc", "home", "lib", "lib32", "lib64", "libx32", "media", "mnt", "opt", "proc",
    "root", "run", "sbin", "srv", "sys", "tmp", "usr", "var",
];

/// Directories whose presence right below a prefix shows that the prefix is
/// a root filesystem.
const ROOTFS_MARKERS: &[&str] = &["usr", "etc", "bin", "sbin", "lib", "lib64"];

/// Where scan directories usually live: a shared prefix starting here is
/// worth a hint, though it is too ambiguous to strip on our own.
const SCRATCH_TOP: &[&str] = &["tmp", "home", "root", "mnt", "media", "srv", "run"];

/// What [`detect_root_prefix`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PrefixGuess {
    /// No shared prefix, or one that is part of the image (`/usr/...`).
    None,
    /// Every path starts with this scan directory (`/rootfs`): strip it.
    Strip(String),
    /// Every path starts with this, which may be a scan directory, but it
    /// starts like a real top-level directory (`/tmp/rootfs`): say so.
    Ambiguous(String),
}

/// Guesses the directory an SBOM's paths were scanned from, only when the
/// answer is unambiguous: every path starts with the same directory, that
/// directory is not a standard top-level one, and below it sits what looks
/// like a root filesystem (`usr`, `etc`, `bin`, ...).
pub(crate) fn detect_root_prefix<'a>(paths: impl Iterator<Item = &'a str> + Clone) -> PrefixGuess {
    let mut it = paths.clone();
    let Some(first) = it.next() else {
        return PrefixGuess::None;
    };
    // Common directory prefix, as a byte length of `first` ending before a '/'.
    let mut common = first.rfind('/').unwrap_or(0);
    for p in it {
        if common == 0 {
            return PrefixGuess::None;
        }
        let limit = common.min(p.len());
        let mut same = first.as_bytes()[..limit].iter().zip(p.as_bytes()).take_while(|(a, b)| a == b).count();
        // `first[..same]` must end at a component boundary in both paths.
        if !(same == common && p.as_bytes().get(same) == Some(&b'/')) {
            same = first[..same].rfind('/').unwrap_or(0);
        }
        common = same;
    }
    if common == 0 {
        return PrefixGuess::None;
    }
    let comps: Vec<&str> = first[1..common].split('/').collect();
    if STANDARD_TOP.contains(&comps[0]) {
        let hint = SCRATCH_TOP.contains(&comps[0])
            && (comps.iter().skip(1).any(|c| ROOTFS_MARKERS.contains(c))
                || next_components(paths, common).any(|c| ROOTFS_MARKERS.contains(&c)));
        return if hint { PrefixGuess::Ambiguous(first[..common].to_owned()) } else { PrefixGuess::None };
    }
    for k in 1..comps.len() {
        if ROOTFS_MARKERS.contains(&comps[k]) {
            return PrefixGuess::Strip(format!("/{}", comps[..k].join("/")));
        }
    }
    if next_components(paths, common).any(|c| ROOTFS_MARKERS.contains(&c)) {
        return PrefixGuess::Strip(first[..common].to_owned());
    }
    PrefixGuess::None
}

/// The component right after the first `at` bytes of each path (a directory,
/// not a file name).
fn next_components<'a>(paths: impl Iterator<Item = &'a str>, at: usize) -> impl Iterator<Item = &'a str> {
    paths.filter_map(move |p| {
        let rest = p.get(at + 1..)?;
        let (dir, _) = rest.split_once('/')?;
        Some(dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_the_usual_spellings() {
        for raw in
            ["/usr/bin/x", "./usr/bin/x", "usr/bin/x", "/usr//bin/./x", "//usr/bin/x", "usr/lib/../bin/x"]
        {
            assert_eq!(normalize_path(raw).as_deref(), Some("/usr/bin/x"), "{raw}");
        }
        assert_eq!(normalize_path("/../../etc/passwd").as_deref(), Some("/etc/passwd"));
        assert_eq!(normalize_path("/usr/bin/").as_deref(), Some("/usr/bin"));
        assert_eq!(normalize_path("a b/c d").as_deref(), Some("/a b/c d"));
        for raw in ["", "/", "./", ".", "..", "a/..", "/x\0y"] {
            assert_eq!(normalize_path(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn usr_merge_aliases_go_both_ways_and_only_there() {
        for (a, b) in [
            ("/bin/ls", "/usr/bin/ls"),
            ("/sbin/ldconfig", "/usr/sbin/ldconfig"),
            ("/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6"),
            ("/lib64/ld-linux-x86-64.so.2", "/usr/lib64/ld-linux-x86-64.so.2"),
        ] {
            assert_eq!(usr_merge_alias(a).as_deref(), Some(b));
            assert_eq!(usr_merge_alias(b).as_deref(), Some(a));
        }
        for none in [
            "/usr/libexec/x",
            "/usr/share/doc/x",
            "/etc/passwd",
            "/bin",
            "/usr/bin",
            "/usr/local/bin/x",
            "bin/x",
        ] {
            assert_eq!(usr_merge_alias(none), None, "{none}");
        }
    }

    fn guess(paths: &[&str]) -> PrefixGuess {
        detect_root_prefix(paths.iter().copied())
    }

    #[test]
    fn strips_a_scan_directory_only_when_unambiguous() {
        assert_eq!(
            guess(&["/rootfs/usr/bin/a", "/rootfs/etc/passwd", "/rootfs/bin/sh"]),
            PrefixGuess::Strip("/rootfs".into())
        );
        // The scan directory itself may be several levels deep.
        assert_eq!(
            guess(&["/scan/out/rootfs/usr/bin/a", "/scan/out/rootfs/usr/lib/b"]),
            PrefixGuess::Strip("/scan/out/rootfs".into())
        );
        // A real image: different top-level dirs.
        assert_eq!(guess(&["/usr/bin/a", "/etc/passwd"]), PrefixGuess::None);
        // All under /usr: that is part of the image, not a scan directory.
        assert_eq!(guess(&["/usr/bin/a", "/usr/lib/b"]), PrefixGuess::None);
        // An app-only image: /app is not followed by a rootfs.
        assert_eq!(guess(&["/app/server", "/app/static/x.js"]), PrefixGuess::None);
        // /tmp/rootfs could be either: a hint, no stripping.
        assert_eq!(
            guess(&["/tmp/rootfs/usr/bin/a", "/tmp/rootfs/etc/x"]),
            PrefixGuess::Ambiguous("/tmp/rootfs".into())
        );
        // Prefix that is a string prefix but not a directory prefix.
        assert_eq!(guess(&["/rootfs/usr/bin/a", "/rootfs2/usr/bin/a"]), PrefixGuess::None);
        assert_eq!(guess(&[]), PrefixGuess::None);
        assert_eq!(guess(&["/x"]), PrefixGuess::None);
    }
}
