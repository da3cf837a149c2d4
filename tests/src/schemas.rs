//! The agent's records checked against their JSON Schemas in
//! `docs/schemas/` by `tests/validators/validate_records.py` (Python
//! `jsonschema`, installed by `cargo xtask setup`). A record whose
//! `schema`/`type` has no schema file is an error there, so a new kind of
//! record cannot reach the tests without its schema.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// `docs/schemas/` of this workspace.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/schemas")
}

/// Validates `records` (written as JSON lines to a file in `scratch`);
/// returns the validator's report, or an error with it when a record does
/// not match (or has no schema).
pub fn validate(records: &[&Value], scratch: &Path) -> anyhow::Result<String> {
    let file = scratch.join("records-to-validate.jsonl");
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("validators/validate_records.py");
    let out = Command::new("python3")
        .arg(script)
        .arg("--schemas")
        .arg(dir())
        .arg(&file)
        .output()
        .context("python3 (run `cargo xtask setup`)")?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    match out.status.code() {
        Some(0) => Ok(said),
        Some(2) => bail!("jsonschema is missing: run `cargo xtask setup`\n{said}"),
        _ => bail!("records do not match their schemas:\n{said}"),
    }
}
