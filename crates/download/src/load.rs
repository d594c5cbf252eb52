//! A file into the store: parsed on a blocking thread and streamed, in bounded chunks
//! through a short channel, into one transaction on the store's writer. The caller starts
//! the parser of the next files while the writer stores the current one, so parsing and
//! storing overlap; memory is bounded by the chunks in flight, not by the file.
//!
//! Errors name the file by the label the caller gives (a download's URL, not the
//! temporary file it was saved to).

use std::path::PathBuf;
use std::sync::mpsc;

use marketdb_ingest::{BadRows, FileReport, Limits, Overrides, Parsed};
use marketdb_store::{AsyncMarketDB, PeriodChanges, PeriodScope, SourceFile};

use crate::{Error, Result};

/// Chunks queued between the parser and the writer (each up to `Limits::chunk_rows`).
const PIPELINE_DEPTH: usize = 2;

/// What the writer sees when the parser of a file failed: the file's own error is
/// reported instead.
#[derive(Debug)]
struct ParserFailed;

impl std::fmt::Display for ParserFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the parser of the file failed")
    }
}

impl std::error::Error for ParserFailed {}

/// A file whose parser runs on a blocking thread, its records waiting in a bounded
/// channel until the writer takes them.
#[derive(Debug)]
pub struct FileLoad {
    file: PathBuf,
    rx: mpsc::Receiver<std::result::Result<Parsed, ParserFailed>>,
    parser: tokio::task::JoinHandle<marketdb_ingest::Result<FileReport>>,
}

impl FileLoad {
    /// Starts parsing `file`; the parser blocks once [`PIPELINE_DEPTH`] chunks wait.
    pub fn start(file: PathBuf, overrides: &Overrides, mode: BadRows) -> FileLoad {
        let (tx, rx) = mpsc::sync_channel(PIPELINE_DEPTH);
        let path = file.clone();
        let overrides = overrides.clone();
        let parser = tokio::task::spawn_blocking(move || {
            let res = marketdb_ingest::parse_file_streaming(
                &path,
                &overrides,
                mode,
                &Limits::default(),
                &mut |chunk| {
                    tx.send(Ok(chunk))
                        .map_err(|_| marketdb_ingest::Error::Stopped { file: path.clone() })
                },
                &mut |_| {},
            );
            if res.is_err() {
                // Makes the writer roll back whatever it took from this file.
                let _ = tx.send(Err(ParserFailed));
            }
            res
        });
        FileLoad { file, rx, parser }
    }

    /// The file being parsed.
    pub fn path(&self) -> &std::path::Path {
        &self.file
    }

    /// Streams the file's records into one transaction (with `source`, the record of
    /// where they came from, in the same one); returns rows stored and what the parser
    /// read. Errors name the file as `label`.
    pub async fn store(
        self,
        db: &AsyncMarketDB,
        label: &str,
        source: Option<SourceFile>,
    ) -> Result<(usize, FileReport)> {
        let FileLoad { rx, parser, .. } = self;
        let stored = db.store_file_records(rx, source).await;
        let parsed = parser.await.map_err(|source| Error::Task {
            task: "parser",
            source,
        })?;
        settle(label, parsed, stored)
    }

    /// Replaces `scope` with the file's records in one transaction (with `source`) and
    /// says what changed.
    pub async fn replace(
        self,
        db: &AsyncMarketDB,
        label: &str,
        scope: PeriodScope,
        source: Option<SourceFile>,
    ) -> Result<(PeriodChanges, FileReport)> {
        let FileLoad { rx, parser, .. } = self;
        let stored = db.replace_period(scope, rx, source).await;
        let parsed = parser.await.map_err(|source| Error::Task {
            task: "parser",
            source,
        })?;
        settle(label, parsed, stored)
    }
}

/// The file's own error when its parser failed (the store's error then only says it
/// was stopped), else the store's.
fn settle<T>(
    label: &str,
    parsed: marketdb_ingest::Result<FileReport>,
    stored: marketdb_store::Result<T>,
) -> Result<(T, FileReport)> {
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::Load {
        url: label.to_owned(),
        source,
    };
    match (parsed, stored) {
        (Err(marketdb_ingest::Error::Stopped { .. }), Err(e)) | (Ok(_), Err(e)) => {
            Err(fail(Box::new(e)))
        }
        (Err(e), _) => Err(fail(Box::new(e))),
        (Ok(report), Ok(v)) => Ok((v, report)),
    }
}
