//! The dataset's state, `_marketdb/state.json`: what the dataset covers (its **scope**: the
//! symbol selection, and the kinds and intervals published so far) and, per partition, the
//! digest of its rows, their count, the file's size and the symbols the partition covers
//! (every symbol of the scope's selection, even one without a row in that period: an
//! import replaces exactly those). The state is the authority a reader goes through; it is
//! written by temporary name, fsync and rename.
//!
//! The scope only grows: an export with a selection that is not part of the dataset's
//! extends it ([`Scope::merge`]); one that would narrow it is refused, since the partitions
//! it left alone would still cover the symbols it dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use marketdb_output::OutputGate;
use serde::{Deserialize, Serialize};

use crate::layout::{DATASET_VERSION, DatasetKind, STATE_PATH};
use crate::{Error, Result};

/// Largest state file read.
const MAX_STATE_BYTES: u64 = 1 << 30;

/// The symbols a dataset covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Selection {
    /// `"all"`: every symbol the publishing node stores for a kind and interval.
    All(AllSymbols),
    /// An explicit list, sorted.
    Symbols(BTreeSet<String>),
}

/// The word `"all"` in a state file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AllSymbols {
    All,
}

impl Selection {
    /// The selection of a request: empty means every symbol.
    pub fn of(symbols: &[String]) -> Selection {
        if symbols.is_empty() {
            Selection::All(AllSymbols::All)
        } else {
            Selection::Symbols(symbols.iter().cloned().collect())
        }
    }

    /// Whether this is every symbol.
    pub fn is_all(&self) -> bool {
        matches!(self, Selection::All(_))
    }

    fn describe(&self) -> String {
        match self {
            Selection::All(_) => "every symbol".to_owned(),
            Selection::Symbols(s) => {
                let shown: Vec<&str> = s.iter().take(5).map(String::as_str).collect();
                format!(
                    "{} symbol(s): {}{}",
                    s.len(),
                    shown.join(", "),
                    if s.len() > shown.len() { ", ..." } else { "" }
                )
            }
        }
    }
}

/// What a dataset covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub symbols: Selection,
    /// Kinds published so far.
    pub kinds: BTreeSet<DatasetKind>,
    /// Kline intervals published so far (their partition values).
    pub freqs: BTreeSet<String>,
}

/// What [`Scope::merge`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScopeChange {
    /// The same selection.
    Same,
    /// The selection grew (the message says from what to what).
    Extended(String),
}

impl Scope {
    /// A new dataset's scope.
    pub fn new(symbols: Selection) -> Scope {
        Scope {
            symbols,
            kinds: BTreeSet::new(),
            freqs: BTreeSet::new(),
        }
    }

    /// The scope after an export selecting `wanted`: the union, or a refusal when `wanted`
    /// would narrow it.
    pub fn merge(&mut self, wanted: &Selection, root: &str) -> Result<ScopeChange> {
        let narrower = |detail: String| Error::Request {
            what: "symbols",
            value: root.to_owned(),
            reason: format!(
                "the dataset covers {}, and an export of {detail} would leave its other \
                 partitions covering symbols this one drops; export the dataset's selection \
                 (or more), or publish into a new folder",
                self.symbols.describe()
            ),
        };
        match (&self.symbols, wanted) {
            (Selection::All(_), Selection::All(_)) => Ok(ScopeChange::Same),
            (Selection::All(_), Selection::Symbols(_)) => Err(narrower(wanted.describe())),
            (Selection::Symbols(_), Selection::All(_)) => {
                let from = self.symbols.describe();
                self.symbols = wanted.clone();
                Ok(ScopeChange::Extended(format!(
                    "from {from} to every symbol"
                )))
            }
            (Selection::Symbols(have), Selection::Symbols(want)) => {
                if want == have {
                    return Ok(ScopeChange::Same);
                }
                if want.is_subset(have) {
                    return Err(narrower(wanted.describe()));
                }
                let from = self.symbols.describe();
                let union: BTreeSet<String> = have.union(want).cloned().collect();
                self.symbols = Selection::Symbols(union);
                Ok(ScopeChange::Extended(format!(
                    "from {from} to {}",
                    self.symbols.describe()
                )))
            }
        }
    }
}

