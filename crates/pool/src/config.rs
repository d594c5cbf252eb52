//! Pool configuration: [`PoolConfig`], the SQLite [`Pragmas`] applied to every connection,
//! and the keyword enums [`Backend`], [`JournalMode`], [`Synchronous`] and [`TempStore`]
//! (each parses from and prints as its lowercase keyword).
//!
//! Plain data with defaults; it opens nothing and validates only when a pool is opened.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{Error, Result};

/// Declares a keyword enum with `as_str`, `Display` and case-insensitive `FromStr`.
macro_rules! keyword_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal, { $($(#[$vmeta:meta])* $variant:ident => $kw:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The keyword, as accepted by `FromStr` and understood by SQLite.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $kw),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                $(if s.eq_ignore_ascii_case($kw) { return Ok($name::$variant); })+
                Err(Error::InvalidConfig {
                    what: $what,
                    value: s.to_owned(),
                    expected: concat!("one of ", keyword_enum!(@join $($kw),+)),
                })
            }
        }
    };
    (@join $first:literal $(, $rest:literal)*) => { concat!($first $(, ", ", $rest)*) };
}

keyword_enum!(
    /// Which pool implementation to use.
    #[derive(Default)]
    Backend, "pool backend", {
        /// bb8, falling back to the built-in pool if bb8 fails to initialise.
        #[default]
        Auto => "auto",
        /// bb8 only; a bb8 failure is an error.
        Bb8 => "bb8",
        /// The built-in tokio pool only.
        Builtin => "builtin",
    }
);

keyword_enum!(
    /// `PRAGMA journal_mode`.
    JournalMode, "journal mode", {
        /// Rollback journal, deleted after each transaction.
        Delete => "delete",
        /// Rollback journal, truncated after each transaction.
        Truncate => "truncate",
        /// Rollback journal, header zeroed after each transaction.
        Persist => "persist",
        /// Rollback journal kept in memory.
        Memory => "memory",
        /// Write-ahead log: readers do not block the writer (the default).
        Wal => "wal",
        /// No journal (unsafe).
        Off => "off",
    }
);

keyword_enum!(
    /// `PRAGMA synchronous`.
    Synchronous, "synchronous mode", {
        /// No syncs.
        Off => "off",
        /// Sync at checkpoints; durable enough in WAL mode (the default).
        Normal => "normal",
        /// Sync at every commit.
        Full => "full",
        /// Like full, plus the directory after unlinking a journal.
        Extra => "extra",
    }
);

keyword_enum!(
    /// `PRAGMA temp_store`.
    TempStore, "temp store", {
        /// Compile-time default.
        Default => "default",
        /// Temporary tables and indices on disk.
        File => "file",
        /// Temporary tables and indices in memory (the default).
        Memory => "memory",
    }
);

/// The pragmas applied to every connection (see `connect.rs` for which apply to readers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `journal_mode`, default WAL.
    pub journal_mode: JournalMode,
    /// `synchronous`, default NORMAL.
    pub synchronous: Synchronous,
    /// `cache_size` (pages if positive, KiB if negative), default 10000.
    pub cache_size: i64,
    /// `temp_store`, default MEMORY.
    pub temp_store: TempStore,
    /// `mmap_size` in bytes, default 268435456 (256 MiB); SQLite may cap it.
    pub mmap_size: u64,
    /// `wal_autocheckpoint` in pages (0 disables), default 1000.
    pub wal_autocheckpoint: u32,
    /// `foreign_keys`, default on.
    pub foreign_keys: bool,
}

impl Default for Pragmas {
    fn default() -> Self {
        Pragmas {
            journal_mode: JournalMode::Wal,
            synchronous: Synchronous::Normal,
            cache_size: 10_000,
            temp_store: TempStore::Memory,
            mmap_size: 268_435_456,
            wal_autocheckpoint: 1000,
            foreign_keys: true,
        }
    }
}

/// A function run on each new writer connection ([`PoolConfig::writer_setup`]). Two
/// setups are equal when they are the same function.
#[derive(Clone, Copy)]
pub struct WriterSetup(pub fn(&mut rusqlite::Connection) -> rusqlite::Result<()>);

impl fmt::Debug for WriterSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterSetup(..)")
    }
}

impl PartialEq for WriterSetup {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::fn_addr_eq(self.0, other.0)
    }
}

impl Eq for WriterSetup {}

/// Everything needed to open a pool on one SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The database file; created (with its parent folders) if missing.
    pub path: PathBuf,
    /// Number of read-only connections (at least 1).
    pub readers: usize,
    /// How long an acquire waits for a free connection before [`Error::Timeout`].
    pub acquire_timeout: Duration,
    /// SQLite `busy_timeout` on every connection.
    pub busy_timeout: Duration,
    /// Pragmas applied to every connection.
    pub pragmas: Pragmas,
    /// Which pool implementation to use.
    pub backend: Backend,
    /// Open no writer: every connection is `SQLITE_OPEN_READ_ONLY`, nothing is created
    /// (no file, no folder), no journal mode is set, and [`crate::PoolManager::write`]
    /// fails with [`Error::ReadOnly`]. Reads then never wait for the write lock and work
    /// on read-only files and mounts.
    pub read_only: bool,
    /// How long opening a backend may take before it counts as a pool-layer failure
    /// ([`Error::PoolInit`]): then `auto` falls back from bb8, and the built-in pool gives
    /// up. Default 10 s.
    pub init_timeout: Duration,
    /// Run on the writer connection once, right after it is opened and configured (the
    /// store installs its write rules there). None by default.
    pub writer_setup: Option<WriterSetup>,
    /// Test hooks (feature `fault-injection`).
    #[cfg(feature = "fault-injection")]
    pub faults: Faults,
}

