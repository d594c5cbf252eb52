//! The pipelined ingest (the next files are parsed while the writer stores the current one)
//! against the one-file-at-a-time ingest: same stored rows, each file all or nothing, and
//! the report in file order, with bad files placed where a pipeline could mix them up.

use std::path::Path;

use super::{JAN1, dump_all, json, kline_line, marketdb, ok};

/// Writes one daily Binance Vision kline file; `bad_line` (1-based) is replaced by a line
/// whose high is below its low.
fn write_day(
    dir: &Path,
    symbol: &str,
    freq: &str,
    step_ms: i64,
    rows: usize,
    bad_line: Option<usize>,
) {
    let mut text = String::with_capacity(rows * 90);
    for i in 0..rows {
        let open = JAN1 + i as i64 * step_ms;
        if bad_line == Some(i + 1) {
            text.push_str(&format!(
                "{open},100,90,110,100,1,{},1,1,1,1,0",
                open + step_ms - 1
            ));
        } else {
            text.push_str(&kline_line(open, step_ms, i, false));
        }
        text.push('\n');
    }
    std::fs::write(dir.join(format!("{symbol}-{freq}-2024-01-01.csv")), text).unwrap();
}

#[test]
fn pipelined_ingest_keeps_each_file_whole_and_the_report_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let vision = dir.path().join("vision");
    std::fs::create_dir_all(&vision).unwrap();
    // Two 1s files are longer than one parser chunk (50,000 rows): the first chunk of the
    // bad one reaches the writer before its parser meets the bad line.
    let mut expect_ok = Vec::new();
    for f in 0..14 {
        let symbol = format!("P{f:02}USDT");
        let (freq, step, rows) = if f == 3 || f == 9 {
            ("1s", 1_000, 86_400)
        } else {
            ("1m", 60_000, 1_440)
        };
        let bad = match f {
            3 => Some(70_001),
            6 => Some(5),
            11 => Some(rows),
            _ => None,
        };
        write_day(&vision, &symbol, freq, step, rows, bad);
        expect_ok.push((format!("{symbol}-{freq}-2024-01-01.csv"), bad.is_none()));
    }

    let o = marketdb(dir.path(), &["--json", "ingest", "vision", "-q"]);
    assert_eq!(o.status.code(), Some(1), "bad files make the exit code 1");
    let report = json(&o);
    let files: Vec<(String, bool)> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let name = Path::new(f["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, f["ok"].as_bool().unwrap())
        })
        .collect();
    assert_eq!(files, expect_ok, "one entry per file, in file order");
    assert_eq!(report["failed"], 3);
    assert_eq!(report["rows"], 10 * 1_440 + 86_400);
    let errors: Vec<&str> = report["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["error"].as_str())
        .collect();
    for (e, needle) in errors.iter().zip([
        "P03USDT-1s-2024-01-01.csv:70001",
        "P06USDT-1m-2024-01-01.csv:5",
        "P11USDT-1m-2024-01-01.csv:1440",
    ]) {
        assert!(e.contains(needle), "{e:?} does not name {needle}");
    }

    // The oracle: the same files ingested one command at a time, no lookahead possible.
    let single = tempfile::tempdir().unwrap();
    for (name, _) in &expect_ok {
        let o = marketdb(
            single.path(),
            &["ingest", vision.join(name).to_str().unwrap(), "-q"],
        );
        assert!(o.status.code() == Some(0) || o.status.code() == Some(1));
    }
    let piped = dump_all(&dir.path().join("data/market.db"));
    let one_by_one = dump_all(&single.path().join("data/market.db"));
    assert_eq!(piped.len(), 10 * 1_440 + 86_400);
    assert!(
        piped == one_by_one,
        "pipelined and one-by-one ingest stored different rows"
    );
    for bad in ["P03USDT", "P06USDT", "P11USDT"] {
        assert!(
            !piped.iter().any(|row| row.contains(bad)),
            "{bad}: a failed file left rows"
        );
    }

    // A re-run stores nothing new and reports the same order.
    let again = marketdb(dir.path(), &["--json", "ingest", "vision", "-q"]);
    assert_eq!(json(&again)["files"].as_array().unwrap().len(), 14);
    ok(&marketdb(dir.path(), &["summary"]));
    assert!(dump_all(&dir.path().join("data/market.db")) == piped);
}

