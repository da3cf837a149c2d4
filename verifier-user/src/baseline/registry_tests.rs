//! The registry source on a node that is offline: the fetcher's cache,
//! seeded in its documented layout (docs/registry.md), holds a signed
//! attestation, an unsigned SBOM and a tampered envelope; only the signed
//! one gives an SBOM, and only for the digest it names.

use std::path::Path;

use sha2::{Digest as _, Sha256};
use verifier_attest::SigningKey;
use verifier_attest::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};
use verifier_registry::{Fetcher, FetcherConfig};

use super::*;

const DIGEST: &str = "sha256:5555555555555555555555555555555555555555555555555555555555555555";

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Writes `blobs` (source, media type, bytes) as the fetcher's cache entry for `image`.
fn seed(cache: &Path, image: &str, blobs: &[(&str, &str, &[u8])]) {
    std::fs::create_dir_all(cache.join("blobs/sha256")).expect("dir");
    std::fs::create_dir_all(cache.join("images")).expect("dir");
    let mut items = Vec::new();
    for (source, media_type, bytes) in blobs {
        std::fs::write(cache.join("blobs/sha256").join(sha(bytes)), bytes).expect("blob");
        items.push(serde_json::json!({"source": source, "media_type": media_type,
            "digest": format!("sha256:{}", sha(bytes)), "subject_digest": image}));
    }
    let entry = serde_json::json!({"schema": "verifier.sbom-cache.v1", "image": "demo", "fetched_at": 1,
        "subjects": [{"digest": image, "kind": "manifest"}], "attestations": items});
    let name = format!("{}.json", image.replace("sha256:", "sha256-"));
    std::fs::write(cache.join("images").join(name), entry.to_string()).expect("entry");
}

#[test]
fn only_a_verified_registry_attestation_gives_an_sbom() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let ok = std::process::Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out", "k.pem"])
        .current_dir(d)
        .status()
        .expect("openssl");
    assert!(ok.success());
    let key = SigningKey::from_pem(&std::fs::read_to_string(d.join("k.pem")).expect("pem")).expect("key");
    use base64::Engine as _;
    let spki = base64::engine::general_purpose::STANDARD.encode(key.public_key().spki_der());
    std::fs::write(
        d.join("k.pub"),
        format!("-----BEGIN PUBLIC KEY-----\n{spki}\n-----END PUBLIC KEY-----\n"),
    )
    .expect("pub");
    std::fs::write(d.join("trust.toml"), "[[image]]\npattern = \"demo:*\"\nkeys = [\"k.pub\"]\n")
        .expect("policy");
    let policy = TrustPolicy::load(&d.join("trust.toml")).expect("policy");

    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"demo","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{{"spdxVersion":"SPDX-2.3","name":"signed"}}}}"#,
        &DIGEST[7..]
    );
    let env = sign(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes(), &key).to_json();
    let tampered = env.replacen("\"payload\":\"", "\"payload\":\"eyJ", 1);
    let unsigned = br#"{"spdxVersion":"SPDX-2.3","name":"unsigned"}"#;
    let other = format!("sha256:{}", "6".repeat(64));
    // Unsigned and tampered first: they must be passed over, not taken.
    let blobs: [(&str, &str, &[u8]); 3] = [
        ("cosign-sbom", "application/spdx+json", unsigned),
        ("cosign-att", "application/vnd.dsse.envelope.v1+json", tampered.as_bytes()),
        ("cosign-att", "application/vnd.dsse.envelope.v1+json", env.as_bytes()),
    ];
    seed(&d.join("reg-cache"), DIGEST, &blobs);
    seed(&d.join("reg-cache"), &other, &blobs);

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
    let fetcher = Fetcher::new(FetcherConfig {
        cache_dir: Some(d.join("reg-cache")),
        offline: true,
        ..FetcherConfig::default()
    })
    .expect("fetcher");
    let src = RegistryAttestations::new(fetcher, rt.handle().clone(), policy, d.join("verified"));
    let keys = |digest| ImageKeys {
        image_name: Some("demo:1"),
        image_digest: Some(digest),
        container_id: "c1",
        container_name: None,
    };
    let files = src.sbom_files(&keys(DIGEST));
    assert_eq!(files.len(), 1);
    assert!(std::fs::read_to_string(&files[0]).expect("doc").contains("\"signed\""));
    assert!(src.sbom_files(&keys(&other)).is_empty(), "signed for another digest: no SBOM");
    let uncached = format!("sha256:{}", "7".repeat(64));
    assert!(src.sbom_files(&keys(&uncached)).is_empty(), "offline and not cached: no SBOM, no panic");
    assert!(
        src.sbom_files(&ImageKeys { image_name: None, ..keys(DIGEST) }).is_empty(),
        "no name, no registry"
    );
}
