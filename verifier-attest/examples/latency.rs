//! How long one verification takes: keyed (P-256, Ed25519) envelopes made
//! here, and the real keyless bundle of tests/data against its trusted
//! root. `cargo run --release -p verifier-attest --example latency`.

use std::sync::Arc;
use std::time::Instant;

use verifier_attest::dsse::{IN_TOTO_PAYLOAD_TYPE, sign};
use verifier_attest::policy::{Identity, SubjectMatch, TrustedKey};
use verifier_attest::{SigningKey, Trust, TrustedRoot, verify};

const DIGEST: &str = "sha256:c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172";

fn median_us(mut f: impl FnMut() -> bool) -> f64 {
    let mut t: Vec<f64> = (0..200)
        .map(|_| {
            let s = Instant::now();
            assert!(f(), "verification failed");
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let statement = format!(
        r#"{{"_type":"https://in-toto.io/Statement/v1","subject":[{{"name":"x","digest":{{"sha256":"{}"}}}}],"predicateType":"https://spdx.dev/Document","predicate":{{"spdxVersion":"SPDX-2.3"}}}}"#,
        &DIGEST[7..]
    );
    // Fixed test scalars: the keys need not be secret, only valid.
    let keys = [
        SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32])?),
        SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])),
    ];
    for key in keys {
        let env = sign(IN_TOTO_PAYLOAD_TYPE, statement.as_bytes(), &key).to_json();
        let trust = Trust::with_keys(vec![TrustedKey { name: "k".into(), key: key.public_key() }]);
        let us = median_us(|| verify(env.as_bytes(), &[DIGEST], &trust).is_ok());
        println!("keyed {:<10} median {us:>8.1} us", key.public_key().kind());
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/");
    let bundle = std::fs::read(format!("{dir}kubewarden-controller-v1.34.0.sigstore.json"))?;
    let root = Arc::new(TrustedRoot::load(format!("{dir}sigstore-public-good.trusted_root.json").as_ref())?);
    let subject = SubjectMatch::Exact(
        "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0"
            .into(),
    );
    let mut trust = Trust::with_identities(vec![Identity {
        issuer: "https://token.actions.githubusercontent.com".into(),
        subject,
        root,
    }]);
    trust.predicate_types.push("https://sigstore.dev/cosign/sign/v1".into());
    let us = median_us(|| verify(&bundle, &[DIGEST], &trust).is_ok());
    println!("keyless bundle v0.3 median {us:>8.1} us (SET, Merkle proof, checkpoint, chain, identity)");
    Ok(())
}
