//! `cargo xtask bench-drift --images N`: the agent's memory with N
//! images' manifests loaded (one runc container per image, each image's
//! SBOM in an `--sbom-store` keyed by its digest), against the same
//! containers watched with no SBOMs. The SBOMs are synthetic SPDX 2.3
//! documents shaped like a distribution image's (packages with purls,
//! files with SHA-256 under /usr), distinct per image.

use std::{fmt::Write as _, time::Duration};

use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use verifier_tests::{
    agent::{Agent, final_stats},
    bundle::Bundle,
    image::annotate,
    runc::Container,
};

use crate::util::verifier_bin;

fn hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An SPDX document of `files` files in `files / 25` packages.
fn sbom(image: u32, files: u32) -> String {
    let mut f = Vec::new();
    let mut p = Vec::new();
    let mut rel = Vec::new();
    for pkg in 0..files.div_ceil(25) {
        p.push(serde_json::json!({
            "SPDXID": format!("SPDXRef-Package-{pkg}"), "name": format!("lib{pkg}-img{image}"),
            "versionInfo": format!("1.{pkg}.{image}"), "downloadLocation": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                "referenceLocator": format!("pkg:deb/debian/lib{pkg}-img{image}@1.{pkg}.{image}?arch=amd64")}]
        }));
    }
    for i in 0..files {
        let id = format!("SPDXRef-File-{i}");
        f.push(serde_json::json!({
            "SPDXID": id, "fileName": format!("/usr/lib/x86_64-linux-gnu/lib{}-img{image}/file{i}.so.1", i / 25),
            "checksums": [{"algorithm": "SHA256", "checksumValue": hex(format!("{image}/{i}").as_bytes())},
                          {"algorithm": "SHA1", "checksumValue": &hex(format!("s{image}/{i}").as_bytes())[..40]}]
        }));
        rel.push(serde_json::json!({"spdxElementId": format!("SPDXRef-Package-{}", i / 25),
            "relationshipType": "CONTAINS", "relatedSpdxElement": id}));
    }
    serde_json::json!({
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("image-{image}"), "documentNamespace": format!("https://example.com/image-{image}"),
        "creationInfo": {"created": "2026-01-01T00:00:00Z", "creators": ["Tool: verifier-bench"]},
        "packages": p, "files": f, "relationships": rel
    })
    .to_string()
}

/// Runs the memory measurement.
pub fn run(dir: &std::path::Path, images: u32, files: u32) -> anyhow::Result<()> {
    let store = dir.join("store");
    std::fs::create_dir_all(&store)?;
    let mut bundles = Vec::new();
    let mut sbom_bytes = 0;
    for i in 0..images {
        let digest = format!("sha256:{}", hex(format!("image {i}").as_bytes()));
        let text = sbom(i, files);
        sbom_bytes += text.len();
        std::fs::write(store.join(format!("{}.spdx.json", digest.replace(':', "-"))), text)?;
        let bundle = Bundle::busybox(&dir.join(format!("b{i}")), &["sleep", "3600"])?;
        annotate(&bundle, &[("io.verifier.image.digest", &digest)])?;
        bundles.push(bundle);
    }
    println!(
        "memory: {images} images, {files} files each ({:.1} MiB of SPDX in all), one runc container each",
        sbom_bytes as f64 / f64::from(1 << 20)
    );
    let store_arg = store.to_str().context("store path")?.to_owned();
    let mut results = Vec::new();
    for with_sboms in [false, true] {
        let mut args = vec!["--containers-only", "--stats-interval", "0", "--no-metrics"];
        let empty = dir.join("empty-store");
        std::fs::create_dir_all(&empty)?;
        let empty_arg = empty.to_str().context("path")?.to_owned();
        args.extend(["--sbom-store", if with_sboms { &store_arg } else { &empty_arg }]);
        let agent = Agent::start_bin(&verifier_bin(), &args)?;
        let mut containers = Vec::new();
        for (i, b) in bundles.iter().enumerate() {
            let c = Container::run(&b.dir, &format!("verifier-mem-{}-{i}", std::process::id()))?;
            c.exec(&["/bin/true"])?;
            containers.push(c);
        }
        std::thread::sleep(Duration::from_millis(1000));
        let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid()))?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        // RSS counts the kernel ring buffer's pages (mapped twice) and the
        // binary's own pages too; RssAnon is the agent's heap and stacks.
        let (rss, anon) = (kib("VmRSS:"), kib("RssAnon:"));
        // PSS counts a page once however often it is mapped (the ring
        // buffer's data pages are mapped twice, for wrap-around reads).
        let pss = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", agent.pid()))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("Pss:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .unwrap_or(0);
        drop(containers);
        let records = agent.stop()?;
        let stats = final_stats(&records)?;
        let resolved = stats["verify"]["resolutions"].as_u64().unwrap_or(0);
        let without = stats["verify"]["without_baseline"].as_u64().unwrap_or(0);
        results.push((rss, stats["max_rss_kib"].as_u64().unwrap_or(0)));
        println!(
            "  {:<22} RSS {:>6.1} MiB (PSS {:>5.1}, anonymous {:>5.1}), peak {:>6.1} MiB ({resolved} containers resolved, {without} execs without an SBOM)",
            if with_sboms { "with the manifests" } else { "without SBOMs" },
            rss as f64 / 1024.0,
            pss as f64 / 1024.0,
            anon as f64 / 1024.0,
            results.last().map_or(0, |r| r.1) as f64 / 1024.0,
        );
    }
    let (base, with) = (results[0], results[1]);
    println!(
        "memory: {images} manifests cost {:.1} MiB ({:.0} KiB per image); peak {:.1} MiB vs {:.1} MiB: {:.2}x",
        (with.0 as f64 - base.0 as f64) / 1024.0,
        (with.0 as f64 - base.0 as f64) / f64::from(images),
        with.1 as f64 / 1024.0,
        base.1 as f64 / 1024.0,
        with.1 as f64 / base.1.max(1) as f64
    );
    Ok(())
}
