//! Printing results: JSON on `--json`, otherwise aligned plain-text tables. Every line goes
//! through [`line`] (the `outln!` macro): a closed stdout (`marketdb summary | head -1`)
//! ends the process quietly with exit 0, as `head` expects, instead of panicking as
//! `println!` would.

use std::{fmt, io::Write, path::Path};

/// Writes one line to stdout; see the module docs.
pub fn line(args: fmt::Arguments<'_>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        tracing::warn!("cannot write to stdout: {e}");
    }
}

/// `println!` for the CLI's results: see [`line`].
macro_rules! outln {
    () => {
        $crate::cli::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::line(format_args!($($arg)*))
    };
}

use anyhow::Result;
use serde::Serialize;

/// `text` with control characters (newlines, escape codes...) escaped, so a hostile file
/// name cannot break a line or drive the terminal.
pub fn escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A path for a message: lossy UTF-8, control characters escaped.
pub fn path(p: &Path) -> String {
    escaped(&p.to_string_lossy())
}

/// Prints `value` as pretty JSON on stdout.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<()> {
    line(format_args!("{}", serde_json::to_string_pretty(value)?));
    Ok(())
}

/// Prints rows as a table with a header, columns left-aligned and padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(&format!("{cell:<w$}"));
        }
        line(format_args!("{}", out.trim_end()));
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
