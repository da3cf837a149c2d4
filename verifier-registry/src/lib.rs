//! SBOM attestations from the image's registry.
//!
//! For an image digest this crate finds the attestations published beside
//! the image (OCI 1.1 referrers and their tag-schema fallback, cosign's
//! `.att` / `.sbom` tags, BuildKit attestation manifests), returns their
//! raw bytes with where they came from, and keeps them in a disk cache by
//! digest so that a node fetches each image's attestations once. It does
//! not verify signatures or decide trust: it hands bytes, checked only
//! against their content digests, to whoever does.
//!
//! Entry point: [`Fetcher`] (async, bounded, single-flight, cached).

#![warn(unreachable_pub)]

mod auth;
mod cache;
mod client;
mod discover;
mod fetcher;
mod manifest;
mod reference;

pub use auth::{AuthError, Credentials};
pub use cache::{CacheError, DEFAULT_DIR as DEFAULT_CACHE_DIR};
pub use client::{ClientOptions, RegistryError};
pub use discover::{Attestation, Source, Subject};
pub use fetcher::{FetchError, Fetched, Fetcher, FetcherConfig};
pub use reference::{Digest, ImageRef, RefError};
