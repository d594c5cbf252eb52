//! Argument types shared by several commands: symbol lists, time bounds, intervals,
//! features, and opening the database with the global options.

use std::{path::Path, str::FromStr};

use anyhow::{Context, Result, bail};
use clap::Args;
use marketdb_model::{Feature, Freq, TimeRange, validate_symbol};
use marketdb_store::{AsyncMarketDB, Backend, PoolConfig, StoreConfig};

use super::Global;

/// `--symbols`: comma- or space-separated, or `all`.
#[derive(Debug, Args)]
pub struct SymbolArgs {
    /// Symbols (comma- or space-separated) or `all` for every stored symbol of the freq
    #[arg(long, num_args = 1.., value_delimiter = ',', required = true)]
    pub symbols: Vec<String>,
}

impl SymbolArgs {
    /// The canonical symbol list; `all` asks the store for every symbol of `freq`. Symbols
    /// without any `freq` bar (a typo, a wrong interval) are named in a warning.
    pub async fn resolve(&self, g: &Global, db: &AsyncMarketDB, freq: Freq) -> Result<Vec<String>> {
        let (symbols, _) = self.resolve_noting(g, db, freq).await?;
        Ok(symbols)
    }

    /// [`SymbolArgs::resolve`], also returning the symbols that have no `freq` bar (empty
    /// for `all`); warnings go to stderr unless `-q`.
    pub async fn resolve_noting(
        &self,
        g: &Global,
        db: &AsyncMarketDB,
        freq: Freq,
    ) -> Result<(Vec<String>, Vec<String>)> {
        let parts = split_symbols(&self.symbols);
        let stored = db.get_symbols(Some(freq)).await?;
        if parts.len() == 1 && parts[0].eq_ignore_ascii_case("all") {
            if stored.is_empty() {
                warn(g, &format!("no symbol has {freq} bars"));
            }
            return Ok((stored, Vec::new()));
        }
        let symbols = parse_symbols(&parts)?;
        let unknown: Vec<String> = symbols
            .iter()
            .filter(|s| stored.binary_search(s).is_err())
            .cloned()
            .collect();
        if !unknown.is_empty() {
            warn(
                g,
                &format!(
                    "no {freq} bars stored for {} (check the symbol and --freq)",
                    unknown.join(", ")
                ),
            );
        }
        Ok((symbols, unknown))
    }
}

pub fn split_symbols(raw: &[String]) -> Vec<String> {
    raw.iter()
        .flat_map(|s| s.split([',', ' ']))
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().to_owned())
        .collect()
}

/// Validates and upper-cases symbols, keeping order and dropping repeats.
pub fn parse_symbols(parts: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        let s = validate_symbol(p)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        bail!("--symbols needs at least one symbol");
    }
    Ok(out)
}

/// `--start`/`--end` or `--timerange`.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// Start: YYYY-MM-DD, YYYYMMDD, 'YYYY-MM-DD HH:MM[:SS]' (UTC), RFC 3339, or epoch ms
    #[arg(long)]
    pub start: Option<String>,
    /// End, inclusive (a date includes its whole day)
    #[arg(long)]
    pub end: Option<String>,
    /// freqtrade style range, days included: 20240101-20240131, 20240101- (until now) or
    /// -20240131 (from the first stored bar)
    #[arg(long, conflicts_with_all = ["start", "end"], allow_hyphen_values = true)]
    pub timerange: Option<String>,
}

/// A parsed range; an open start is resolved against the stored bars.
#[derive(Clone, Copy, Debug)]
pub enum RangeSpec {
    Fixed(TimeRange),
    /// `-B`: from the first stored bar of the symbols to `end_exclusive`.
    FromFirst {
        end_exclusive: i64,
    },
}

