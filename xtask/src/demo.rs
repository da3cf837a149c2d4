//! `cargo xtask demo`: the agent watching a real container.
//!
//! Builds a busybox-static image (an OCI bundle under target/demo), starts
//! the agent in containers-only mode, runs the image with runc, execs a few
//! programs in it, and prints what the agent reported: every exec
//! attributed to the container, with the executed file's identity.

use std::path::Path;

use anyhow::Context as _;
use serde_json::Value;
use verifier_tests::{
    agent::{Agent, execs, final_stats},
    bundle::Bundle,
    runc::Container,
};

use crate::util::{root, verifier_bin};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Print every record as raw JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let dir = root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    let bundle = Bundle::busybox(&dir.join("bundle"), &["sleep", "3600"])?;
    eprintln!("demo: image  {} (busybox-static rootfs)", bundle.rootfs().display());

    let agent = Agent::start_bin(&verifier_bin(), &["--containers-only", "--stats-interval", "0"])?;
    eprintln!("demo: agent  attached (pid {}), watching containers only", agent.pid());
    let id = format!("verifier-demo-{}", std::process::id());
    let container = Container::run(&bundle.dir, &id)?;
    eprintln!("demo: runc   started container {id} (init pid {})", container.pid()?);
    for cmd in [&["/bin/ls", "/"][..], &["/bin/cat", "/etc/os-release"], &["/bin/sh", "-c", "id && uname -r"]]
    {
        eprintln!("demo: runc   exec {}", cmd.join(" "));
        container.exec(cmd)?;
    }
    drop(container);
    let records = agent.stop()?;

    if args.json {
        for r in &records {
            println!("{r}");
        }
        return Ok(());
    }
    println!(
        "\n{:<28} {:<8} {:>7} {:>7}  {:<18} {:<10} exe (dev ino size)",
        "container", "runtime", "pid", "ns_pid", "filename", "comm"
    );
    for r in execs(&records).filter(|r| r["container"]["id"] == id.as_str()) {
        println!(
            "{:<28} {:<8} {:>7} {:>7}  {:<18} {:<10} {} {} {}",
            r["container"]["id"].as_str().unwrap_or("-"),
            r["container"]["runtime"].as_str().unwrap_or("-"),
            r["pid"],
            r["ns_pid"],
            r["filename"].as_str().unwrap_or("?"),
            r["comm"].as_str().unwrap_or("?"),
            r["exe"]["dev"].as_str().unwrap_or("-"),
            r["exe"]["ino"],
            r["exe"]["size"],
        );
    }
    let stats = final_stats(&records)?;
    show_identity(&bundle.rootfs(), &records, &id)?;
    println!(
        "\nkernel: seen {} sent {} dropped {} filtered(host) {}; agent received {}, lost {}, peak RSS {} KiB",
        stats["kernel"]["seen"],
        stats["kernel"]["sent"],
        stats["kernel"]["dropped"],
        stats["kernel"]["filtered"],
        stats["user"]["received"],
        stats["lost"],
        stats["max_rss_kib"]
    );
    println!("\none full record (schema: docs/schema.md):");
    if let Some(r) = execs(&records).find(|r| r["container"]["id"] == id.as_str()) {
        println!("{}", serde_json::to_string_pretty(r)?);
    }
    Ok(())
}

/// Shows that the kernel's identity of /bin/ls is the busybox binary in the
/// image (the symlink resolved), as `stat` sees it.
fn show_identity(rootfs: &Path, records: &[Value], id: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let busybox = std::fs::metadata(rootfs.join("bin/busybox")).context("stat busybox")?;
    let ls = execs(records).find(|r| r["filename"] == "/bin/ls" && r["container"]["id"] == id);
    if let Some(ls) = ls {
        let same = ls["exe"]["ino"].as_u64() == Some(busybox.ino());
        println!(
            "\n/bin/ls in the container is a symlink to busybox: kernel saw inode {}, stat of rootfs/bin/busybox says {} ({})",
            ls["exe"]["ino"],
            busybox.ino(),
            if same { "same file" } else { "MISMATCH" }
        );
    }
    Ok(())
}
