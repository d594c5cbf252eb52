//! [`FileSet`]: a multi-file output (CSV parts) published as one. Its members are named
//! `{prefix}{n}{suffix}` beside the name the set stands for (`bars.csv` gives
//! `bars_part_1.csv`...), and a listing beside them (`bars.csv.parts.json`) names the members
//! of the last export, so that:
//! - members are written under temporary names and renamed together, only when the whole
//!   set is complete;
//! - members of an earlier export that the new one does not produce are removed (a reader
//!   of `bars_part_*` never mixes two exports);
//! - files that match the member names but that no listing names (the user's own, or
//!   another program's) make the export refuse, naming them, instead of being replaced.
//!
//! Order of publication, so that a run killed at any point leaves every member file named
//! by the listing: the listing is first written with the old and new members, then the new
//! members are renamed into place, the old ones removed, and the listing rewritten with the
//! new members only.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{AtomicFile, Committed, Error, OutputGate, PendingFile, Result, sync_dir};

/// The version of the listing file.
const LISTING_VERSION: u32 = 1;
/// The listing's name: `{base name}{LISTING_SUFFIX}`.
pub const LISTING_SUFFIX: &str = ".parts.json";
/// Largest listing read (a listing is a few names per member).
const MAX_LISTING_BYTES: u64 = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Listing {
    marketdb_file_set: u32,
    base: String,
    files: Vec<String>,
}

/// A multi-file output; see the module docs.
#[derive(Debug)]
pub struct FileSet {
    gate: OutputGate,
    /// The folder the members live in (as given).
    dir: PathBuf,
    base_name: String,
    listing: PathBuf,
    prefix: String,
    suffix: String,
    /// Members the earlier listing names.
    previous: BTreeSet<String>,
    pending: Vec<PendingFile>,
}

/// What a file set's publication did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSetReport {
    /// The members written, in order.
    pub files: Vec<Committed>,
    /// Members of the earlier export that were removed.
    pub removed: Vec<PathBuf>,
}