impl RangeArgs {
    /// Parses the flags (no database needed); a missing or malformed range is a usage
    /// error naming the flags.
    pub fn spec(&self) -> Result<RangeSpec> {
        match (&self.timerange, &self.start, &self.end) {
            (Some(tr), _, _) => match TimeRange::parse_open_timerange(tr)? {
                (Some(s), Some(e)) => Ok(RangeSpec::Fixed(TimeRange::new(s, e)?)),
                (Some(s), None) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                    let end = now.saturating_add(1).min(marketdb_model::TIME_MAX_MS);
                    Ok(RangeSpec::Fixed(TimeRange::new(s, end.max(s))?))
                }
                (None, Some(e)) => Ok(RangeSpec::FromFirst { end_exclusive: e }),
                (None, None) => Err(super::usage("--timerange needs a start or an end")),
            },
            (None, Some(s), Some(e)) => Ok(RangeSpec::Fixed(TimeRange::parse(s, e)?)),
            (None, None, None) => Err(super::usage(
                "a time range is needed: give --start and --end, or --timerange (such as \
                 20240101-20240131, 20240101- or -20240131)",
            )),
            (None, Some(_), None) => Err(super::usage(
                "--start needs --end (or use --timerange 20240101- for until now)",
            )),
            (None, None, Some(_)) => Err(super::usage(
                "--end needs --start (or use --timerange -20240131 for from the first bar)",
            )),
        }
    }

    /// [`RangeArgs::spec`] resolved: an open start becomes the first stored `freq` bar of
    /// `symbols` (all of `freq` when empty).
    pub async fn resolve(
        &self,
        db: &AsyncMarketDB,
        freq: Freq,
        symbols: &[String],
    ) -> Result<TimeRange> {
        match self.spec()? {
            RangeSpec::Fixed(r) => Ok(r),
            RangeSpec::FromFirst { end_exclusive } => {
                let listed;
                let symbols = if symbols.is_empty() {
                    listed = db.get_symbols(Some(freq)).await?;
                    &listed
                } else {
                    symbols
                };
                let mut first: Option<i64> = None;
                for s in symbols {
                    if let Some((t, _)) = db.get_time_range(s, freq).await? {
                        first = Some(first.map_or(t, |f| f.min(t)));
                    }
                }
                let start = first.unwrap_or(end_exclusive).min(end_exclusive);
                Ok(TimeRange::new(start, end_exclusive)?)
            }
        }
    }
}

/// A warning on stderr (not with `-q`).
#[allow(clippy::print_stderr)]
pub fn warn(g: &Global, message: &str) {
    if !g.quiet {
        eprintln!("warning: {message}");
    }
}

/// clap value parser for intervals.
pub fn freq(s: &str) -> Result<Freq, String> {
    Freq::from_str(s).map_err(|e| e.to_string())
}

/// A comma- or space-separated feature list (short or long names), one clap value.
#[derive(Clone, Debug)]
pub struct FeatureList(pub Vec<Feature>);

/// clap value parser for feature lists.
pub fn features(s: &str) -> Result<FeatureList, String> {
    Feature::parse_list(s)
        .map(FeatureList)
        .map_err(|e| e.to_string())
}

/// The requested features, or an empty list for the command's default set.
pub fn feature_list(f: &Option<FeatureList>) -> Vec<Feature> {
    f.as_ref().map(|l| l.0.clone()).unwrap_or_default()
}

/// How a command opens the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// An existing file, read-only: no writer, no schema change, no lock taken.
    ReadOnly,
    /// An existing file, for writing.
    Write,
    /// For writing, created (with its folders) when missing.
    Create,
}

/// Opens the database named by `--db`. Commands that only read pass [`Access::ReadOnly`]:
/// they never take the write lock and never change the file. Only `Create` makes a new
/// file, so a typo in the path is an error instead of a new empty database.
pub async fn open_db(g: &Global, access: Access) -> Result<AsyncMarketDB> {
    open_path(g, &g.db_path(), access).await
}

/// [`open_db`] for an explicit path (demo has its own default).
pub async fn open_path(g: &Global, path: &Path, access: Access) -> Result<AsyncMarketDB> {
    let exists = {
        let p = path.to_path_buf();
        tokio::task::spawn_blocking(move || p.exists())
            .await
            .unwrap_or(false)
    };
    if access != Access::Create && !exists {
        bail!(
            "database {} does not exist (create one with 'marketdb ingest', or try \
             'marketdb demo')",
            path.display()
        );
    }
    let mut pool = PoolConfig::new(path);
    pool.backend = Backend::from_str(&g.pool)?;
    pool.read_only = access == Access::ReadOnly;
    let config = StoreConfig {
        pool,
        ..StoreConfig::new(path)
    };
    AsyncMarketDB::open_with(config)
        .await
        .with_context(|| format!("cannot open database {}", path.display()))
}

/// Folds the WAL after a command's writes; the rows are committed already, so a failure
/// or a busy reader is a warning, not the command's error.
pub async fn checkpoint_or_warn(db: &AsyncMarketDB) {
    match db.checkpoint().await {
        Ok(c) if c.is_complete() => {}
        Ok(c) => tracing::warn!(
            ?c,
            "the wal was not truncated: another connection is reading"
        ),
        Err(e) => tracing::warn!("wal checkpoint failed (the data is stored): {e}"),
    }
}
