//! Publication: what engines read, what is rewritten, what a reader sees while an export
//! runs, one export at a time, and the scope rule.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use marketdb_dataset::{
    DatasetLocation, DatasetRequest, DatasetState, LOCK_PATH, LockHolder, STATE_PATH,
};
use marketdb_model::Freq;
use serde_json::json;

use super::fixture::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_pyarrow_and_pyspark_read_the_dataset_as_the_database_holds_it() {
    let tmp = tempfile::tempdir().unwrap();
    let db = open_db(tmp.path()).await;
    dataset_fixture(&db).await;
    let out = tmp.path().join("dataset");
    let report = marketdb_dataset::export_dataset(&db, &out, &DatasetRequest::default())
        .await
        .unwrap();
    assert_eq!(report.written, DATASET_KEYS);
    assert_eq!(report.rows, FIXTURE_KLINES + 18 + 2 * 576 + 2 * 576);
    let script = r#"
import sqlite3, duckdb
import pyarrow.dataset as ds
root, dbpath = INPUT["root"], INPUT["db"]
sq = sqlite3.connect(dbpath)
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
out = {}
LEGACY = {"account": "toptrader_account", "position": "toptrader_position",
          "global": "global_account", "taker": "taker_vol"}
tables = {
    "klines": ("market_data", ["symbol", "timestamp", "freq", "open_price", "high_price",
        "low_price", "close_price", "volume", "quote_volume", "trades_count",
        "taker_buy_volume", "taker_buy_quote_volume", "taker_sell_volume",
        "taker_sell_quote_volume"], "freq, symbol, timestamp"),
    "funding_rate": ("funding_rate", ["symbol", "timestamp", "funding_rate", "funding_time",
        "mark_price", "index_price"], "symbol, timestamp"),
    "open_interest": ("open_interest", ["symbol", "timestamp", "interval", "open_interest",
        "open_interest_value"], "symbol, timestamp, interval"),
    "long_short_ratio": ("long_short_ratio", ["symbol", "timestamp", "period", "ratio_type",
        "long_short_ratio", "long_account", "short_account"],
        "symbol, timestamp, period, ratio_type"),
}
for kind, (table, cols, order) in tables.items():
    glob_ = f"{root}/{kind}/**/*.parquet"
    sel = ", ".join("epoch_ms(timestamp) AS timestamp" if c == "timestamp" else c for c in cols)
    # The month interval's partition value is 1mo (case-safe); the stored freq is 1M.
    sel = sel.replace("freq,", "CASE WHEN freq = '1mo' THEN '1M' ELSE freq END AS freq,")
    got = con.execute(f"SELECT {sel} FROM read_parquet('{glob_}', hive_partitioning = true) ORDER BY {order}").fetchall()
    want = sq.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}").fetchall()
    if kind == "long_short_ratio":
        want = sorted([tuple(LEGACY.get(v, v) if i == 3 else v for i, v in enumerate(r)) for r in want],
                      key=lambda r: (r[0], r[1], r[2], r[3]))
        got = sorted(got, key=lambda r: (r[0], r[1], r[2], r[3]))
    out[kind + "_rows"] = len(got)
    out[kind + "_equal"] = [tuple(r) for r in got] == [tuple(r) for r in want]
    if not out[kind + "_equal"]:
        diff = [(a, b) for a, b in zip(got, want) if tuple(a) != tuple(b)][:3]
        out[kind + "_diff"] = repr(diff)
types = {r[0]: r[1] for r in con.execute(
    f"DESCRIBE SELECT * FROM read_parquet('{root}/klines/**/*.parquet', hive_partitioning = true)").fetchall()}
out["types"] = types
d = ds.dataset(f"{root}/klines", format="parquet", partitioning="hive")
out["pyarrow_rows"] = d.count_rows()
out["fragments_all"] = len(list(d.get_fragments()))
import datetime
import pyarrow as pa
date_type = d.schema.field("date").type
day = pa.scalar(datetime.date(2024, 1, 2)) if pa.types.is_date(date_type) else pa.scalar("2024-01-02")
frags = list(d.get_fragments(filter=(ds.field("freq") == "1m") & (ds.field("date") == day)))
out["fragments_day"] = [f.path.split("/klines/")[1] for f in frags]
f = frags[0]
out["row_groups"] = f.num_row_groups
out["row_groups_for_symbol"] = len(f.split_by_row_group(ds.field("symbol") == "S005USDT"))
t = d.to_table(filter=(ds.field("symbol") == "S005USDT") & (ds.field("freq") == "1m"))
out["symbol_rows"] = t.num_rows
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]").appName("marketdb")
         .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC")
         .getOrCreate())
