//! The `marketdb` command line: parses arguments (clap), installs the tracing subscriber,
//! runs one command on a tokio runtime and maps failures to exit codes (usage 2, failure 1,
//! SIGINT 130, SIGTERM 143). Errors are printed as one line on stderr, never as a panic or
//! a debug dump.
//!
//! On SIGINT or SIGTERM the command's future is dropped (except `stream`'s, which stops
//! itself, commits what it received and exits 0): an export's writer then sees its
//! input end and removes its temporary files, a store in progress finishes its transaction
//! (whole or nothing), and dropping the runtime waits for that blocking work before exit.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// How the command ended.
enum Ended {
    Done(anyhow::Result<ExitCode>),
    Signal(&'static str, u8),
}

/// Waits for SIGINT or SIGTERM; returns its name and the conventional exit code.
async fn interrupted() -> (&'static str, u8) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => tokio::select! {
                _ = int.recv() => ("SIGINT", 130),
                _ = term.recv() => ("SIGTERM", 143),
            },
            _ => std::future::pending().await,
        }
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => ("SIGINT", 130),
            Err(_) => std::future::pending().await,
        }
    }
}

/// Whether the error is a closed stdout (`marketdb export csv --out - | head`).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Whether a few file descriptors are free: tokio's runtime panics (instead of returning an
/// error) when its signal driver cannot create its socket pair, and nothing can work with
/// fewer than this anyway.
fn descriptors_to_start() -> bool {
    #[cfg(unix)]
    {
        let pairs: Vec<_> = (0..3)
            .map(|_| std::os::unix::net::UnixStream::pair())
            .collect();
        pairs.iter().all(Result::is_ok)
    }
    #[cfg(not(unix))]
    true
}

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::usage_error(err),
    };
    cli::init_logging(&args.global);
    if !descriptors_to_start() {
        eprintln!(
            "error: too few file descriptors are free to start (raise the limit, e.g. 'ulimit -n')"
        );
        return ExitCode::from(1);
    }
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
    let own_signals = args.handles_signals();
    let ended = runtime.block_on(async {
        if own_signals {
            return Ended::Done(cli::run(args).await);
        }
        tokio::select! {
            r = cli::run(args) => Ended::Done(r),
            (name, code) = interrupted() => Ended::Signal(name, code),
        }
    });
    // Waits for blocking work still running (a transaction finishing, an export writer
    // removing its temporary files).
    drop(runtime);
    match ended {
        Ended::Done(Ok(code)) => code,
        Ended::Signal(name, code) => {
            eprintln!(
                "error: interrupted by {name}: stopped (committed writes kept, temporary files removed)"
            );
            ExitCode::from(code)
        }
        Ended::Done(Err(err)) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Ended::Done(Err(err)) => {
            eprintln!("error: {}", cli::escaped(&cli::one_line(&err)));
            // A bad time, symbol or feature given on the command line is a usage error.
            if err.downcast_ref::<marketdb_model::Error>().is_some()
                || err.downcast_ref::<cli::Usage>().is_some()
            {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
