//! Real builds for the build-host tests and benchmark: a small C project
//! written into a directory (a couple of `.c` files and a Makefile), and
//! `verifier exec` run over a command with its record read back.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Writes a C project of `units` translation units into `dir`, plus
/// `extra` appended to its Makefile's `all` recipe (a planted step).
pub fn c_project(dir: &Path, units: usize, extra: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut objs = Vec::new();
    let mut decls = String::new();
    let mut calls = String::new();
    for i in 0..units {
        std::fs::write(
            dir.join(format!("u{i}.c")),
            format!("int f{i}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {i}; return s; }}\n"),
        )?;
        objs.push(format!("u{i}.o"));
        decls.push_str(&format!("int f{i}(int);\n"));
        calls.push_str(&format!("  s += f{i}(3);\n"));
    }
    std::fs::write(
        dir.join("main.c"),
        format!(
            "#include <stdio.h>\n{decls}int main(void) {{\n  int s = 0;\n{calls}  printf(\"%d\\n\", s);\n  return 0;\n}}\n"
        ),
    )?;
    let makefile = format!(
        "all: app\n{extra}\napp: main.o {objs}\n\tgcc -o app main.o {objs}\n%.o: %.c\n\tgcc -c -O2 -o $@ $<\n\
         clean:\n\trm -f *.o app\n",
        objs = objs.join(" "),
    );
    std::fs::write(dir.join("Makefile"), makefile)?;
    Ok(())
}

/// What `verifier exec` left.
pub struct Run {
    pub status: i32,
    pub record: Value,
    pub stderr: String,
}

/// Runs `verifier exec [args] -- command` in `dir`, with the record in
/// `dir/record.json`.
pub fn exec(dir: &Path, args: &[&str], command: &[&str]) -> anyhow::Result<Run> {
    let record = dir.join("record.json");
    let _ = std::fs::remove_file(&record);
    let out = Command::new(crate::agent::verifier_bin())
        .current_dir(dir)
        .arg("exec")
        .arg("--record")
        .arg(&record)
        .args(args)
        .arg("--")
        .args(command)
        .output()
        .context("running verifier exec")?;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = std::fs::read_to_string(&record).with_context(|| format!("no record; stderr: {stderr}"))?;
    Ok(Run { status: out.status.code().unwrap_or(-1), record: serde_json::from_str(&text)?, stderr })
}

/// The record's rows whose path ends with `suffix`.
pub fn rows<'a>(record: &'a Value, suffix: &str) -> Vec<&'a Value> {
    record["files"]
        .as_array()
        .map(|a| a.iter().filter(|f| f["path"].as_str().is_some_and(|p| p.ends_with(suffix))).collect())
        .unwrap_or_default()
}

/// Validates `doc` against `docs/schemas/<schema>` with python's
/// `jsonschema` (installed by `cargo xtask setup`).
pub fn validate(doc: &Path, schema: &str) -> anyhow::Result<()> {
    let schema = workspace().join("docs/schemas").join(schema);
    let out = Command::new("python3")
        .args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(doc)
        .arg(&schema)
        .output()
        .context("running python3 jsonschema")?;
    if !out.status.success() {
        bail!(
            "{} does not validate against {}: {}",
            doc.display(),
            schema.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where gcc keeps `cc1` (`gcc -print-prog-name=cc1`).
pub fn cc1() -> anyhow::Result<PathBuf> {
    let out = Command::new("gcc").arg("-print-prog-name=cc1").output()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !p.is_absolute() {
        bail!("gcc does not name cc1's path: {}", p.display());
    }
    Ok(std::fs::canonicalize(p)?)
}
