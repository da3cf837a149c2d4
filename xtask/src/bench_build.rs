//! `cargo xtask bench-build`: what `verifier exec` costs a real C build.
//!
//! The code base is generated (this machine has no source packages
//! offline: apt's sources carry no `deb-src`): `--files` C translation
//! units, each with `--funcs` functions of arithmetic loops and a table,
//! and a `main` linking them, built by Debian's `make`, `gcc`, `cc1`, `as`
//! and `ld`. Many small units is the exec-heavy end of real builds (every
//! unit is five execs and a few dozen executable mappings), so the ratio
//! is an upper bound for builds with larger units.
//!
//! Each round builds from clean once without and once with
//! `verifier exec --host-baseline dpkg` (the release binary, the host's
//! full dpkg database), alternating which goes first so machine noise
//! hits both sides. It prints each time, the ratio (with / without), and
//! from the build record the verifier's peak RSS, the files judged and
//! the drift found. Nothing here asserts: the numbers are for people.

use std::{
    fmt::Write as _,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;

use crate::util::verifier_bin;

#[derive(clap::Args)]
pub struct BenchBuildArgs {
    /// C translation units in the generated code base.
    #[arg(long, default_value_t = 600)]
    files: usize,
    /// Functions per translation unit (compile time grows with it).
    #[arg(long, default_value_t = 40)]
    funcs: usize,
    /// Alternating without/with pairs.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// `make -j` jobs.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// gcc optimisation flag for the units.
    #[arg(long, default_value = "-O2")]
    opt: String,
}

pub fn run(args: &BenchBuildArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    generate(dir.path(), args.files, args.funcs, &args.opt)?;
    println!(
        "generated C build: {} units x {} functions ({}), make -j{}, {} alternating rounds; \
         ratio = time with `verifier exec` / time without",
        args.files, args.funcs, args.opt, args.jobs, args.rounds
    );
    println!(
        "{:>5} {:>10} {:>10} {:>7} {:>9} {:>7} {:>6} {:>9}",
        "round", "base s", "exec s", "ratio", "rss KiB", "files", "drift", "baseline"
    );
    let (mut base_total, mut with_total) = (Duration::ZERO, Duration::ZERO);
    for round in 1..=args.rounds {
        let with_first = round % 2 == 0;
        let mut base = Duration::ZERO;
        let mut with = (Duration::ZERO, serde_json::Value::Null);
        for side in [with_first, !with_first] {
            clean(dir.path())?;
            if side {
                with = build_watched(dir.path(), args.jobs)?;
            } else {
                base = build(dir.path(), args.jobs)?;
            }
        }
        let r = &with.1;
        println!(
            "{round:>5} {:>10.1} {:>10.1} {:>7.3} {:>9} {:>7} {:>6} {:>9}",
            base.as_secs_f64(),
            with.0.as_secs_f64(),
            with.0.as_secs_f64() / base.as_secs_f64(),
            r["max_rss_kib"],
            r["summary"]["files"],
            r["summary"]["drift"],
            r["baseline"]["files"],
        );
        base_total += base;
        with_total += with.0;
    }
    println!(
        "total: {:.1} s without, {:.1} s with; ratio {:.3}",
        base_total.as_secs_f64(),
        with_total.as_secs_f64(),
        with_total.as_secs_f64() / base_total.as_secs_f64()
    );
    Ok(())
}

/// Writes `files` units of `funcs` functions, a `main` and a Makefile.
fn generate(dir: &Path, files: usize, funcs: usize, opt: &str) -> anyhow::Result<()> {
    let mut objs = String::new();
    let mut main = String::from("#include <stdio.h>\n");
    let mut calls = String::new();
    for f in 0..files {
        let mut c = String::from("#include <stdint.h>\n#include <string.h>\n");
        for g in 0..funcs {
            // Loops, a table and branches: enough for the optimiser to work
            // on, no headers beyond libc's.
            writeln!(
                c,
                "static const uint32_t t_{f}_{g}[16] = {{{}}};\n\
                 uint64_t f_{f}_{g}(uint64_t x) {{\n  uint64_t acc = {g};\n  \
                 for (int i = 0; i < 64; i++) {{\n    acc ^= (x + t_{f}_{g}[i & 15]) * 0x9e3779b97f4a7c15ull;\n    \
                 acc = (acc << 7) | (acc >> 57);\n    if (acc & 1) acc += i; else acc -= x >> (i & 7);\n  }}\n  \
                 char buf[32]; memset(buf, (int)acc, sizeof buf);\n  return acc + (uint64_t)buf[acc & 31];\n}}",
                (0..16).map(|i| ((f * 131 + g * 17 + i * 7) % 251).to_string()).collect::<Vec<_>>().join(",")
            )?;
        }
        std::fs::write(dir.join(format!("u{f}.c")), c)?;
        write!(objs, " u{f}.o")?;
        writeln!(main, "unsigned long long f_{f}_0(unsigned long long);")?;
        writeln!(calls, "  s += f_{f}_0(s);")?;
    }
    writeln!(
        main,
        "int main(void) {{\n  unsigned long long s = 1;\n{calls}  printf(\"%llu\\n\", s);\n  return 0;\n}}"
    )?;
    std::fs::write(dir.join("main.c"), main)?;
    let makefile = format!(
        "CFLAGS = {opt}\nOBJS ={objs} main.o\napp: $(OBJS)\n\tgcc -o $@ $(OBJS)\n%.o: %.c\n\tgcc $(CFLAGS) -c $< -o $@\n"
    );
    std::fs::write(dir.join("Makefile"), makefile)?;
    Ok(())
}

fn clean(dir: &Path) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "o") || p.file_name().is_some_and(|n| n == "app") {
            std::fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn build(dir: &Path, jobs: usize) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let st = Command::new("make").arg(format!("-j{jobs}")).arg("-s").current_dir(dir).status()?;
    anyhow::ensure!(st.success(), "make failed: {st}");
    Ok(t.elapsed())
}

/// The same build under `verifier exec`, with its record.
fn build_watched(dir: &Path, jobs: usize) -> anyhow::Result<(Duration, serde_json::Value)> {
    let record = dir.join("record.json");
    let t = Instant::now();
    let st = Command::new(verifier_bin())
        .args(["exec", "--fail-on", "", "--record"])
        .arg(&record)
        .args(["--", "make", &format!("-j{jobs}"), "-s"])
        .current_dir(dir)
        .status()?;
    let took = t.elapsed();
    anyhow::ensure!(st.success(), "verifier exec make failed: {st}");
    let text = std::fs::read_to_string(&record).context("the build record")?;
    Ok((took, serde_json::from_str(&text)?))
}
