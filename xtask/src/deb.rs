//! `cargo xtask deb`: the agent as a Debian package with its hardened
//! systemd unit, for build hosts (`verifier_tests::deb` builds it; the
//! `deb` test checks it).

use std::path::PathBuf;

use verifier_tests::deb;

use crate::util::{self, root};

#[derive(Debug, clap::Args)]
pub struct DebArgs {
    /// Directory the .deb is written to.
    #[arg(long, default_value = "target/deb")]
    pub out: PathBuf,
    /// Agent binary to package (default: target/release/verifier, built first).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

pub fn run(args: &DebArgs) -> anyhow::Result<()> {
    let bin = args.bin.clone().unwrap_or_else(util::verifier_bin);
    let out = if args.out.is_absolute() { args.out.clone() } else { root().join(&args.out) };
    let path = deb::build(&bin, env!("CARGO_PKG_VERSION"), &out)?;
    eprintln!("xtask: {}\nxtask: install with: sudo dpkg -i {}", path.display(), path.display());
    Ok(())
}