impl FileSet {
    /// Prepares the set standing for `base`, members `{prefix}{n}{suffix}` in its folder.
    /// With `members` false the new export is a single file (`base` itself): the earlier
    /// set's members are still retired on commit, and strangers are left alone. Refuses
    /// when files match the member names without being listed (with `members`).
    pub fn open(
        gate: &OutputGate,
        base: &Path,
        prefix: &str,
        suffix: &str,
        members: bool,
    ) -> Result<FileSet> {
        let base_name = base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::refused(base, "has no file name"))?;
        // Members and the listing are siblings of `base`, spelled as the caller spelled it.
        let dir = base.parent().map(Path::to_path_buf).unwrap_or_default();
        let listing = dir.join(format!("{base_name}{LISTING_SUFFIX}"));
        gate.check_file(&listing)?;
        let previous = read_listing(&listing, &base_name)?;
        let set = FileSet {
            gate: gate.clone(),
            dir,
            base_name,
            listing,
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
            previous,
            pending: Vec::new(),
        };
        if members {
            let strangers = set.strangers()?;
            if !strangers.is_empty() {
                let shown: Vec<&str> = strangers.iter().take(5).map(String::as_str).collect();
                return Err(Error::refused(
                    base,
                    format!(
                        "its folder holds {} file(s) named like this export's parts that no \
                         earlier marketdb export lists in {} ({}{}); move or delete them, or \
                         choose another name",
                        strangers.len(),
                        set.listing.display(),
                        shown.join(", "),
                        if strangers.len() > shown.len() {
                            ", ..."
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        // A listed member that has become something marketdb may not replace (a database,
        // a FIFO) is refused now, before anything is written.
        for name in &set.previous {
            let path = set.dir.join(name);
            if std::fs::symlink_metadata(&path).is_ok() {
                set.gate.check_file(&path)?;
            }
        }
        Ok(set)
    }

    /// The path of member `n` (from 1).
    pub fn member_path(&self, n: usize) -> PathBuf {
        self.dir.join(self.member_name(n))
    }

    fn member_name(&self, n: usize) -> String {
        format!("{}{n}{}", self.prefix, self.suffix)
    }

    /// Whether `name` is a member name of this set.
    fn is_member_name(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix(&self.suffix))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    }

    /// Files in the folder named like members that the earlier listing does not name.
    fn strangers(&self) -> Result<Vec<String>> {
        let listed_dir = if self.dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            self.dir.as_path()
        };
        let entries = match std::fs::read_dir(listed_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if self.is_member_name(&name) && !self.previous.contains(&name) {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Starts member `n` (from 1) under a temporary name.
    pub fn create(&self, n: usize) -> Result<AtomicFile> {
        self.gate.create(&self.member_path(n))
    }

    /// Adds a finished member (renamed on [`FileSet::commit`]).
    pub fn push(&mut self, member: PendingFile) {
        self.pending.push(member);
    }

    /// Publishes the members pushed (none for a single-file export, whose own file the
    /// caller commits first) and retires the earlier ones; see the module docs.
    pub fn commit(mut self, fsync: bool) -> Result<FileSetReport> {
        let pending = std::mem::take(&mut self.pending);
        let new: BTreeSet<String> = pending
            .iter()
            .filter_map(|p| p.target().file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let mut report = FileSetReport::default();
        if new.is_empty() && self.previous.is_empty() {
            return Ok(report);
        }
        let union: BTreeSet<String> = self.previous.union(&new).cloned().collect();
        if union != self.previous {
            self.write_listing(&union, fsync)?;
        }
        for p in pending {
            report.files.push(p.commit()?);
        }
        for name in self.previous.difference(&new) {
            let path = self.dir.join(name);
            // Removed only while it is still a file marketdb could have written.
            if self.gate.remove(&path)? {
                report.removed.push(path);
            }
        }
        if new.is_empty() {
            self.gate.remove(&self.listing)?;
        } else {
            self.write_listing(&new, fsync)?;
        }
        if fsync {
            sync_dir(if self.dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                &self.dir
            })?;
        }
        Ok(report)
    }

    fn write_listing(&self, files: &BTreeSet<String>, fsync: bool) -> Result<()> {
        let listing = Listing {
            marketdb_file_set: LISTING_VERSION,
            base: self.base_name.clone(),
            files: files.iter().cloned().collect(),
        };
        let bytes = serde_json::to_vec_pretty(&listing)
            .map_err(|e| Error::io("encode", &self.listing, std::io::Error::other(e)))?;
        let mut f = self.gate.create(&self.listing)?;
        f.write_all(&bytes)?;
        f.write_all(b"\n")?;
        f.commit(fsync)?;
        Ok(())
    }
}

/// The members an existing listing names (none when there is no listing). A listing that
/// is not one of ours, or names files outside its folder, is refused.
fn read_listing(path: &Path, base_name: &str) -> Result<BTreeSet<String>> {
    let Some(bytes) = crate::read_regular(path, MAX_LISTING_BYTES)? else {
        return Ok(BTreeSet::new());
    };
    let bad = |why: &str| {
        Error::refused(
            path,
            format!("is not a marketdb part listing ({why}); move or delete it"),
        )
    };
    let listing: Listing =
        serde_json::from_slice(&bytes).map_err(|e| bad(&format!("invalid json: {e}")))?;
    if listing.marketdb_file_set != LISTING_VERSION {
        return Err(bad("unknown version"));
    }
    if listing.base != base_name {
        return Err(bad(&format!("it lists the parts of {:?}", listing.base)));
    }
    let mut out = BTreeSet::new();
    for name in listing.files {
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(bad(&format!("it names {name:?}, which is not a file name")));
        }
        out.insert(name);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::fs;

    use super::*;

    fn export(gate: &OutputGate, base: &Path, parts: usize) -> Result<FileSetReport> {
        let mut set = FileSet::open(gate, base, "k_part_", ".csv", parts > 0)?;
        for n in 1..=parts {
            let mut f = set.create(n)?;
            f.write_all(format!("part {n}\n").as_bytes())?;
            set.push(f.finish(false)?);
        }
        set.commit(false)
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn fewer_parts_retire_the_earlier_ones_and_strangers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let gate = OutputGate::new();
        let base = dir.path().join("k.csv");
        let r = export(&gate, &base, 5).unwrap();
        assert_eq!(r.files.len(), 5);
        let r = export(&gate, &base, 2).unwrap();
        assert_eq!(r.removed.len(), 3);
        assert_eq!(
            names(dir.path()),
            ["k.csv.parts.json", "k_part_1.csv", "k_part_2.csv"]
        );
        // A file that only looks like a part is the user's: refused, named, untouched.
        fs::write(dir.path().join("k_part_7.csv"), "mine").unwrap();
        let err = export(&gate, &base, 1).unwrap_err().to_string();
        assert!(err.contains("k_part_7.csv"), "{err}");
        assert_eq!(fs::read(dir.path().join("k_part_7.csv")).unwrap(), b"mine");
        assert_eq!(
            fs::read(dir.path().join("k_part_2.csv")).unwrap(),
            b"part 2\n"
        );
        fs::remove_file(dir.path().join("k_part_7.csv")).unwrap();
        // A single-file export retires the parts and the listing.
        let r = export(&gate, &base, 0).unwrap();
        assert_eq!(r.removed.len(), 2);
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn parts_without_a_listing_are_refused_and_a_foreign_listing_too() {
        let dir = tempfile::tempdir().unwrap();
        let gate = OutputGate::new();
        let base = dir.path().join("k.csv");
        fs::write(dir.path().join("k_part_1.csv"), "older tool").unwrap();
        let err = export(&gate, &base, 3).unwrap_err().to_string();
        assert!(err.contains("k_part_1.csv"), "{err}");
        fs::remove_file(dir.path().join("k_part_1.csv")).unwrap();
        fs::write(dir.path().join("k.csv.parts.json"), "{}").unwrap();
        let err = export(&gate, &base, 3).unwrap_err().to_string();
        assert!(err.contains("not a marketdb part listing"), "{err}");
        fs::write(
            dir.path().join("k.csv.parts.json"),
            r#"{"marketdb_file_set":1,"base":"k.csv","files":["../m.db"]}"#,
        )
        .unwrap();
        let err = export(&gate, &base, 3).unwrap_err().to_string();
        assert!(err.contains("not a file name"), "{err}");
    }

    #[test]
    fn a_listed_part_that_became_a_database_is_refused_before_writing() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("k.csv");
        export(&OutputGate::new(), &base, 2).unwrap();
        let db = dir.path().join("k_part_2.csv");
        let mut bytes = crate::SQLITE_HEADER.to_vec();
        bytes.extend_from_slice(&[1; 64]);
        fs::write(&db, &bytes).unwrap();
        let gate = OutputGate::protecting(&db);
        let err = export(&gate, &base, 1).unwrap_err().to_string();
        assert!(err.contains("open database"), "{err}");
        assert_eq!(fs::read(&db).unwrap(), bytes);
        assert_eq!(
            fs::read(dir.path().join("k_part_1.csv")).unwrap(),
            b"part 1\n"
        );
    }
}
