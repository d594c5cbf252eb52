//! File checks of the torture harness: what counts as a whole export output and what as a
//! leftover. A `.npy` is whole when its size is exactly what its v1 header's shape and
//! dtype need; a CSV when it has its header plus the expected rows; a Parquet file when it
//! starts and ends with `PAR1`; a NumPy folder when every final-named file is whole and its
//! `manifest.json`, if present, lists files that exist with the listed size and SHA-256
//! (the hash through `sha256sum`, when installed). Temporary files are hidden names holding
//! `.tmp-`. It reads files only; it never repairs or removes anything.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use super::json::Json;

/// Every regular file under `root` (none when it does not exist).
pub fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(p),
                Ok(_) => out.push(p),
                Err(_) => {}
            }
        }
    }
    out.sort();
    out
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Whether a file name is an export's temporary name (`.{name}.tmp-{pid}-{n}`).
pub fn is_temp(p: &Path) -> bool {
    let n = name_of(p);
    n.starts_with('.') && n.contains(".tmp-")
}

/// The temporary files left anywhere under `root`.
pub fn temp_files(root: &Path) -> Vec<PathBuf> {
    files_under(root)
        .into_iter()
        .filter(|p| is_temp(p))
        .collect()
}

/// A `.npy` (format 1.0) holds exactly the bytes its header's shape and dtype need.
pub fn npy_whole(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format!("bad magic ({} bytes)", bytes.len()));
    }
    let hlen = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
    let header = bytes
        .get(10..10 + hlen)
        .ok_or_else(|| format!("header of {hlen} bytes cut off"))?;
    let header = std::str::from_utf8(header).map_err(|e| e.to_string())?;
    let descr = header
        .split("'descr': '")
        .nth(1)
        .and_then(|d| d.split('\'').next())
        .ok_or("no descr")?;
    let item: usize = match descr {
        "<f8" | "<i8" => 8,
        d if d.starts_with("<U") => 4 * d[2..].parse::<usize>().map_err(|e| e.to_string())?,
        d => return Err(format!("unexpected dtype {d}")),
    };
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or("no shape")?;
    let mut n = 1usize;
    for dim in shape.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        n *= dim
            .parse::<usize>()
            .map_err(|e| format!("shape {shape:?}: {e}"))?;
    }
    let want = 10 + hlen + n * item;
    if bytes.len() != want {
        return Err(format!("{} bytes, its shape needs {want}", bytes.len()));
    }
    Ok(())
}

/// A CSV export: the header line plus `rows` lines, newline-terminated.
pub fn csv_whole(path: &Path, rows: usize) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if !bytes.starts_with(b"symbol,timestamp,") {
        return Err("no CSV header".into());
    }
    if !bytes.ends_with(b"\n") {
        return Err("last line cut off".into());
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
    if lines != 1 + rows {
        return Err(format!("{lines} lines, expected {}", 1 + rows));
    }
    Ok(())
}

/// A Parquet file: `PAR1` at both ends.
pub fn parquet_whole(path: &Path) -> Result<(), String> {
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    if bytes.len() > 8 && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1") {
        Ok(())
    } else {
        Err(format!("{} bytes without PAR1 at both ends", bytes.len()))
    }
}

/// What a NumPy export folder holds.
#[derive(Debug, Default)]
pub struct NumpyTree {
    /// Final-named files that are not whole (or a manifest that does not match).
    pub partial: Vec<String>,
    /// Temporary files (allowed right after a SIGKILL only).
    pub temps: usize,
    /// Whether a `manifest.json` is present.
    pub manifest: bool,
    /// `.npy` files under final names.
    pub npy: usize,
}

/// Checks a NumPy export folder (see the module docs); a missing folder is empty.
pub fn numpy_tree(root: &Path) -> NumpyTree {
    let mut t = NumpyTree::default();
    for p in files_under(root) {
        let name = name_of(&p);
        if name.starts_with('.') {
            if name.contains(".tmp-") {
                t.temps += 1;
            } else {
                t.partial
                    .push(format!("{}: unexpected hidden file", p.display()));
            }
        } else if name.ends_with(".npy") {
            t.npy += 1;
            if let Err(e) = npy_whole(&p) {
                t.partial.push(format!("{}: {e}", p.display()));
            }
        } else if name.ends_with(".json") {
            let ok = fs::read_to_string(&p)
                .map_err(|e| e.to_string())
                .and_then(|s| Json::parse(&s).map_err(|e| e.to_string()));
            if let Err(e) = ok {
                t.partial
                    .push(format!("{}: not whole JSON: {e}", p.display()));
            }
        } else {
            t.partial
                .push(format!("{}: unexpected file in an export", p.display()));
        }
    }
    let manifest = root.join("manifest.json");
    if let Ok(text) = fs::read_to_string(&manifest) {
        t.manifest = true;
        match Json::parse(&text) {
            Ok(m) => t.partial.extend(manifest_problems(root, &m)),
            Err(e) => t.partial.push(format!("{}: {e}", manifest.display())),
        }
    }
    t
}

