//! `cargo xtask demo`: the agent verifying a real container against its
//! image's SBOM.
//!
//! Builds a busybox-static image (an OCI bundle under target/demo), writes
//! its SBOM with `verifier sbom generate`, starts the agent with that SBOM
//! for the container, runs the image with runc, execs a few of the image's
//! programs (verified `ok`, then answered in the kernel), then drops a new
//! binary into the container and runs it: a drift alert on the alert
//! stream. Prints what the agent reported.

use std::{process::Command, time::Duration};

use anyhow::{Context as _, bail};
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
    // The image's name, as a runtime would record it in the bundle.
    verifier_tests::image::annotate(
        &bundle,
        &[("io.verifier.image.name", "localhost/verifier-demo/busybox:1")],
    )?;
    eprintln!("demo: image  {} (busybox-static rootfs)", bundle.rootfs().display());
    let sbom = dir.join("image.spdx.json");
    let status = Command::new(verifier_bin())
        .args(["sbom", "generate", "-o"])
        .arg(&sbom)
        .arg(bundle.rootfs())
        .status()
        .context("running verifier sbom generate")?;
    if !status.success() {
        bail!("sbom generate failed: {status}");
    }
    eprintln!("demo: sbom   {} (verifier sbom generate: SHA-256 of every file)", sbom.display());

    let id = format!("verifier-demo-{}", std::process::id());
    let rule = format!("{id}={}", sbom.display());
    let agent = Agent::start_bin(
        &verifier_bin(),
        &["--containers-only", "--stats-interval", "0", "--no-metrics", "--sbom", &rule],
    )?;
    eprintln!("demo: agent  attached (pid {}), verifying container {id} against the SBOM", agent.pid());
    let container = Container::run(&bundle.dir, &id)?;
    eprintln!("demo: runc   started container {id} (init pid {})", container.pid()?);
    for cmd in [&["/bin/ls", "/"][..], &["/bin/cat", "/etc/os-release"], &["/bin/sh", "-c", "id && uname -r"]]
    {
        eprintln!("demo: runc   exec {}", cmd.join(" "));
        container.exec(cmd)?;
    }
    let drop_in = "mkdir -p /tmp/x && cat /bin/busybox > /tmp/x/true && echo >> /tmp/x/true && chmod +x /tmp/x/true && /tmp/x/true";
    eprintln!("demo: runc   exec sh -c '{drop_in}'   <- a binary that is not in the image");
    container.exec(&["sh", "-c", drop_in])?;
    std::thread::sleep(Duration::from_millis(500));
    drop(container);
    let records = agent.stop()?;

    if args.json {
        for r in &records {
            println!("{r}");
        }
        return Ok(());
    }
    println!(
        "\n{:<17} {:>7}  {:<18} {:<16} {:<14} sha256",
        "verdict", "pid", "filename", "judged path", "via"
    );
    for r in execs(&records).filter(|r| r["container"]["id"] == id.as_str()) {
        let v = &r["verification"];
        println!(
            "{:<17} {:>7}  {:<18} {:<16} {:<14} {}",
            v["verdict"].as_str().unwrap_or("-"),
            r["pid"],
            r["filename"].as_str().unwrap_or("?"),
            v["path"].as_str().unwrap_or("-"),
            v["via"].as_str().unwrap_or("-"),
            v["sha256"].as_str().map_or("-", |h| &h[..16]),
        );
    }
    let stats = final_stats(&records)?;
    println!(
        "\nkernel: seen {} sent {} fast-path {} dropped {} filtered(host) {}; agent received {}, lost {}, peak RSS {} KiB",
        stats["kernel"]["seen"],
        stats["kernel"]["sent"],
        stats["kernel"]["fast_path"],
        stats["kernel"]["dropped"],
        stats["kernel"]["filtered"],
        stats["user"]["received"],
        stats["lost"],
        stats["max_rss_kib"]
    );
    println!("(fast-path: execs of files already verified, answered in the kernel without a record)");
    let alert = records.iter().find(|r| {
        r["type"] == "alert" && r["container"]["id"] == id.as_str() && r["verdict"] == "unknown-binary"
    });
    match alert {
        Some(r) => println!(
            "\nthe drift alert (verifier.alert.v1, docs/alerts.md; --alert-format falco|ocsf for other shapes):\n{}",
            serde_json::to_string_pretty(r)?
        ),
        None => bail!("the dropped-in binary was not alerted as unknown-binary: {}", summary(&records)),
    }
    Ok(())
}

fn summary(records: &[Value]) -> String {
    execs(records)
        .map(|r| format!("{} {}", r["filename"], r["verification"]["verdict"]))
        .collect::<Vec<_>>()
        .join(", ")
}
