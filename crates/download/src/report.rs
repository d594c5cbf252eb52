//! What a download did, for the command's summary, `--json` and Python's dict; and the
//! events a caller may show while it runs.

use std::collections::BTreeMap;

use marketdb_store::PeriodChanges;
use serde::Serialize;

use crate::rule::GapKind;

/// One Vision file or one REST range asked for.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Entry {
    /// The Vision file's URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The symbol of a REST range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rest: Option<String>,
    /// First and last open time of a REST klines range (ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<i64>,
    /// The period of a REST funding range (`YYYY-MM`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// False when the source failed (the period is recorded `failed`).
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// The kind recorded for the period, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap: Option<GapKind>,
    /// What the source answered, for a recorded gap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stored file whose Vision version changed, replaced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Republished {
    pub url: String,
    pub period: String,
    /// The digests before and after (or the `ETag`s when Vision has no checksum).
    pub was: String,
    pub now: String,
    #[serde(flatten)]
    pub changes: PeriodChanges,
}

/// What `--reverify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReverifyReport {
    /// Stored files asked about.
    pub checked: u64,
    pub unchanged: u64,
    /// Files Vision no longer has (their rows are kept).
    pub gone: Vec<String>,
    /// Files that could not be checked or replaced, with the reason.
    pub failed: Vec<String>,
    pub replaced: Vec<Republished>,
}

/// What the run did.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DownloadReport {
    pub files: Vec<Entry>,
    /// Vision files stored.
    pub fetched: u64,
    /// Rows stored (files and REST).
    pub rows: u64,
    /// Periods recorded in the source record by this run, and by kind.
    pub gaps_recorded: u64,
    pub gap_kinds: BTreeMap<GapKind, u64>,
    /// Files and REST ranges whose source failed (exit status 1: run again).
    pub failed: u64,
    /// Requests repeated (Vision and REST), as the servers saw them.
    pub retries: u64,
    /// Requests sent to Vision (files, checksums, every attempt) and to the REST API.
    pub requests: u64,
    pub rest_requests: u64,
    /// Bytes of the files stored.
    pub bytes: u64,
    /// Body bytes received from Vision, refused bodies and checksums included.
    pub bytes_received: u64,
    /// Recorded periods in the range the record says not to ask again.
    pub skipped: u64,
    /// Days of the range outside the symbols' listed lives in the archive catalog, over
    /// all symbols: not asked, and not gaps (the symbol did not exist).
    pub not_listed_days: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reverified: Option<ReverifyReport>,
}

impl DownloadReport {
    /// Counts a recorded gap of `kind`.
    pub(crate) fn recorded(&mut self, kind: GapKind) {
        self.gaps_recorded += 1;
        *self.gap_kinds.entry(kind).or_default() += 1;
    }

    /// Whether the run should exit with a failure (something to run again).
    pub fn has_failures(&self) -> bool {
        self.failed > 0
            || self
                .reverified
                .as_ref()
                .is_some_and(|r| !r.failed.is_empty())
    }
}

/// What the caller is told while the run goes.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// This many Vision files will be asked for (one round).
    Planned { files: usize },
    /// A Vision file or REST range is done (stored, recorded or failed).
    Done(&'a Entry),
    /// Body bytes stored so far.
    Bytes(u64),
    /// A stored file was found re-published and replaced.
    Replaced(&'a Republished),
}

/// Where events go; [`ignore`] drops them.
pub type Events<'a> = &'a (dyn Fn(Event<'_>) + Send + Sync);

/// Drops every event.
pub fn ignore(_: Event<'_>) {}
