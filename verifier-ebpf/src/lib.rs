//! Library target so that `cargo` can resolve this crate as a
//! build-dependency of `verifier-user`; the programs live in the `verifier`
//! binary (src/main.rs).
#![no_std]
