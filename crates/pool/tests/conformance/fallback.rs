//! Backend choice: Auto falls back (and says why) only on pool-layer failures; database and
//! file-system errors surface unchanged with every backend choice.

use std::path::Path;

use marketdb_pool::{Backend, Error, PoolConfig, PoolKind, PoolManager};
use rusqlite::ErrorCode;

use super::{Logs, Setup, count, create_table};

#[tokio::test]
async fn auto_falls_back_and_logs_why() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fallback.db");
    let mut config = Setup::Bb8.config(&path);
    config.backend = Backend::Auto;
    config.faults.fail_primary = Some("simulated bb8 outage 42".to_owned());
    let pool = PoolManager::open(config).await.unwrap();
    assert_eq!(pool.kind(), PoolKind::Builtin);

    let cause = logs
        .line_with("simulated bb8 outage 42")
        .expect("cause logged");
    assert!(
        cause.contains("WARN") && cause.contains("bb8 pool failed"),
        "{cause}"
    );
    let fallback = logs
        .line_with("falling back to built-in pool")
        .expect("fallback logged");
    assert!(fallback.contains("WARN"), "{fallback}");
    assert!(
        logs.line_with("using built-in pool").is_some(),
        "{}",
        logs.text()
    );
    let init = format!("pool initialised: {}", path.display());
    assert!(logs.line_with(&init).is_some(), "{}", logs.text());

    create_table(&pool).await;
    assert_eq!(pool.read(count).await.unwrap(), 0);
    pool.close().await;
}

#[tokio::test]
async fn auto_uses_bb8_when_it_works() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Setup::Bb8.config(dir.path().join("auto.db"));
    config.backend = Backend::Auto;
    let pool = PoolManager::open(config).await.unwrap();
    assert_eq!(pool.kind(), PoolKind::Bb8);
    assert!(
        logs.line_with("using bb8 pool").is_some(),
        "{}",
        logs.text()
    );
    assert!(logs.line_with("falling back").is_none(), "{}", logs.text());
    pool.close().await;
}

#[tokio::test]
async fn bb8_only_fails_instead_of_falling_back() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Setup::Bb8.config(dir.path().join("strict.db"));
    config.faults.fail_primary = Some("simulated bb8 outage 7".to_owned());
    let err = PoolManager::open(config).await.unwrap_err();
    assert!(
        matches!(&err, Error::PoolInit { backend: PoolKind::Bb8, reason } if reason == "simulated bb8 outage 7"),
        "{err}"
    );
    assert!(err.is_pool_layer());
    assert!(logs.line_with("falling back").is_none(), "{}", logs.text());
}

#[tokio::test]
async fn a_stalled_primary_times_out_and_falls_back() {
    let (logs, _guard) = Logs::capture();
    let dir = tempfile::tempdir().unwrap();
    let mut config = Setup::Bb8.config(dir.path().join("stall.db"));
    config.backend = Backend::Auto;
    config.init_timeout = std::time::Duration::from_millis(300);
    config.faults.stall_primary = Some(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let pool = PoolManager::open(config.clone()).await.unwrap();
    assert_eq!(pool.kind(), PoolKind::Builtin);
    let cause = logs.line_with("timed out after").expect("cause logged");
    assert!(cause.contains("bb8 pool failed"), "{cause}");
    assert!(logs.line_with("falling back").is_some(), "{}", logs.text());
    create_table(&pool).await;
    pool.close().await;
    eprintln!("stalled primary replaced after {:?}", started.elapsed());
    // bb8 alone reports the same as a pool-layer error.
    config.backend = Backend::Bb8;
    let err = PoolManager::open(config.clone()).await.unwrap_err();
    assert!(err.is_pool_layer(), "{err}");
    // The built-in pool has the same deadline.
    config.backend = Backend::Builtin;
    config.faults.stall_primary = None;
    config.faults.stall_builtin = Some(std::time::Duration::from_secs(2));
    let err = PoolManager::open(config).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::PoolInit {
                backend: PoolKind::Builtin,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("timed out after 300ms"), "{err}");
}

// ---------------------------------------------------------------- database errors are not masked

const ALL_BACKENDS: [Setup; 3] = [Setup::Bb8, Setup::Builtin, Setup::Fallback];

/// Opens `path` with every backend choice (Auto too), expecting a database-side error.
async fn open_fails_everywhere(path: &Path) -> Vec<Error> {
    let mut errors = Vec::new();
    let mut configs: Vec<PoolConfig> = ALL_BACKENDS.iter().map(|s| s.config(path)).collect();
    configs.push(PoolConfig::new(path)); // plain Auto
    for config in configs {
        let (logs, guard) = Logs::capture();
        let backend = config.backend;
        let err = match PoolManager::open(config).await {
            Ok(_pool) => panic!("{backend} opened {}", path.display()),
            Err(err) => err,
        };
        drop(guard);
        assert!(!err.is_pool_layer(), "{backend}: {err}");
        assert!(
            logs.line_with("falling back").is_none(),
            "{backend}: {}",
            logs.text()
        );
        errors.push(err);
    }
    errors
}

#[tokio::test]
async fn a_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a-directory");
    std::fs::create_dir(&path).unwrap();
    for err in open_fails_everywhere(&path).await {
        assert!(
            matches!(&err, Error::Open { path: p, .. } if p == &path),
            "{err}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(err.sqlite_code(), Some(ErrorCode::CannotOpen), "{err}");
    }
}

#[tokio::test]
async fn a_non_sqlite_file_is_not_a_database_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let garbage: Vec<u8> = (0..8192_u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&path, &garbage).unwrap();
    for err in open_fails_everywhere(&path).await {
        assert!(
            matches!(&err, Error::NotADatabase { path: p } if p == &path),
            "{err}"
        );
        assert!(
            err.to_string().contains("is not a sqlite database"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[tokio::test]
async fn a_path_under_a_regular_file_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let path = file.join("x.db");
    for err in open_fails_everywhere(&path).await {
        assert!(
            matches!(&err, Error::Io { path: p, .. } if p == &file),
            "{err}"
        );
        assert!(
            err.to_string().contains(&file.display().to_string()),
            "{err}"
        );
    }
}

#[tokio::test]
async fn a_permission_denied_location_is_a_database_error_not_a_fallback() {
    // sysfs refuses new files even to root, so this is a real EACCES on any Linux machine.
    let path = std::path::PathBuf::from("/sys/marketdb-permission-test.db");
    if !Path::new("/sys").is_dir() {
        return; // not Linux: nothing to test here
    }
    for err in open_fails_everywhere(&path).await {
        assert!(
            matches!(err, Error::Open { .. } | Error::Io { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("/sys/marketdb-permission-test.db"), "{text}");
    }
    assert!(!path.exists());
}
