//! marketdb-output: the one gate through which marketdb creates files. Every path the tool
//! writes (each export format and its parts, dataset partitions and state, statistics,
//! HDF5, downloaded files kept with `--keep`, `demo`'s export folder, temporary and scratch
//! files) is made here, so the safety rules hold for a writer added tomorrow as for the first
//! one: the workspace's clippy configuration refuses the direct file-creating calls
//! (`File::create`, `OpenOptions::open`, `fs::write`, `fs::rename`, `fs::copy`...) anywhere
//! else but tests and developer tools.
//!
//! Main types: [`OutputGate`] (the checks: never the open database or its `-wal`/`-shm`/
//! `-journal`, never a SQLite file, never a device, FIFO or socket, symlinks resolved first),
//! [`AtomicFile`] and [`PendingFile`] (temporary name, fsync, re-check, rename), [`FileSet`]
//! (several files published as one, with a listing that retires an earlier export's extra
//! members), [`ScratchDir`] (a locked private folder for intermediate files), and
//! [`open_regular`] (reading an input without blocking on a FIFO).
//!
//! It knows nothing about market data, formats or networks: callers decide what a file holds
//! and what a folder may contain; the gate decides only whether a path may be written and
//! how it is published.

// The one crate allowed to create files directly: everything else goes through it.
#![allow(clippy::disallowed_methods)]

mod atomic;
mod error;
mod file_set;
mod gate;
mod read;
mod scratch;
mod sweep;

pub use atomic::{AtomicFile, Committed, PendingFile, hex, publish_new, sync_dir, temp_path};
pub use error::{Error, Result};
pub use file_set::{FileSet, FileSetReport, LISTING_SUFFIX};
pub use gate::{
    CheckedPath, MAX_LINKS, OutputGate, SQLITE_HEADER, SQLITE_SIDECARS, follow_links, kind,
    same_file, starts_with_sqlite_header,
};
pub use read::{open_regular, read_regular};
pub use scratch::ScratchDir;
pub use sweep::{process_alive, sweep_stale_temps, temp_owner};