/// Funding every 8 hours until 16 January, then every 4 hours: complete when every
/// payment is there; one 4h payment taken out is reported at its time, with the intervals
/// named.
#[test]
fn funding_is_checked_at_each_symbols_own_interval() {
    const HOUR: i64 = 3_600_000;
    let switch = JAN1 + 15 * 24 * HOUR;
    let lost = JAN1 + 19 * 24 * HOUR + 8 * HOUR;
    let write = |dir: &Path, skip: Option<i64>| {
        let mut csv = String::from("calc_time,funding_interval_hours,last_funding_rate\n");
        let mut t = JAN1;
        while t < JAN1 + 31 * 24 * HOUR {
            let hours = if t < switch { 8 } else { 4 };
            if Some(t) != skip {
                // Binance stamps funding a few milliseconds after the hour.
                csv.push_str(&format!("{},{hours},0.0001\n", t + 3));
            }
            t += hours * HOUR;
        }
        std::fs::write(dir.join("BTCUSDT-fundingRate-2024-01.csv"), csv).unwrap();
    };
    for (skip, missing) in [(None, 0), (Some(lost), 1)] {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), skip);
        ok(&marketdb(
            dir.path(),
            &["ingest", "BTCUSDT-fundingRate-2024-01.csv", "-q"],
        ));
        let o = marketdb(
            dir.path(),
            &[
                "--json",
                "check",
                "--kind",
                "funding",
                "--symbols",
                "BTCUSDT",
                "--start",
                "2024-01-03",
                "--end",
                "2024-01-28",
            ],
        );
        ok(&o);
        let s = &json(&o)["symbols"][0];
        assert_eq!(
            s["interval"], "8h, then 4h from 2024-01-16T00:00:00Z",
            "{s}"
        );
        assert_eq!(s["missing"].as_array().unwrap().len(), missing, "{s}");
        // 13 days at 8h, 13 days at 4h.
        assert_eq!(s["expected"], 13 * 3 + 13 * 6, "{s}");
        if missing == 1 {
            assert_eq!(s["missing"][0]["start"], lost, "{s}");
            assert_eq!(s["missing"][0]["count"], 1, "{s}");
            let text = marketdb(
                dir.path(),
                &[
                    "check",
                    "--kind",
                    "funding",
                    "--symbols",
                    "all",
                    "--start",
                    "2024-01-03",
                    "--end",
                    "2024-01-28",
                ],
            );
            ok(&text);
            assert!(
                super::stdout(&text).contains(
                    "BTCUSDT: missing 1 funding payment(s) from 2024-01-20T08:00:00Z to 2024-01-20T08:00:00Z"
                ),
                "{}",
                super::stdout(&text)
            );
        }
    }
}

/// A COIN-M kline file (its header spells the coin columns `base_asset_volume`) is stored by
/// position: contracts in `vol`, coin amounts in `amt`, as docs/formats.md says.
#[test]
fn coin_margined_klines_keep_the_archive_columns() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("BTCUSD_PERP-1h-2024-01-01.csv"),
        "open_time,open,high,low,close,volume,close_time,base_asset_volume,count,taker_buy_volume,taker_buy_base_asset_volume,ignore\n\
         1704067200000,42000.1,42100,41900,42050,12345,1704070799999,29.3857,512,6000,14.2831,0\n",
    )
    .unwrap();
    ok(&marketdb(
        d,
        &["ingest", "BTCUSD_PERP-1h-2024-01-01.csv", "-q"],
    ));
    let o = marketdb(
        d,
        &[
            "--json",
            "query",
            "--symbols",
            "BTCUSD_PERP",
            "--start",
            "2024-01-01",
            "--end",
            "2024-01-01",
            "--freq",
            "1h",
            "--features",
            "cls,vol,amt,tbvol,tbamt,tnum",
        ],
    );
    ok(&o);
    let row = &json(&o)[0];
    assert_eq!(row["vol"], 12345.0, "{row}");
    assert_eq!(row["amt"], 29.3857, "{row}");
    assert_eq!(row["tbvol"], 6000.0, "{row}");
    assert_eq!(row["tbamt"], 14.2831, "{row}");
    assert_eq!(row["tnum"], 512, "{row}");
}