/// Ways to make a backend fail or stall at start, for tests of the fallback.
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// bb8 fails to initialise with this reason (a pool-layer error).
    pub fail_primary: Option<String>,
    /// bb8's connection manager sleeps this long before each connect.
    pub stall_primary: Option<Duration>,
    /// The built-in pool sleeps this long before opening its connections.
    pub stall_builtin: Option<Duration>,
}

impl PoolConfig {
    /// Defaults for `path`: readers = available parallelism clamped to 2..=8, 30 s acquire
    /// timeout, 5 s busy timeout, default pragmas, backend auto.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        PoolConfig {
            path: path.into(),
            readers: Self::default_readers(),
            acquire_timeout: Duration::from_secs(30),
            busy_timeout: Duration::from_secs(5),
            pragmas: Pragmas::default(),
            backend: Backend::Auto,
            read_only: false,
            init_timeout: Duration::from_secs(10),
            writer_setup: None,
            #[cfg(feature = "fault-injection")]
            faults: Faults::default(),
        }
    }

    /// [`PoolConfig::new`] with [`PoolConfig::read_only`] set.
    pub fn read_only(path: impl Into<PathBuf>) -> Self {
        PoolConfig {
            read_only: true,
            ..PoolConfig::new(path)
        }
    }

    /// Available parallelism clamped to 2..=8 (2 when unknown).
    pub fn default_readers() -> usize {
        std::thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .clamp(2, 8)
    }

    /// Checks the values that do not need the file system (bb8 also panics on a zero
    /// acquire timeout or pool size, so those are rejected here).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.readers == 0 || u32::try_from(self.readers).is_err() {
            return Err(Error::InvalidConfig {
                what: "reader count",
                value: self.readers.to_string(),
                expected: "at least 1",
            });
        }
        if self.init_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                what: "init timeout",
                value: format!("{:?}", self.init_timeout),
                expected: "a duration greater than zero",
            });
        }
        if self.acquire_timeout.is_zero() {
            return Err(Error::InvalidConfig {
                what: "acquire timeout",
                value: format!("{:?}", self.acquire_timeout),
                expected: "a duration greater than zero",
            });
        }
        let path = self.path.as_os_str();
        if path.is_empty() {
            return Err(Error::InvalidPath {
                path: self.path.clone(),
                reason: "the path is empty",
            });
        }
        // Every pooled connection to ":memory:" would get its own private database, so
        // tables created by the writer would be invisible to the readers.
        if path == ":memory:" {
            return Err(Error::InvalidPath {
                path: self.path.clone(),
                reason: "in-memory databases cannot be pooled (each connection would get a \
                         separate database); use a file path",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_parses_and_prints_its_keywords() {
        for backend in [Backend::Auto, Backend::Bb8, Backend::Builtin] {
            assert_eq!(backend.to_string().parse::<Backend>().unwrap(), backend);
        }
        assert_eq!("BB8".parse::<Backend>().unwrap(), Backend::Bb8);
        assert_eq!(Backend::Builtin.to_string(), "builtin");
        assert_eq!(Backend::default(), Backend::Auto);
    }

    #[test]
    fn unknown_backend_names_the_accepted_values() {
        let err = "deadpool".parse::<Backend>().unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { .. }));
        assert_eq!(
            err.to_string(),
            "invalid pool backend \"deadpool\": expected one of auto, bb8, builtin"
        );
    }

    #[test]
    fn pragma_keywords_round_trip() {
        assert_eq!("WAL".parse::<JournalMode>().unwrap(), JournalMode::Wal);
        assert_eq!(
            "normal".parse::<Synchronous>().unwrap(),
            Synchronous::Normal
        );
        assert_eq!("Memory".parse::<TempStore>().unwrap(), TempStore::Memory);
        assert_eq!(JournalMode::Truncate.to_string(), "truncate");
        let err = "fast".parse::<Synchronous>().unwrap_err().to_string();
        assert!(err.contains("off, normal, full, extra"), "{err}");
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let config = PoolConfig::new("/tmp/x.db");
        assert!((2..=8).contains(&config.readers));
        assert_eq!(config.acquire_timeout, Duration::from_secs(30));
        assert_eq!(config.busy_timeout, Duration::from_secs(5));
        assert_eq!(config.backend, Backend::Auto);
        assert_eq!(config.init_timeout, Duration::from_secs(10));
        assert!(!config.read_only);
        assert!(PoolConfig::read_only("/tmp/x.db").read_only);
        let p = config.pragmas;
        assert_eq!(p.journal_mode, JournalMode::Wal);
        assert_eq!(p.synchronous, Synchronous::Normal);
        assert_eq!(p.cache_size, 10_000);
        assert_eq!(p.temp_store, TempStore::Memory);
        assert_eq!(p.mmap_size, 268_435_456);
        assert_eq!(p.wal_autocheckpoint, 1000);
        assert!(p.foreign_keys);
    }

    #[test]
    fn validate_rejects_memory_empty_and_zero_readers() {
        assert!(PoolConfig::new("data/m.db").validate().is_ok());
        for path in [":memory:", ""] {
            let err = PoolConfig::new(path).validate().unwrap_err();
            assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
        }
        let err = PoolConfig::new(":memory:")
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(":memory:") && err.contains("separate database"),
            "{err}"
        );
        let config = PoolConfig {
            readers: 0,
            ..PoolConfig::new("a.db")
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig { .. })
        ));
        let config = PoolConfig {
            acquire_timeout: Duration::ZERO,
            ..PoolConfig::new("a.db")
        };
        assert!(matches!(
            config.validate(),
            Err(Error::InvalidConfig { .. })
        ));
    }
}
