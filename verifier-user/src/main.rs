//! `verifier`: thin entry point. Parses the command line, runs the command,
//! maps the outcome to an exit code. A closed stdout (`verifier ... | head`)
//! is a normal end, not an error.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = <verifier::cli::Cli as clap::Parser>::parse();
    verifier::cli::init_tracing(&cli);
    match verifier::cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("verifier: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
