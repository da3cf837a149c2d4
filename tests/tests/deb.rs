//! The build-host package: `cargo xtask deb`'s .deb holds the binary, the
//! hardened unit and conffiles; systemd accepts the unit (`systemd-analyze
//! verify`, any warning fails) and rates its exposure (`systemd-analyze
//! security --offline`). Installed and started with `dpkg -i` and
//! `systemctl` only where systemd is PID 1; elsewhere (this machine's
//! sandbox) the package is unpacked into a root beside a copy of the
//! host's unit directory, which is what `--root` checks need.

use std::{path::Path, process::Command};

use verifier_tests::{agent::verifier_bin, deb};

fn text(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_package_holds_a_unit_systemd_accepts_and_rates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = deb::build(&verifier_bin(), "0.1.0", dir.path()).expect("dpkg-deb builds the package");
    let (ok, contents, err) = text(Command::new("dpkg-deb").arg("-c").arg(&path));
    assert!(ok, "{err}");
    for f in [
        "./usr/bin/verifier",
        "./lib/systemd/system/verifier.service",
        "./etc/verifier/verifier.conf",
        "./etc/verifier/sbom-rules",
        "./var/lib/verifier/sboms/",
    ] {
        assert!(contents.lines().any(|l| l.ends_with(f)), "{f} missing: {contents}");
    }
    assert!(contents.lines().all(|l| l.contains(" root/root ")), "owned by root: {contents}");
    let (_, package, _) = text(Command::new("dpkg-deb").arg("-f").arg(&path).arg("Package"));
    assert_eq!(package.trim(), deb::PACKAGE);
    let (ok, conffiles, err) = text(Command::new("dpkg-deb").arg("-I").arg(&path).arg("conffiles"));
    assert!(ok, "{err}");
    assert_eq!(
        conffiles.lines().collect::<Vec<_>>(),
        ["/etc/verifier/verifier.conf", "/etc/verifier/sbom-rules"]
    );

    let root = dir.path().join("root");
    let (ok, _, err) = text(Command::new("dpkg-deb").arg("-x").arg(&path).arg(&root));
    assert!(ok, "{err}");
    // The targets the unit's default dependencies name come from the host.
    let (ok, _, err) =
        text(Command::new("cp").args(["-rn", "/lib/systemd/system/."]).arg(root.join("lib/systemd/system")));
    assert!(ok, "{err}");
    let (ok, out, err) = text(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.display()))
            .arg("verifier.service"),
    );
    assert!(ok && err.trim().is_empty() && out.trim().is_empty(), "systemd-analyze verify: {out}{err}");
    let (_, out, err) = text(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(format!("--root={}", root.display()))
            .arg("verifier.service"),
    );
    let score: f64 = format!("{out}{err}")
        .lines()
        .find_map(|l| l.split("verifier.service: ").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {out}{err}"));
    eprintln!("systemd-analyze security: exposure {score} (0 best, 10 worst)");
    assert!(score <= 4.0, "the unit lost its hardening: exposure {score}\n{out}");

    if Path::new("/run/systemd/system").exists() && nix::unistd::Uid::effective().is_root() {
        let (ok, _, err) = text(Command::new("dpkg").arg("-i").arg(&path));
        assert!(ok, "dpkg -i: {err}");
        let (active, out, _) = text(Command::new("systemctl").args(["is-active", "verifier.service"]));
        let _ = Command::new("dpkg").args(["--purge", deb::PACKAGE]).status();
        assert!(active, "the service is not active after dpkg -i: {out}");
    } else {
        eprintln!("systemd is not PID 1 here: dpkg -i / systemctl start not tried (unit checked offline)");
    }
}
