//! Replication: several sources, a node's own rows, partitions that lie about what they
//! hold, bad partitions among good ones, NULLs, and files that are not files.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use marketdb_dataset::{DatasetRequest, DatasetState, STATE_PATH};
use marketdb_model::Freq;

use super::fixture::*;

async fn export(db: &marketdb_store::AsyncMarketDB, out: &Path) {
    marketdb_dataset::export_dataset(db, out, &DatasetRequest::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sources_and_the_nodes_own_rows_live_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for d in [&a_dir, &b_dir, &c_dir] {
        fs::create_dir_all(d).unwrap();
    }
    let (a, b, c) = (
        open_db(&a_dir).await,
        open_db(&b_dir).await,
        open_db(&c_dir).await,
    );
    // Node A has BTCUSDT, node B ETHUSDT, on the same days; node C its own SOLUSDT.
    store_bars(&a, &["BTCUSDT"], Freq::M1, day(1), 2 * 1440, |_, _| false).await;
    store_bars(&b, &["ETHUSDT"], Freq::M1, day(1), 2 * 1440, |_, _| false).await;
    store_bars(&c, &["SOLUSDT"], Freq::M1, day(1), 2 * 1440, |_, _| false).await;
    let (lake1, lake2) = (tmp.path().join("lake1"), tmp.path().join("lake2"));
    export(&a, &lake1).await;
    export(&b, &lake2).await;
    let own = dump_of(&c_dir.join("market.db"), "SOLUSDT");
    assert_eq!(own.len(), 2 * 1440);

    let first = marketdb_dataset::import_dataset(&c, &lake1).await.unwrap();
    assert_eq!(first.imported.len(), 2);
    assert_eq!(first.counts["klines"].inserted, 2 * 1440);
    let second = marketdb_dataset::import_dataset(&c, &lake2).await.unwrap();
    assert_eq!(second.imported.len(), 2);
    assert_eq!(second.counts["klines"].deleted, 0, "{second:?}");
    for _ in 0..2 {
        for lake in [&lake1, &lake2] {
            let again = marketdb_dataset::import_dataset(&c, lake).await.unwrap();
            assert!(again.imported.is_empty(), "{again:?}");
            assert_eq!(again.unchanged, 2);
        }
    }
    let c_db = c_dir.join("market.db");
    assert_eq!(
        dump_of(&c_db, "BTCUSDT"),
        dump_of(&a_dir.join("market.db"), "BTCUSDT")
    );
    assert_eq!(
        dump_of(&c_db, "ETHUSDT"),
        dump_of(&b_dir.join("market.db"), "ETHUSDT")
    );
    assert_eq!(
        dump_of(&c_db, "SOLUSDT"),
        own,
        "the node's own rows are untouched"
    );

    // C's copy of A's rows changed locally: "unchanged" means C still holds what the
    // partition brought, so the next import restores it.
    let mut bar = kline("BTCUSDT", Freq::M1, day(1) + 60_000, 0, 1);
    bar.close = bar.low;
    c.store_data(vec![bar], Freq::M1).await.unwrap();
    let restore = marketdb_dataset::import_dataset(&c, &lake1).await.unwrap();
    assert_eq!(restore.imported, ["klines/freq=1m/date=2024-01-01"]);
    assert_eq!(restore.counts["klines"].replaced, 1440);
    assert_eq!(
        dump_of(&c_db, "BTCUSDT"),
        dump_of(&a_dir.join("market.db"), "BTCUSDT")
    );

    // A deletes a day of its own: C loses exactly those rows, nothing of B's or its own.
    a.delete_range(&strings(&["BTCUSDT"]), days(2, 2), Freq::M1)
        .await
        .unwrap();
    export(&a, &lake1).await;
    let removed = marketdb_dataset::import_dataset(&c, &lake1).await.unwrap();
    assert_eq!(removed.removed, ["klines/freq=1m/date=2024-01-02"]);
    assert_eq!(removed.counts["klines"].deleted, 1440);
    assert_eq!(
        dump_of(&c_db, "BTCUSDT"),
        dump_of(&a_dir.join("market.db"), "BTCUSDT")
    );
    assert_eq!(dump_of(&c_db, "ETHUSDT").len(), 2 * 1440);
    assert_eq!(dump_of(&c_db, "SOLUSDT"), own);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_two_sources_cover_the_same_rows_the_later_import_wins_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir, c_dir) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("c"),
    );
    for d in [&a_dir, &b_dir, &c_dir] {
        fs::create_dir_all(d).unwrap();
    }
    let (a, b, c) = (
        open_db(&a_dir).await,
        open_db(&b_dir).await,
        open_db(&c_dir).await,
    );
    store_bars(&a, &["BTCUSDT"], Freq::H1, day(1), 24, |_, _| false).await;
    // B's BTCUSDT of the same day differs in one bar.
    store_bars(&b, &["BTCUSDT"], Freq::H1, day(1), 24, |_, i| i == 5).await;
    let (lake1, lake2) = (tmp.path().join("lake1"), tmp.path().join("lake2"));
    export(&a, &lake1).await;
    export(&b, &lake2).await;
    marketdb_dataset::import_dataset(&c, &lake1).await.unwrap();
    let later = marketdb_dataset::import_dataset(&c, &lake2).await.unwrap();
    assert_eq!(later.overlaps.len(), 1, "{later:?}");
    assert!(later.overlaps[0].contains("lake1"), "{later:?}");
    assert_eq!(later.counts["klines"].deleted, 1);
    assert_eq!(dump_of(&c_dir.join("market.db"), "BTCUSDT").len(), 23);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_that_lies_about_its_date_or_symbols_is_refused_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let out = tmp.path().join("lake");
    export(&a, &out).await;
    let state_path = out.join(STATE_PATH);
    let mut state = DatasetState::load(&out).unwrap().unwrap();
    // The 1 Jan 1m partition moved to 5 Jan; the 1h of 2 Jan claims other symbols.
    let moved = state
        .partitions
        .remove("klines/freq=1m/date=2024-01-01")
        .unwrap();
    state
        .partitions
        .insert("klines/freq=1m/date=2024-01-05".into(), moved);
    fs::create_dir_all(out.join("klines/freq=1m/date=2024-01-05")).unwrap();
    fs::rename(
        out.join("klines/freq=1m/date=2024-01-01/part-0.parquet"),
        out.join("klines/freq=1m/date=2024-01-05/part-0.parquet"),
    )
    .unwrap();
    state
        .partitions
        .get_mut("klines/freq=1h/date=2024-01-02")
        .unwrap()
        .symbols = strings(&["ZZZUSDT"]);
    fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();

    let c_dir = tempfile::tempdir().unwrap();
    let c = open_db(c_dir.path()).await;
    // Rows C has of its own on 5 Jan and in the 1h table must survive the refusals.
    store_bars(&c, &["S000USDT"], Freq::M1, day(5), 10, |_, _| false).await;
    store_bars(&c, &["ZZZUSDT"], Freq::H1, day(2), 24, |_, _| false).await;
    let own = dump(&c_dir.path().join("market.db"));
    let report = marketdb_dataset::import_dataset(&c, &out).await.unwrap();
    let failed: Vec<&str> = report.failed.iter().map(|f| f.partition.as_str()).collect();
    assert_eq!(
        failed,
        [
            "klines/freq=1h/date=2024-01-02",
            "klines/freq=1m/date=2024-01-05"
        ],
        "{report:?}"
    );
    let reasons: Vec<&str> = report.failed.iter().map(|f| f.reason.as_str()).collect();
    assert!(
        reasons[0].contains("S000USDT") && reasons[0].contains("covers"),
        "{reasons:?}"
    );
    assert!(
        reasons[1].contains("outside the partition's period"),
        "{reasons:?}"
    );
    assert_eq!(report.imported.len(), DATASET_KEYS.len() - 2);
    let after = dump(&c_dir.path().join("market.db"));
    for row in &own {
        assert!(after.contains(row), "C's own row is gone: {row}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_partition_among_ten_is_skipped_and_the_other_nine_are_imported() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let out = tmp.path().join("lake");
    export(&a, &out).await;
    assert_eq!(DATASET_KEYS.len(), 10);
    // A damaged file: half of it.
    let file = out.join("open_interest/date=2024-01-02/part-0.parquet");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let c_dir = tempfile::tempdir().unwrap();
    let c = open_db(c_dir.path()).await;
    let report = marketdb_dataset::import_dataset(&c, &out).await.unwrap();
    assert_eq!(report.imported.len(), 9, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].partition, "open_interest/date=2024-01-02");
    assert!(
        report.failed[0].reason.contains("part-0.parquet"),
        "{report:?}"
    );
    // A state digest the rows do not match: nothing of that partition is stored.
    let mut state = DatasetState::load(&out).unwrap().unwrap();
    state
        .partitions
        .get_mut("klines/freq=1h/date=2024-01-01")
        .unwrap()
        .digest = "0".repeat(64);
    fs::write(out.join(STATE_PATH), serde_json::to_vec(&state).unwrap()).unwrap();
    let d_dir = tempfile::tempdir().unwrap();
    let d = open_db(d_dir.path()).await;
    let report = marketdb_dataset::import_dataset(&d, &out).await.unwrap();
    let failed: Vec<&str> = report.failed.iter().map(|f| f.partition.as_str()).collect();
    assert_eq!(
        failed,
        [
            "klines/freq=1h/date=2024-01-01",
            "open_interest/date=2024-01-02"
        ]
    );
    assert!(
        report.failed[0].reason.contains("do not match the digest"),
        "{report:?}"
    );
    assert!(
        !dump(&d_dir.path().join("market.db"))
            .iter()
            .any(|r| r.contains("Text(\"1h\")") && r.contains("Integer(1704067200000)")),
        "nothing of the refused partition is stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nulls_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    store_bars(&a, &["BTCUSDT"], Freq::H1, day(1), 24, |_, _| false).await;
    a.store_funding_rate(vec![marketdb_model::FundingRate {
        symbol: "BTCUSDT".into(),
        funding_time: day(1),
        funding_rate: 0.0001,
        mark_price: None,
        index_price: None,
    }])
    .await
    .unwrap();
    drop(a);
    // Another program (the Python original, say) stored NULLs marketdb's own writes refuse.
    let conn = rusqlite::Connection::open(tmp.path().join("market.db")).unwrap();
    conn.execute_batch(
        "UPDATE market_data SET close_price = NULL WHERE timestamp = 1704078000000;
         UPDATE funding_rate SET funding_rate = NULL;",
    )
    .unwrap();
    drop(conn);
    let a = open_db(tmp.path()).await;
    let out = tmp.path().join("lake");
    export(&a, &out).await;
    let c_dir = tempfile::tempdir().unwrap();
    let c = open_db(c_dir.path()).await;
    let report = marketdb_dataset::import_dataset(&c, &out).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(
        dump(&c_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );
    assert!(
        dump(&c_dir.path().join("market.db"))
            .iter()
            .any(|r| r.contains("Null")),
        "the NULLs are there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_partition_is_refused_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let out = tmp.path().join("lake");
    export(&a, &out).await;
    let file = out.join("klines/freq=1h/date=2024-01-02/part-0.parquet");
    fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let c_dir = tempfile::tempdir().unwrap();
    let c = open_db(c_dir.path()).await;
    let started = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        marketdb_dataset::import_dataset(&c, &out),
    )
    .await
    .expect("an import never waits on a FIFO")
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(report.failed[0].reason.contains("a FIFO"), "{report:?}");
    assert_eq!(report.imported.len(), DATASET_KEYS.len() - 1);
}