/// Files a manifest lists that are missing, of another size, or of another SHA-256.
fn manifest_problems(root: &Path, m: &Json) -> Vec<String> {
    let mut problems = Vec::new();
    let files = m.get("files").items();
    if m.get("status").as_str() == Some("ok") && files.is_empty() {
        problems.push("manifest: status ok but no files listed".to_owned());
    }
    let mut listed = Vec::new();
    for f in files {
        let (Some(rel), Some(bytes)) = (f.get("path").as_str(), f.get("bytes").as_u64()) else {
            problems.push("manifest: a file entry without path or bytes".to_owned());
            continue;
        };
        let path = root.join(rel);
        match fs::metadata(&path) {
            Ok(md) if md.len() == bytes => {
                if let Some(sum) = f.get("sha256").as_str() {
                    listed.push((path, sum.to_owned()));
                }
            }
            Ok(md) => problems.push(format!(
                "{}: {} bytes, the manifest says {bytes}",
                path.display(),
                md.len()
            )),
            Err(e) => problems.push(format!("{}: listed in the manifest: {e}", path.display())),
        }
    }
    problems.extend(sha256_mismatches(&listed));
    problems
}

/// Files whose SHA-256 (from `sha256sum`) differs from the expected one; nothing when
/// `sha256sum` is not installed.
fn sha256_mismatches(files: &[(PathBuf, String)]) -> Vec<String> {
    if files.is_empty() {
        return Vec::new();
    }
    let Ok(out) = Command::new("sha256sum")
        .args(files.iter().map(|(p, _)| p))
        .output()
    else {
        return Vec::new();
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let sums: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    if !out.status.success() || sums.len() != files.len() {
        return vec![format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )];
    }
    files
        .iter()
        .zip(sums)
        .filter(|((_, want), got)| want != got)
        .map(|((p, want), got)| format!("{}: sha256 {got}, the manifest says {want}", p.display()))
        .collect()
}

/// Problems of the export outputs in `out` (`np/`, `k.csv`, `k.parquet`): each must be
/// whole or absent; `rows` is what a whole CSV holds.
pub fn outputs_whole_or_absent(out: &Path, rows: usize) -> Vec<String> {
    let mut problems = numpy_tree(&out.join("np")).partial;
    let csv = out.join("k.csv");
    if csv.exists()
        && let Err(e) = csv_whole(&csv, rows)
    {
        problems.push(format!("{}: {e}", csv.display()));
    }
    let pq = out.join("k.parquet");
    if pq.exists()
        && let Err(e) = parquet_whole(&pq)
    {
        problems.push(format!("{}: {e}", pq.display()));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(shape: &str, descr: &str, data: usize) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({shape}), }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend(std::iter::repeat_n(0u8, data));
        b
    }

    #[test]
    fn whole_and_cut_files_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("1m/cls")).unwrap();
        fs::write(root.join("1m/cls/a.npy"), npy("2, 3", "<f8", 48)).unwrap();
        fs::write(root.join("1m/cls/s.npy"), npy("2,", "<U7", 56)).unwrap();
        assert!(numpy_tree(root).partial.is_empty());
        fs::write(root.join("1m/cls/b.npy"), npy("2, 3", "<f8", 40)).unwrap();
        fs::write(root.join("1m/cls/.b.npy.tmp-1-0"), b"x").unwrap();
        let t = numpy_tree(root);
        assert_eq!((t.partial.len(), t.temps, t.npy), (1, 1, 3), "{t:?}");
        assert_eq!(temp_files(root).len(), 1);

        fs::write(root.join("k.csv"), "symbol,timestamp,x\nA,1,2\nA,2,3\n").unwrap();
        assert!(csv_whole(&root.join("k.csv"), 2).is_ok());
        assert!(csv_whole(&root.join("k.csv"), 3).is_err());
        fs::write(root.join("c.csv"), "symbol,timestamp,x\nA,1,2\nA,2").unwrap();
        assert!(csv_whole(&root.join("c.csv"), 2).is_err());
        fs::write(root.join("k.parquet"), b"PAR1....PAR1").unwrap();
        assert!(parquet_whole(&root.join("k.parquet")).is_ok());
        fs::write(root.join("k.parquet"), b"PAR1........").unwrap();
        assert!(parquet_whole(&root.join("k.parquet")).is_err());
    }

    #[test]
    fn a_manifest_must_match_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("1m/cls")).unwrap();
        let data = npy("1,", "<f8", 8);
        fs::write(root.join("1m/cls/a.npy"), &data).unwrap();
        let manifest = |bytes: usize| {
            format!(
                "{{\"status\": \"ok\", \"files\": [{{\"path\": \"1m/cls/a.npy\", \"bytes\": {bytes}}}]}}"
            )
        };
        fs::write(root.join("manifest.json"), manifest(data.len())).unwrap();
        let t = numpy_tree(root);
        assert!(t.manifest && t.partial.is_empty(), "{t:?}");
        fs::write(root.join("manifest.json"), manifest(data.len() + 1)).unwrap();
        assert_eq!(numpy_tree(root).partial.len(), 1);
        if Command::new("sha256sum").arg("--version").output().is_ok() {
            let wrong = format!(
                "{{\"status\": \"ok\", \"files\": [{{\"path\": \"1m/cls/a.npy\", \"bytes\": {}, \"sha256\": \"{}\"}}]}}",
                data.len(),
                "0".repeat(64)
            );
            fs::write(root.join("manifest.json"), wrong).unwrap();
            let t = numpy_tree(root);
            assert_eq!(t.partial.len(), 1, "{t:?}");
            assert!(t.partial[0].contains("sha256"), "{t:?}");
        }
        fs::remove_file(root.join("1m/cls/a.npy")).unwrap();
        fs::write(root.join("manifest.json"), manifest(data.len())).unwrap();
        assert_eq!(numpy_tree(root).partial.len(), 1);
    }
}
