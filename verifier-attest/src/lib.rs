#![warn(unreachable_pub)]
//! Signed SBOM attestations: is this SBOM really the one the image's
//! publisher signed, for this image?
//!
//! An SBOM that arrives beside an image (from a registry, a build system, a
//! file) is only as good as the proof that it describes that image. This
//! crate checks that proof offline and hands back the SBOM document only
//! when every check passes; otherwise a [`Rejection`] names the check that
//! failed. See `docs/trust.md` for the formats, checks and crate choices.
pub mod dsse;
mod error;
pub mod keys;
pub mod statement;
pub mod trust_root;

pub use error::{AttestError, Check, Rejection};
pub use keys::{PublicKey, SigningKey};
