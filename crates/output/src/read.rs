//! Reading inputs safely: [`open_regular`] opens a file for reading without ever blocking on
//! a FIFO (the open is non-blocking) and refuses anything that is not a regular file once
//! opened, so a FIFO, a device or a socket planted among inputs is named at once instead of
//! hanging the reader.

use std::{fs::File, path::Path};

use crate::{Error, Result};

/// `O_NONBLOCK` (Linux): a FIFO opens at once instead of waiting for a writer; it has no
/// effect on regular files.
#[cfg(target_os = "linux")]
const O_NONBLOCK: i32 = 0o4000;

/// Opens `path` for reading; an error unless it is a regular file (symlinks are followed).
pub fn open_regular(path: &Path) -> Result<File> {
    let mut options = File::options();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        // Elsewhere, look before opening (a FIFO would block the open).
        let m = std::fs::metadata(path).map_err(|e| Error::io("open", path, e))?;
        if !m.is_file() {
            return Err(Error::NotRegular {
                path: path.to_path_buf(),
                kind: crate::gate::kind(&m),
            });
        }
    }
    let file = options.open(path).map_err(|e| Error::io("open", path, e))?;
    let m = file.metadata().map_err(|e| Error::io("inspect", path, e))?;
    if !m.is_file() {
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            kind: crate::gate::kind(&m),
        });
    }
    Ok(file)
}

/// The whole content of the regular file `path`, at most `max` bytes (an error beyond);
/// `Ok(None)` when there is no file.
pub fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match open_regular(path) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > max {
        return Err(Error::io(
            "read",
            path,
            std::io::Error::other(format!("larger than {max} bytes")),
        ));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn regular_files_open_and_others_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("a.parquet");
        std::fs::write(&plain, b"PAR1").unwrap();
        let mut text = String::new();
        open_regular(&plain)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "PAR1");
        let err = open_regular(dir.path()).unwrap_err();
        assert!(err.to_string().contains("a folder"), "{err}");
        #[cfg(unix)]
        {
            let err = open_regular(Path::new("/dev/null")).unwrap_err();
            assert!(err.to_string().contains("character device"), "{err}");
        }
        #[cfg(target_os = "linux")]
        {
            let fifo = dir.path().join("b.parquet");
            let made = std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .is_ok_and(|s| s.success());
            assert!(made, "mkfifo");
            // Without the non-blocking open this would wait for a writer forever.
            let err = open_regular(&fifo).unwrap_err();
            assert!(err.to_string().contains("a FIFO"), "{err}");
        }
    }
}
