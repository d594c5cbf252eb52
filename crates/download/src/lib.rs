//! marketdb-download is the download policy the command line and the Python package
//! share: what to ask Binance Vision and the REST API for, given what is stored and what
//! the source record says; storing what comes back; and keeping that record truthful.
//! Main items: [`DownloadRequest`] (the options), [`download`] (a run, returning a
//! [`DownloadReport`]), [`plan()`] (the dry run) and [`rule`] (the one rule for the
//! record's four kinds: `not_published`, `not_yet_published`, `failed`, `partial`, and
//! when each is asked again).
//!
//! It also re-verifies stored files against Vision's current checksums
//! ([`DownloadRequest::reverify`]) and replaces the periods of re-published files,
//! reporting what changed; keeps the archive's [`catalog`] (listed and delisted symbols,
//! first and last files, from its bucket listing); and resolves [`symbols`] sets (`all`,
//! globs, regular expressions) against it, asking each symbol only inside its listed life.
//!
//! It deliberately does not speak HTTP itself (that is `marketdb-fetch`), parse files
//! (`marketdb-ingest`) or print: callers get [`Event`]s and the report.

pub mod catalog;
mod error;
pub mod load;
pub mod plan;
pub mod record;
mod report;
mod request;
mod rest;
mod reverify;
pub mod rule;
mod run;
pub mod symbols;
mod vision;

pub use error::{Error, Result};
pub use load::FileLoad;
pub use plan::{Plan, RestRange, plan};
pub use report::{DownloadReport, Entry, Event, Events, Republished, ReverifyReport, ignore};
pub use request::{DownloadRequest, Listed, Source};
pub use rule::GapKind;
pub use run::download;
pub use symbols::SymbolSet;
