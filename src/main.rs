//! The `marketdb` command line: parses arguments (clap), installs the tracing subscriber,
//! runs one command on a tokio runtime and maps failures to exit codes (usage 2, failure 1).
//! Errors are printed as one line on stderr, never as a panic or a debug dump.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::usage_error(err),
    };
    cli::init_logging(&args.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", cli::one_line(&err));
            // A bad time, symbol or feature given on the command line is a usage error.
            if err.downcast_ref::<marketdb_model::Error>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