/// One partition's record in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// SHA-256 of the partition's rows (not of the file), lowercase hex.
    pub digest: String,
    pub rows: u64,
    pub bytes: u64,
    /// The symbols the partition covers, sorted: an import replaces exactly their rows of
    /// the partition's period.
    pub symbols: Vec<String>,
    /// SHA-256 of what the database's change record said about the partition's days when
    /// it was last compared (absent when the record could not tell: see
    /// `publish::record_print`). The same print later means the same rows, without reading
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
}

/// The state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetState {
    pub version: u32,
    pub scope: Scope,
    pub partitions: BTreeMap<String, PartitionState>,
}

impl DatasetState {
    /// An empty state of a new dataset selecting `symbols`.
    pub fn new(symbols: Selection) -> DatasetState {
        DatasetState {
            version: DATASET_VERSION,
            scope: Scope::new(symbols),
            partitions: BTreeMap::new(),
        }
    }

    /// Reads the state of the dataset at `root`; `None` when there is none. Never blocks on
    /// a FIFO planted at its path.
    pub fn load(root: &Path) -> Result<Option<DatasetState>> {
        let path = root.join(STATE_PATH);
        match marketdb_output::read_regular(&path, MAX_STATE_BYTES)? {
            Some(bytes) => DatasetState::from_bytes(&bytes, &path).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes a state file read from `path` (named in errors).
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<DatasetState> {
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let invalid = |reason: String| Error::InvalidDataset {
            path: path.to_path_buf(),
            reason,
        };
        let v: Version = serde_json::from_slice(bytes).map_err(|source| Error::JsonRead {
            path: path.to_path_buf(),
            source,
        })?;
        if v.version != DATASET_VERSION {
            return Err(invalid(format!(
                "dataset version {} is not the version {DATASET_VERSION} this build reads and \
                 writes (version 2 names the month interval freq=1mo and records the symbols \
                 each partition covers): publish it again with this build, into a new folder",
                v.version
            )));
        }
        serde_json::from_slice(bytes).map_err(|source| Error::JsonRead {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The state as JSON.
    pub fn to_bytes(&self, path: &Path) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Writes the state of the dataset at `root` (temporary name, fsync, rename, folder
    /// fsync).
    pub(crate) fn save(&self, gate: &OutputGate, root: &Path) -> Result<()> {
        let path = root.join(STATE_PATH);
        let bytes = self.to_bytes(&path)?;
        let mut f = gate.create(&path)?;
        f.write_all(&bytes)?;
        f.commit(true)?;
        if let Some(dir) = path.parent() {
            marketdb_output::sync_dir(dir)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Selection {
        Selection::Symbols(s.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn the_scope_grows_and_never_narrows() {
        let mut scope = Scope::new(list(&["BTCUSDT"]));
        assert_eq!(
            scope.merge(&list(&["BTCUSDT"]), "d").unwrap(),
            ScopeChange::Same
        );
        let change = scope.merge(&list(&["ETHUSDT"]), "d").unwrap();
        assert!(matches!(change, ScopeChange::Extended(_)), "{change:?}");
        assert_eq!(scope.symbols, list(&["BTCUSDT", "ETHUSDT"]));
        let err = scope
            .merge(&list(&["ETHUSDT"]), "d")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("covers 2 symbol(s): BTCUSDT, ETHUSDT"),
            "{err}"
        );
        assert!(scope.merge(&Selection::of(&[]), "d").is_ok());
        assert!(scope.symbols.is_all());
        assert!(scope.merge(&list(&["BTCUSDT"]), "d").is_err());
    }

    #[test]
    fn states_round_trip_and_version_one_is_refused_by_name() {
        let mut s = DatasetState::new(Selection::of(&[]));
        s.partitions.insert(
            "klines/freq=1m/date=2024-01-01".into(),
            PartitionState {
                record: None,
                digest: "ab".into(),
                rows: 2,
                bytes: 9,
                symbols: vec!["BTCUSDT".into()],
            },
        );
        let path = Path::new("x/_marketdb/state.json");
        let bytes = s.to_bytes(path).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains("\"symbols\": \"all\""));
        assert_eq!(DatasetState::from_bytes(&bytes, path).unwrap(), s);
        let old = br#"{"version": 1, "symbols": [], "partitions": {}}"#;
        let err = DatasetState::from_bytes(old, path).unwrap_err().to_string();
        assert!(
            err.contains("dataset version 1") && err.contains("new folder"),
            "{err}"
        );
    }
}
