//! Binance `.CHECKSUM` verification. Binance publishes `X.zip.CHECKSUM` beside `X.zip`,
//! holding `<sha256 hex>  X.zip` (the `sha256sum` format). [`verify_checksum`] checks a file
//! against its sibling when there is one; [`sha256_file`] computes the digest by streaming
//! the file in 64 KiB blocks. It does not download checksums or check anything else.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Largest `.CHECKSUM` file read (a real one is about 100 bytes).
const MAX_CHECKSUM_FILE: u64 = 4096;

/// The sibling checksum path of `path`: the same name with `.CHECKSUM` appended.
pub fn checksum_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".CHECKSUM");
    PathBuf::from(name)
}

/// The lowercase hex SHA-256 of the file at `path`.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(hex_digest(&hasher.finalize()))
}

/// `bytes` as lowercase hex (how `sha256sum` prints a digest).
pub fn hex_digest(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The lowercase digest a `.CHECKSUM` text gives (`<sha256 hex>  X.zip`), or `None` when
/// it does not start with a 64-digit hex digest.
pub fn parse_checksum(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?.to_ascii_lowercase();
    (first.len() == 64 && first.bytes().all(|b| b.is_ascii_hexdigit())).then_some(first)
}

/// Verifies `path` against its sibling `.CHECKSUM` file. Returns `Ok(false)` when there is
/// no sibling, `Ok(true)` when the digests match, [`Error::ChecksumMismatch`] (naming the
/// file and both digests) when they differ, and [`Error::BadChecksumFile`] when the sibling
/// does not start with a 64-digit hex digest.
pub fn verify_checksum(path: &Path) -> Result<bool> {
    let sidecar = checksum_path(path);
    let text = match std::fs::File::open(&sidecar) {
        Ok(file) => {
            let mut text = String::new();
            file.take(MAX_CHECKSUM_FILE)
                .read_to_string(&mut text)
                .map_err(|e| Error::io(&sidecar, e))?;
            text
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(file = %path.display(), "no checksum file");
            return Ok(false);
        }
        Err(e) => return Err(Error::io(&sidecar, e)),
    };
    let Some(expected) = parse_checksum(&text) else {
        return Err(Error::BadChecksumFile {
            file: sidecar,
            reason: "expected a 64-digit sha256 hex digest followed by the file name".into(),
        });
    };
    if let (Some(listed), Some(actual_name)) = (text.split_whitespace().nth(1), path.file_name()) {
        let listed = listed.trim_start_matches('*');
        if listed != actual_name.to_string_lossy() {
            tracing::debug!(file = %path.display(), listed, "checksum file lists another name");
        }
    }
    let actual = sha256_file(path)?;
    if actual != expected {
        return Err(Error::ChecksumMismatch {
            file: path.to_path_buf(),
            expected,
            actual,
        });
    }
    tracing::debug!(file = %path.display(), "checksum verified");
    Ok(true)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// sha256("abc"), FIPS 180-2 test vector.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn digest_and_sidecar() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("X.zip");
        std::fs::write(&file, b"abc").unwrap();
        assert_eq!(sha256_file(&file).unwrap(), ABC);
        assert_eq!(checksum_path(&file), dir.path().join("X.zip.CHECKSUM"));
        assert!(
            !verify_checksum(&file).unwrap(),
            "no sidecar: nothing verified"
        );
        std::fs::write(
            checksum_path(&file),
            format!("{}  X.zip\n", ABC.to_uppercase()),
        )
        .unwrap();
        assert!(verify_checksum(&file).unwrap());
        std::fs::write(checksum_path(&file), "not-a-digest  X.zip\n").unwrap();
        let err = verify_checksum(&file).unwrap_err().to_string();
        assert!(
            err.contains("X.zip.CHECKSUM") && err.contains("64-digit"),
            "{err}"
        );
        std::fs::write(checksum_path(&file), "").unwrap();
        assert!(matches!(
            verify_checksum(&file),
            Err(Error::BadChecksumFile { .. })
        ));
    }
}