k = spark.read.parquet(f"{root}/klines")
out["spark_klines"] = k.count()
out["spark_freqs"] = sorted(r[0] for r in k.select("freq").distinct().collect())
out["spark_s005_1m"] = k.filter("symbol = 'S005USDT' AND freq = '1m'").count()
out["spark_funding"] = spark.read.parquet(f"{root}/funding_rate").count()
spark.stop()
print(json.dumps(out))
"#;
    let input = json!({"root": out, "db": tmp.path().join("market.db")});
    let Some(v) = run_python(script, &input) else {
        return;
    };
    for kind in [
        "klines",
        "funding_rate",
        "open_interest",
        "long_short_ratio",
    ] {
        assert_eq!(v[format!("{kind}_equal")], true, "{kind}: {v}");
    }
    assert_eq!(v["klines_rows"], FIXTURE_KLINES);
    assert_eq!(v["long_short_ratio_rows"], 2 * 576);
    let types = &v["types"];
    assert_eq!(types["symbol"], "VARCHAR");
    assert_eq!(types["timestamp"], "TIMESTAMP WITH TIME ZONE");
    assert_eq!(types["close_price"], "DOUBLE");
    assert_eq!(types["trades_count"], "BIGINT");
    assert_eq!(types["freq"], "VARCHAR");
    assert_eq!(v["pyarrow_rows"], FIXTURE_KLINES);
    assert_eq!(v["fragments_all"], 5);
    assert_eq!(
        v["fragments_day"],
        json!(["freq=1m/date=2024-01-02/part-0.parquet"]),
        "a filter on freq and date reads one file of five"
    );
    assert!(v["row_groups"].as_u64().unwrap() >= 2, "{v}");
    assert_eq!(
        v["row_groups_for_symbol"], 1,
        "a symbol filter skips row groups"
    );
    assert_eq!(v["symbol_rows"], 2880);
    assert_eq!(v["spark_klines"], FIXTURE_KLINES, "{v}");
    assert_eq!(v["spark_freqs"], json!(["1h", "1m", "1mo"]), "{v}");
    assert_eq!(v["spark_s005_1m"], 2880);
    assert_eq!(v["spark_funding"], 18);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_what_changed_is_rewritten_and_an_import_reproduces_the_tables() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let out = tmp.path().join("dataset");
    let req = DatasetRequest::default();
    marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    let before = snapshot(&out);

    // Nothing changed: nothing written, the state untouched.
    let again = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert!(
        again.written.is_empty() && again.removed.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.unchanged, DATASET_KEYS.len() as u64);
    assert_eq!(
        again.compared_by_rows, 0,
        "the change record tells every partition unchanged without reading rows"
    );
    assert_eq!(snapshot(&out), before);

    // One symbol-day upserted: exactly that partition is rewritten.
    let mut bar = kline("S003USDT", Freq::M1, day(2) + 600 * 60_000, 3, 2040);
    bar.close = bar.low;
    a.store_data(vec![bar], Freq::M1).await.unwrap();
    let dry = DatasetRequest {
        dry_run: true,
        ..req.clone()
    };
    let planned = marketdb_dataset::export_dataset(&a, &out, &dry)
        .await
        .unwrap();
    assert_eq!(planned.written, ["klines/freq=1m/date=2024-01-02"]);
    assert_eq!(snapshot(&out), before, "a dry run writes nothing");
    let changed = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert_eq!(changed.written, ["klines/freq=1m/date=2024-01-02"]);
    assert_eq!(
        changed.compared_by_rows, 1,
        "only the changed partition is read"
    );
    let after = snapshot(&out);
    for (path, (bytes, mtime)) in &before {
        let (b2, m2) = &after[path];
        if path.starts_with("klines/freq=1m/date=2024-01-02") || path.starts_with("_marketdb") {
            continue;
        }
        assert!(b2 == bytes && m2 == mtime, "{path} was rewritten");
    }

    // Node B imports; its tables then equal A's.
    let b_dir = tempfile::tempdir().unwrap();
    let b = open_db(b_dir.path()).await;
    let imported = marketdb_dataset::import_dataset(&b, &out).await.unwrap();
    assert_eq!(imported.imported, DATASET_KEYS);
    assert!(imported.failed.is_empty(), "{imported:?}");
    assert_eq!(
        dump(&b_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );
    let twice = marketdb_dataset::import_dataset(&b, &out).await.unwrap();
    assert!(twice.imported.is_empty(), "{twice:?}");
    assert_eq!(twice.unchanged, DATASET_KEYS.len() as u64);

    // A deletes a day of 1h bars: the partition goes, and B follows.
    a.delete_range(
        &strings(&["S000USDT", "S001USDT", "S002USDT"]),
        days(1, 1),
        Freq::H1,
    )
    .await
    .unwrap();
    let third = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert_eq!(third.removed, ["klines/freq=1h/date=2024-01-01"]);
    assert!(!out.join("klines/freq=1h/date=2024-01-01").exists());
    let synced = marketdb_dataset::import_dataset(&b, &out).await.unwrap();
    assert_eq!(synced.removed, ["klines/freq=1h/date=2024-01-01"]);
    assert_eq!(synced.counts["klines"].deleted, 3 * 24);
    assert_eq!(
        dump(&b_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_narrower_reexport_is_refused_and_a_wider_one_extends_the_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    store_bars(&a, &["BTCUSDT", "ETHUSDT"], Freq::H1, day(1), 48, |_, _| {
        false
    })
    .await;
    let out = tmp.path().join("lake");
    let only = |s: &[&str]| DatasetRequest {
        symbols: strings(s),
        ..DatasetRequest::default()
    };
    marketdb_dataset::export_dataset(&a, &out, &only(&["BTCUSDT", "ETHUSDT"]))
        .await
        .unwrap();
    let before = snapshot(&out);
    let err = marketdb_dataset::export_dataset(&a, &out, &only(&["BTCUSDT"]))
        .await
        .unwrap_err();
    let msg = error_chain(&err);
    assert!(
        msg.contains("covers 2 symbol(s): BTCUSDT, ETHUSDT"),
        "{msg}"
    );
    assert_eq!(snapshot(&out), before, "a refused export writes nothing");
    // Imported elsewhere, the dataset still brings both symbols.
    let c_dir = tempfile::tempdir().unwrap();
    let c = open_db(c_dir.path()).await;
    marketdb_dataset::import_dataset(&c, &out).await.unwrap();
    assert_eq!(
        dump(&c_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );
    // A wider selection extends the scope, and every partition it rewrites covers all.
    store_bars(&a, &["XRPUSDT"], Freq::H1, day(1), 48, |_, _| false).await;
    let wider = marketdb_dataset::export_dataset(&a, &out, &only(&["XRPUSDT"]))
        .await
        .unwrap();
    assert!(wider.scope_extended.is_some(), "{wider:?}");
    let state = DatasetState::load(&out).unwrap().unwrap();
    for (key, p) in &state.partitions {
        assert_eq!(p.symbols, ["BTCUSDT", "ETHUSDT", "XRPUSDT"], "{key}");
    }
    marketdb_dataset::import_dataset(&c, &out).await.unwrap();
    assert_eq!(
        dump(&c_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );
}

/// Every parquet file name under `root` that a globbing reader sees (no hidden name).
fn visible_parquet(root: &Path) -> Vec<String> {
    snapshot_names(root)
        .into_iter()
        .filter(|p| {
            p.ends_with(".parquet") && !p.rsplit('/').next().unwrap_or_default().starts_with('.')
        })
        .collect()
}

fn snapshot_names(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_see_the_old_or_the_new_dataset_while_an_export_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    let names = symbol_names("R", 20);
    let syms: Vec<&str> = names.iter().map(String::as_str).collect();
    store_bars(&a, &syms, Freq::M1, day(1), 8 * 1440, |_, _| false).await;
    let out = tmp.path().join("lake");
    let req = DatasetRequest::default();
    marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    let old_keys: Vec<String> = DatasetState::load(&out)
        .unwrap()
        .unwrap()
        .partitions
        .into_keys()
        .collect();
    // The next export rewrites every day and removes the first three.
    a.delete_range(&names, days(1, 3), Freq::M1).await.unwrap();
    let mut bars = Vec::new();
    for (s, sym) in syms.iter().enumerate() {
        for d in 4..=8 {
            bars.push(kline(sym, Freq::M1, day(d) + 60_000, s as u64, 7777));
        }
    }
    a.store_data(bars, Freq::M1).await.unwrap();

    let done = Arc::new(AtomicBool::new(false));
    let (root, flag) = (out.clone(), Arc::clone(&done));
    let reader = std::thread::spawn(move || {
        let mut looks = 0u64;
        let mut problems = Vec::new();
        while !flag.load(Ordering::SeqCst) || looks == 0 {
            looks += 1;
            // Through the state: every file it lists is there (a reader that finds one
            // gone reads the state again: it has moved on, and lists it no more).
            if let Ok(Some(state)) = DatasetState::load(&root) {
                for key in state.partitions.keys() {
                    let file = root.join(key).join("part-0.parquet");
                    if !file.is_file() {
                        let now = DatasetState::load(&root).ok().flatten();
                        if now.is_some_and(|n| n.partitions.contains_key(key)) {
                            problems.push(format!("the state lists {key}, whose file is missing"));
                        }
                    }
                }
            }
            // By glob: never two files of one partition.
            let mut seen = std::collections::HashSet::new();
            for f in visible_parquet(&root) {
                let folder = f
                    .rsplit_once('/')
                    .map(|(d, _)| d.to_owned())
                    .unwrap_or_default();
                if !seen.insert(folder.clone()) {
                    problems.push(format!("two files in {folder}"));
                }
            }
        }
        (looks, problems)
    });
    let report = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    done.store(true, Ordering::SeqCst);
    let (looks, problems) = reader.join().unwrap();
    assert!(problems.is_empty(), "{looks} looks: {problems:?}");
    assert_eq!(report.removed.len(), 3, "{report:?}");
    assert_eq!(report.written.len(), 5, "{report:?}");
    let new_keys: Vec<String> = DatasetState::load(&out)
        .unwrap()
        .unwrap()
        .partitions
        .into_keys()
        .collect();
    assert_eq!(new_keys, old_keys[3..]);
    assert!(looks > 1, "the reader looked while the export ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_export_at_a_time_and_a_lock_left_behind_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    store_bars(&a, &["BTCUSDT"], Freq::H1, day(1), 24, |_, _| false).await;
    let out = tmp.path().join("lake");
    let req = DatasetRequest::default();
    marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert!(!out.join(LOCK_PATH).exists(), "released");
    let host = fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned());
    let lock = |pid: u32| {
        let holder = LockHolder {
            host: host.clone(),
            pid,
            started_ms: 0,
            tool: "marketdb".into(),
        };
        fs::write(out.join(LOCK_PATH), serde_json::to_vec(&holder).unwrap()).unwrap();
    };
    // A live export holds it (this very process): the second is refused, writes nothing.
    lock(std::process::id());
    store_bars(&a, &["BTCUSDT"], Freq::H1, day(2), 24, |_, _| false).await;
    let state_before = fs::read(out.join(STATE_PATH)).unwrap();
    let err = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap_err();
    let msg = error_chain(&err);
    assert!(msg.contains("another export is publishing"), "{msg}");
    assert_eq!(fs::read(out.join(STATE_PATH)).unwrap(), state_before);
    // A killed export's lock (its process is gone) is recognised, and broken on request.
    lock(0);
    let err = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap_err();
    let msg = error_chain(&err);
    assert!(
        msg.contains("no longer running") && msg.contains("--break-lock"),
        "{msg}"
    );
    let broke = DatasetRequest {
        break_lock: true,
        ..req.clone()
    };
    let r = marketdb_dataset::export_dataset(&a, &out, &broke)
        .await
        .unwrap();
    assert_eq!(r.written, ["klines/freq=1h/date=2024-01-02"]);
    assert!(!out.join(LOCK_PATH).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_dataset_reads_back_and_its_lock_is_a_conditional_create() {
    let Some(server) = s3_server("lake-bucket") else {
        return;
    };
    let options = s3_options(&server);
    let location = DatasetLocation::parse("s3://lake-bucket/team/lake", &options).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let req = DatasetRequest::default();
    let report = marketdb_dataset::export_dataset_to(&a, &location, &req)
        .await
        .unwrap();
    assert_eq!(report.written, DATASET_KEYS);
    let again = marketdb_dataset::export_dataset_to(&a, &location, &req)
        .await
        .unwrap();
    assert!(again.written.is_empty(), "{again:?}");

    // Node B imports from the bucket and holds what A holds.
    let b_dir = tempfile::tempdir().unwrap();
    let b = open_db(b_dir.path()).await;
    let imported = marketdb_dataset::import_dataset_from(&b, &location)
        .await
        .unwrap();
    assert_eq!(imported.imported, DATASET_KEYS);
    assert_eq!(
        dump(&b_dir.path().join("market.db")),
        dump(&tmp.path().join("market.db"))
    );

    // The lock object: a second export while it exists is refused (the server honours
    // If-None-Match: *, so a racing create fails too).
    let script = r#"
import boto3
s3 = boto3.client("s3", endpoint_url=INPUT["endpoint"], aws_access_key_id="test",
                  aws_secret_access_key="test", region_name="us-east-1")
s3.put_object(Bucket="lake-bucket", Key="team/lake/_marketdb/lock",
              Body=b'{"host":"elsewhere","pid":1,"started_ms":0,"tool":"marketdb"}')
try:
    s3.put_object(Bucket="lake-bucket", Key="team/lake/_marketdb/lock", Body=b"x",
                  IfNoneMatch="*")
    second = "created"
except Exception as e:
    second = type(e).__name__ + ": " + str(e)
print(json.dumps({"second": second}))
"#;
    let Some(v) = run_python(script, &json!({"endpoint": server.endpoint})) else {
        return;
    };
    assert!(
        v["second"].as_str().unwrap().contains("PreconditionFailed"),
        "{v}"
    );
    let err = marketdb_dataset::export_dataset_to(&a, &location, &req)
        .await
        .unwrap_err();
    let msg = error_chain(&err);
    assert!(
        msg.contains("another export is publishing") && msg.contains("elsewhere"),
        "{msg}"
    );
    let broke = DatasetRequest {
        break_lock: true,
        ..req
    };
    marketdb_dataset::export_dataset_to(&a, &location, &broke)
        .await
        .unwrap();

    // pyarrow's own S3 client reads the published tables.
    let script = r#"
import pyarrow.dataset as ds
from pyarrow import fs
s3 = fs.S3FileSystem(endpoint_override=INPUT["endpoint"], scheme="http", access_key="test",
                     secret_key="test", region="us-east-1")
out = {}
for kind in ["klines", "funding_rate", "open_interest", "long_short_ratio"]:
    d = ds.dataset(f"lake-bucket/team/lake/{kind}", filesystem=s3, format="parquet",
                   partitioning="hive")
    out[kind] = d.count_rows()
print(json.dumps(out))
"#;
    let Some(v) = run_python(script, &json!({"endpoint": server.endpoint})) else {
        return;
    };
    assert_eq!(v["klines"], FIXTURE_KLINES, "{v}");
    assert_eq!(v["funding_rate"], 18);
    assert_eq!(v["open_interest"], 2 * 576);
    assert_eq!(v["long_short_ratio"], 2 * 576);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_another_program_changed_is_found_and_republished() {
    let tmp = tempfile::tempdir().unwrap();
    let a = open_db(tmp.path()).await;
    dataset_fixture(&a).await;
    let out = tmp.path().join("dataset");
    let req = DatasetRequest::default();
    marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    // Another program (the sqlite3 shell, cryptoservice) changes one value of one day.
    let c = rusqlite::Connection::open(tmp.path().join("market.db")).unwrap();
    let n = c
        .execute(
            "UPDATE market_data SET close_price = low_price WHERE symbol = 'S003USDT' \
             AND freq = '1m' AND timestamp = ?1",
            [day(2) + 60_000],
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(c);
    let r = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert_eq!(r.written, ["klines/freq=1m/date=2024-01-02"]);
    assert_eq!(r.compared_by_rows, 1, "{r:?}");
    assert!(!r.no_change_record);
    // Still stale (a read settles nothing): the same partition is compared again, and
    // found unchanged now.
    let r = marketdb_dataset::export_dataset(&a, &out, &req)
        .await
        .unwrap();
    assert!(r.written.is_empty(), "{r:?}");
    assert_eq!(r.compared_by_rows, 1);
    a.close().await;
}
