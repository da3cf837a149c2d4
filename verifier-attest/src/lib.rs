#![warn(unreachable_pub)]
//! Signed SBOM attestations: is this SBOM really the one the image's
//! publisher signed, for this image?
//!
//! An SBOM that arrives beside an image (from a registry, a build system, a
//! file) is only as good as the proof that it describes that image. This
//! crate checks that proof offline and hands back the SBOM document only
//! when every check passes ([`verify()`]); otherwise a [`Rejection`] names
//! the check that failed. It also signs ([`dsse::sign`]) for tools that
//! produce attestations. No network, no async runtime: the caller fetches.
//!
//! | module | what |
//! | --- | --- |
//! | [`dsse`] | envelope, PAE, signing |
//! | [`keys`] | PEM public/private keys (P-256, P-384, Ed25519, RSA) |
//! | [`statement`] | in-toto Statement v0.1/v1, subjects, predicate |
//! | [`bundle`] | Sigstore bundle v0.1-v0.3 |
//! | [`tlog`] | Rekor entries: promise (SET), Merkle proof, checkpoint |
//! | [`cert`] | Fulcio leaf: chain to the trusted root, identity |
//! | [`trust_root`] | `trusted_root.json` |
//! | [`policy`] | the TOML trust policy |
//!
//! See `docs/trust.md` for the formats, checks and why these crates.
pub mod bundle;
pub mod cert;
pub mod dsse;
mod error;
pub mod keys;
pub mod policy;
pub mod statement;
pub mod tlog;
pub mod trust_root;
mod verify;

pub use error::{AttestError, Check, Rejection};
pub use keys::{PublicKey, SigningKey};
pub use policy::{OnMissing, Trust, TrustPolicy};
pub use trust_root::TrustedRoot;
pub use verify::{SignedBy, VerifiedSbom, verify};
