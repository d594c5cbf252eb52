//! Integration tests of marketdb-store against real SQLite files in temporary folders:
//! round trips (property tests), atomic validation, time-range and whitelist rules, the
//! data summary, completeness, resampling, Python v1.9 files, streaming scans and metrics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::path::Path;

use marketdb_model::time::{DAY_MS, parse_ymd};
use marketdb_model::{
    Feature, Freq, FundingRate, Kline, LongShortRatio, MetricFamily, OpenInterest, RatioType,
    TIME_MAX_MS, TIME_MIN_MS, TimeRange, TimeWindow,
};
use marketdb_store::{
    AsyncMarketDB, Column, Error, IncompletePolicy, KlineFrame, KlineInput, MissingRun,
    SCHEMA_VERSION, ScanChunk, StoreConfig, SymbolRange,
};
use proptest::prelude::*;
use serde_json::json;

const JAN1: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z, a Monday
const H: i64 = 3_600_000;
const M: i64 = 60_000;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn open(dir: &Path) -> AsyncMarketDB {
    let mut config = StoreConfig::new(dir.join("market.db"));
    config.pool.readers = 2;
    AsyncMarketDB::open_with(config).await.unwrap()
}

fn syms(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// A valid bar of `freq` at `t` whose values derive from `seed`.
fn bar(symbol: &str, freq: Freq, t: i64, seed: f64) -> Kline {
    let open = 100.0 + seed;
    let close = 100.0 + seed * 0.5;
    Kline {
        symbol: symbol.to_owned(),
        open_time: t,
        open,
        high: open.max(close) + 2.0,
        low: open.min(close) - 1.0,
        close,
        volume: 10.0 + seed,
        close_time: freq.close_time(t),
        quote_volume: 1000.0 + seed * 3.0,
        trades_count: 7 + seed as i64,
        taker_buy_volume: 4.0 + seed / 2.0,
        taker_buy_quote_volume: 400.0 + seed,
    }
}

/// Bars of `freq` for `symbol` at every open time in `times`.
fn bars(symbol: &str, freq: Freq, times: &[i64]) -> Vec<Kline> {
    times
        .iter()
        .enumerate()
        .map(|(i, t)| bar(symbol, freq, *t, (i % 50) as f64))
        .collect()
}

/// The frame a read of `features` should return for `rows` (any order) in `range`.
fn expected_frame(rows: &[Kline], range: TimeRange) -> KlineFrame {
    let mut rows: Vec<&Kline> = rows
        .iter()
        .filter(|k| range.contains(k.open_time))
        .collect();
    rows.sort_by(|a, b| (&a.symbol, a.open_time).cmp(&(&b.symbol, b.open_time)));
    let (mut symbols, mut timestamp): (Vec<(String, std::ops::Range<usize>)>, Vec<i64>) =
        (Vec::new(), Vec::new());
    let (_, _, features, mut columns) = KlineFrame::empty(&Feature::KLINE).into_parts();
    for (i, k) in rows.iter().enumerate() {
        match symbols.last_mut() {
            Some((s, r)) if *s == k.symbol => r.end = i + 1,
            _ => symbols.push((k.symbol.clone(), i..i + 1)),
        }
        timestamp.push(k.open_time);
        let vals = [
            k.open,
            k.high,
            k.low,
            k.close,
            k.volume,
            k.quote_volume,
            0.0,
            k.taker_buy_volume,
            k.taker_buy_quote_volume,
            k.taker_sell_volume(),
            k.taker_sell_quote_volume(),
        ];
        for (c, v) in columns.iter_mut().zip(vals) {
            match c {
                Column::F64(c) => c.push(v),
                Column::I64(c) => c.push(k.trades_count),
            }
        }
    }
    KlineFrame::new(symbols, timestamp, features, columns).unwrap()
}

fn f64s(frame: &KlineFrame, f: Feature) -> Vec<f64> {
    match frame.column(f).unwrap() {
        Column::F64(v) => v.clone(),
        Column::I64(v) => v.iter().map(|x| *x as f64).collect(),
    }
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("market.db")).unwrap()
}

// ---------------------------------------------------------------------------------------
// Round trips (property tests)

const FREQS: [Freq; 8] = [
    Freq::S1,
    Freq::M1,
    Freq::M15,
    Freq::H1,
    Freq::D1,
    Freq::D3,
    Freq::W1,
    Freq::Mo1,
];

/// (freq, rows valid by construction over 1-3 symbols, a query range inside the data span)
fn dataset() -> impl Strategy<Value = (Freq, Vec<Kline>, TimeRange)> {
    (
        0..FREQS.len(),
        proptest::collection::btree_set("[A-Z][A-Z0-9_]{0,7}", 1..4),
        proptest::collection::vec((0usize..3, 0usize..120, 0.01f64..1e4, 0.0f64..1.0), 1..150),
        0usize..120,
        0usize..121,
        0i64..3,
    )
        .prop_map(|(fi, symbols, raw_rows, a, b, base_day)| {
            let freq = FREQS[fi];
            let symbols: Vec<String> = symbols.into_iter().collect();
            let base = freq.floor(JAN1 + base_day * 17 * DAY_MS);
            let grid: Vec<i64> = freq
                .grid(base, base + 121 * freq.nominal_ms() + 31 * DAY_MS)
                .collect();
            let mut seen = std::collections::HashSet::new();
            let mut rows = Vec::new();
            for (si, gi, price, frac) in raw_rows {
                let symbol = &symbols[si % symbols.len()];
                if !seen.insert((symbol.clone(), gi)) {
                    continue;
                }
                let t = grid[gi];
                let open = price;
                let close = price * (0.5 + frac);
                let volume = price * frac;
                rows.push(Kline {
                    symbol: symbol.clone(),
                    open_time: t,
                    open,
                    high: open.max(close) * (1.0 + frac),
                    low: open.min(close) * (1.0 - frac / 2.0),
                    close,
                    volume,
                    close_time: freq.close_time(t),
                    quote_volume: volume * price,
                    trades_count: (price as i64) % 1000,
                    taker_buy_volume: volume * frac,
                    taker_buy_quote_volume: volume * price * frac,
                });
            }
            let (lo, hi) = (a.min(b), a.max(b));
            let range = TimeRange::new(grid[lo], grid[hi]).unwrap();
            (freq, rows, range)
        })
}

#[test]
fn store_then_read_returns_exactly_what_was_stored() {
    let rt = rt();
    let config = ProptestConfig {
        cases: 24,
        ..ProptestConfig::default()
    };
    proptest!(config, |((freq, rows, range) in dataset(), bad_at in any::<prop::sample::Index>())| {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            // Monthly data runs ten years ahead: widen the plausibility window.
            let mut config = StoreConfig::new(dir.path().join("market.db"));
            config.pool.readers = 2;
            config.time_window = Some(TimeWindow {
                earliest_ms: marketdb_model::EARLIEST_MARKET_MS,
                latest_ms: TIME_MAX_MS,
            });
            let db = AsyncMarketDB::open_with(config).await.unwrap();
            let all = TimeRange::new(TIME_MIN_MS, TIME_MAX_MS).unwrap();

            // An invalid row anywhere fails the whole call, names the row, stores nothing.
            let mut bad = rows.clone();
            let i = bad_at.index(bad.len());
            bad[i].high = bad[i].low - 1.0;
            let err = db.store_data(bad.clone(), freq).await.unwrap_err();
            match &err {
                Error::Invalid(v) => {
                    prop_assert_eq!(&v.symbol, &bad[i].symbol);
                    prop_assert_eq!(v.time, bad[i].open_time);
                }
                other => prop_assert!(false, "unexpected error {other}"),
            }
            prop_assert!(err.to_string().contains(&bad[i].symbol));
            let empty = db.read_data(all, freq, &[], &[], false).await.unwrap();
            prop_assert!(empty.is_empty());

            // Store, then read a sub-range and everything.
            prop_assert_eq!(db.store_data(rows.clone(), freq).await.unwrap(), rows.len());
            let got = db.read_data(range, freq, &[], &[], false).await.unwrap();
            prop_assert_eq!(&got, &expected_frame(&rows, range));
            let everything = db.read_data(all, freq, &[], &[], false).await.unwrap();
            prop_assert_eq!(&everything, &expected_frame(&rows, all));

            // One symbol by name, in lower case (canonicalised before SQL).
            let first = rows[0].symbol.clone();
            let one: Vec<Kline> = rows.iter().filter(|k| k.symbol == first).cloned().collect();
            let got = db
                .read_data(all, freq, &[first.to_lowercase()], &[], false)
                .await
                .unwrap();
            prop_assert_eq!(&got, &expected_frame(&one, all));

            // Re-storing is a no-op.
            let grouped: Vec<Vec<Kline>> = rows.chunks(7).map(|c| c.to_vec()).collect();
            db.store_data(grouped, freq).await.unwrap();
            let again = db.read_data(all, freq, &[], &[], false).await.unwrap();
            prop_assert_eq!(&again, &everything);

            // Changed values replace.
            let changed: Vec<Kline> = rows
                .iter()
                .map(|k| Kline { close: k.low, trades_count: k.trades_count + 1, ..k.clone() })
                .collect();
            db.store_data(changed.clone(), freq).await.unwrap();
            let got = db.read_data(all, freq, &[], &[], false).await.unwrap();
            prop_assert_eq!(&got, &expected_frame(&changed, all));
            db.close().await;
            Ok(())
        })?;
    });
}

// ---------------------------------------------------------------------------------------
// Time ranges, whitelists, injection

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn date_end_includes_the_whole_day_and_bad_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let times: Vec<i64> = (0..48).map(|i| JAN1 + i * H).collect();
    db.store_data(bars("BTCUSDT", Freq::H1, &times), Freq::H1)
        .await
        .unwrap();

    let day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let f = db
        .read_data(day, Freq::H1, &syms(&["BTCUSDT"]), &[], true)
        .await
        .unwrap();
    assert_eq!(f.len(), 24);
    assert_eq!(f.timestamp(), times[..24].to_vec());
    let f = db
        .read_data_by_timestamp(JAN1, JAN1 + 2 * H, Freq::H1, &[], &[Feature::Close], false)
        .await
        .unwrap();
    assert_eq!(f.timestamp(), vec![JAN1, JAN1 + H, JAN1 + 2 * H]);

    assert!(TimeRange::parse("2024-02-01", "2024-01-01").is_err());

    // Features: only whitelisted names parse; metric features are not kline columns.
    assert!(Feature::parse("close_price; DROP TABLE market_data").is_err());
    let err = db
        .read_data(day, Freq::H1, &[], &[Feature::FundingRate], false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidFeature { .. }), "{err}");

    // A hostile symbol is refused before SQL; the table is intact.
    let hostile = syms(&["BTC'; DROP TABLE market_data;--"]);
    let err = db
        .read_data(day, Freq::H1, &hostile, &[], false)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Model(_)), "{err}");
    assert!(err.to_string().contains("invalid symbol"), "{err}");
    assert!(db.count("BTC'--", Freq::H1, None).await.is_err());
    let mut k = bar("BTCUSDT", Freq::H1, JAN1, 1.0);
    k.symbol = hostile[0].clone();
    assert!(matches!(
        db.store_data(vec![k], Freq::H1).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(db.count("BTCUSDT", Freq::H1, None).await.unwrap(), 48);

    // raise_on_empty
    let empty = TimeRange::parse("2023-01-01", "2023-01-02").unwrap();
    let err = db
        .read_data(empty, Freq::H1, &[], &[], true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoData { .. }), "{err}");
    assert!(
        db.read_data(empty, Freq::H1, &[], &[], false)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_reads_refuse_start_after_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let times: Vec<i64> = (0..4).map(|i| JAN1 + i * H).collect();
    db.store_data(bars("BTCUSDT", Freq::H1, &times), Freq::H1)
        .await
        .unwrap();
    // Both bounds are inclusive: start == end is the one bar at that instant...
    let f = db
        .read_data_by_timestamp(JAN1 + H, JAN1 + H, Freq::H1, &[], &[], false)
        .await
        .unwrap();
    assert_eq!(f.timestamp(), vec![JAN1 + H]);
    // ...and start one ms after end (which an exclusive end would take for an empty
    // range) or further is the model's StartAfterEnd, not an empty frame.
    for (start, end) in [(JAN1 + H + 1, JAN1 + H), (JAN1 + 2 * H, JAN1)] {
        let err = db
            .read_data_by_timestamp(start, end, Freq::H1, &[], &[], false)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Model(marketdb_model::Error::StartAfterEnd { .. })
            ),
            "{err}"
        );
        assert!(err.to_string().contains("after"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_features_and_inspection() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let t1: Vec<i64> = (0..3).map(|i| JAN1 + i * DAY_MS).collect();
    let mut rows = bars("ETHUSDT", Freq::D1, &t1);
    rows[1].volume = 0.0;
    rows[1].taker_buy_volume = 0.0;
    rows.extend(bars("BTCUSDT", Freq::D1, &t1[..2]));
    rows.extend(bars("BTCUSDT", Freq::H1, &[JAN1, JAN1 + H]));
    // The 01:00 hourly bar is not a valid daily bar: the whole call is refused.
    assert!(matches!(
        db.store_data(rows.clone(), Freq::D1).await,
        Err(Error::Invalid(_))
    ));
    let (d1, h1): (Vec<Kline>, Vec<Kline>) = rows
        .into_iter()
        .partition(|k| k.close_time - k.open_time > H);
    db.store_data(d1.clone(), Freq::D1).await.unwrap();
    db.store_data(h1, Freq::H1).await.unwrap();

    let all = TimeRange::parse("2024-01-01", "2024-01-31").unwrap();
    let f = db
        .read_data(
            all,
            Freq::D1,
            &syms(&["ETHUSDT"]),
            &[Feature::Vwap, Feature::Ret, Feature::Open],
            false,
        )
        .await
        .unwrap();
    let eth: Vec<&Kline> = d1.iter().filter(|k| k.symbol == "ETHUSDT").collect();
    let vwap = f64s(&f, Feature::Vwap);
    assert_eq!(vwap[0], eth[0].quote_volume / eth[0].volume);
    assert!(vwap[1].is_nan(), "vwap is NaN when volume is 0");
    assert_eq!(
        f64s(&f, Feature::Ret)[2],
        (eth[2].close - eth[2].open) / eth[2].open
    );
    assert_eq!(
        f.features(),
        vec![Feature::Vwap, Feature::Ret, Feature::Open]
    );

    assert_eq!(
        db.get_symbols(None).await.unwrap(),
        syms(&["BTCUSDT", "ETHUSDT"])
    );
    assert_eq!(
        db.get_symbols(Some(Freq::H1)).await.unwrap(),
        syms(&["BTCUSDT"])
    );
    assert_eq!(
        db.get_frequencies("btcusdt").await.unwrap(),
        vec![Freq::H1, Freq::D1]
    );
    assert_eq!(
        db.get_time_range("ETHUSDT", Freq::D1).await.unwrap(),
        Some((JAN1, JAN1 + 2 * DAY_MS))
    );
    assert_eq!(db.get_time_range("ETHUSDT", Freq::H1).await.unwrap(), None);
    assert_eq!(db.count("ETHUSDT", Freq::D1, None).await.unwrap(), 3);
    let r = TimeRange::new(JAN1 + 1, JAN1 + 3 * DAY_MS).unwrap();
    assert_eq!(db.count("ETHUSDT", Freq::D1, Some(r)).await.unwrap(), 2);
    assert!(db.data_exists("ETHUSDT", r, Freq::D1).await.unwrap());
    assert!(!db.data_exists("ETHUSDT", r, Freq::H1).await.unwrap());
    assert_eq!(
        db.get_available_dates("ETHUSDT", Freq::D1).await.unwrap(),
        vec!["2024-01-01", "2024-01-02", "2024-01-03"]
    );
    assert_eq!(
        db.get_available_dates("BTCUSDT", Freq::H1).await.unwrap(),
        vec!["2024-01-01"]
    );
    let latest = db.get_latest(&[], Freq::D1, 2).await.unwrap();
    assert_eq!(
        latest.symbols(),
        vec![("BTCUSDT".to_owned(), 0..2), ("ETHUSDT".to_owned(), 2..4)]
    );
    assert_eq!(
        latest.timestamp(),
        vec![JAN1, JAN1 + DAY_MS, JAN1 + DAY_MS, JAN1 + 2 * DAY_MS]
    );
    assert_eq!(latest.features(), Feature::KLINE.to_vec());

    assert_eq!(
        db.delete_range(&syms(&["ETHUSDT"]), r, Freq::D1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(db.count("ETHUSDT", Freq::D1, None).await.unwrap(), 1);
    db.checkpoint().await.unwrap();
    db.vacuum().await.unwrap();
    assert_eq!(db.integrity_check().await.unwrap(), "ok");
    assert_eq!(db.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(db.count("BTCUSDT", Freq::H1, None).await.unwrap(), 2);
}

// ---------------------------------------------------------------------------------------
// Summary

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_summary_has_the_python_shape() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let empty = serde_json::to_value(db.get_data_summary().await.unwrap()).unwrap();
    assert_eq!(
        empty,
        json!({
            "market_data": [],
            "funding_rate": {"record_count": 0, "unique_symbols": 0,
                             "earliest_timestamp": null, "latest_timestamp": null},
            "open_interest": [],
            "long_short_ratio": [],
        })
    );

    let hours: Vec<i64> = (0..3).map(|i| JAN1 + i * H).collect();
    db.store_data(bars("BTCUSDT", Freq::H1, &hours), Freq::H1)
        .await
        .unwrap();
    db.store_data(bars("ETHUSDT", Freq::H1, &hours[..1]), Freq::H1)
        .await
        .unwrap();
    db.store_data(bars("BTCUSDT", Freq::D1, &[JAN1, JAN1 + DAY_MS]), Freq::D1)
        .await
        .unwrap();
    db.store_funding_rate(vec![
        FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: JAN1,
            funding_rate: 0.0001,
            mark_price: None,
            index_price: None,
        },
        FundingRate {
            symbol: "ETHUSDT".into(),
            funding_time: JAN1 + 8 * H,
            funding_rate: -0.0002,
            mark_price: Some(1.0),
            index_price: Some(0.0),
        },
    ])
    .await
    .unwrap();
    db.store_open_interest(vec![OpenInterest {
        symbol: "BTCUSDT".into(),
        time: JAN1,
        interval: Freq::M5,
        open_interest: 5.0,
        open_interest_value: None,
    }])
    .await
    .unwrap();
    let lsr = |s: &str, t: i64, rt: RatioType| LongShortRatio {
        symbol: s.into(),
        timestamp: t,
        period: Freq::M5,
        ratio_type: rt,
        long_short_ratio: 1.5,
        long_account: None,
        short_account: None,
    };
    db.store_long_short_ratio(vec![
        lsr("BTCUSDT", JAN1, RatioType::TopTraderAccount),
        lsr("ETHUSDT", JAN1 + 5 * M, RatioType::TopTraderAccount),
        lsr("BTCUSDT", JAN1, RatioType::TakerVol),
    ])
    .await
    .unwrap();

    let summary = serde_json::to_value(db.get_data_summary().await.unwrap()).unwrap();
    assert_eq!(
        summary,
        json!({
            "market_data": [
                {"freq": "1d", "record_count": 2, "unique_symbols": 1,
                 "earliest_timestamp": JAN1, "latest_timestamp": JAN1 + DAY_MS,
                 "earliest_date": "2024-01-01", "latest_date": "2024-01-02"},
                {"freq": "1h", "record_count": 4, "unique_symbols": 2,
                 "earliest_timestamp": JAN1, "latest_timestamp": JAN1 + 2 * H,
                 "earliest_date": "2024-01-01", "latest_date": "2024-01-01"},
            ],
            "funding_rate": {"record_count": 2, "unique_symbols": 2,
                             "earliest_timestamp": JAN1, "latest_timestamp": JAN1 + 8 * H},
            "open_interest": [
                {"interval": "5m", "record_count": 1, "unique_symbols": 1,
                 "earliest_timestamp": JAN1, "latest_timestamp": JAN1},
            ],
            // Written with the cryptoservice 1.9 spellings into v1.9 tables.
            "long_short_ratio": [
                {"period": "5m", "ratio_type": "account", "record_count": 2,
                 "unique_symbols": 2, "earliest_timestamp": JAN1,
                 "latest_timestamp": JAN1 + 5 * M},
                {"period": "5m", "ratio_type": "taker", "record_count": 1,
                 "unique_symbols": 1, "earliest_timestamp": JAN1, "latest_timestamp": JAN1},
            ],
        })
    );
}

// ---------------------------------------------------------------------------------------
// Completeness

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_reports_holes_runs_and_suspicious_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // 1m over one day with three holes: 00:10 (1 bar), 05:00-05:29 (30 bars), 23:58-23:59.
    let day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let holes = |t: i64| {
        let m = (t - JAN1) / M;
        m == 10 || (300..330).contains(&m) || m >= 1438
    };
    let times: Vec<i64> = (0..1440)
        .map(|i| JAN1 + i * M)
        .filter(|t| !holes(*t))
        .collect();
    db.store_data(bars("AAAUSDT", Freq::M1, &times), Freq::M1)
        .await
        .unwrap();
    let full: Vec<i64> = (0..1440).map(|i| JAN1 + i * M).collect();
    db.store_data(bars("BBBUSDT", Freq::M1, &full), Freq::M1)
        .await
        .unwrap();

    let report = db.check_completeness(day, Freq::M1, &[]).await.unwrap();
    assert_eq!(report.symbols.len(), 2);
    let a = &report.symbols[0];
    assert_eq!(a.symbol, "AAAUSDT");
    assert_eq!((a.expected, a.present), (1440, 1440 - 33));
    assert_eq!(
        a.missing,
        vec![
            MissingRun {
                start: JAN1 + 10 * M,
                end: JAN1 + 10 * M,
                count: 1
            },
            MissingRun {
                start: JAN1 + 300 * M,
                end: JAN1 + 329 * M,
                count: 30
            },
            MissingRun {
                start: JAN1 + 1438 * M,
                end: JAN1 + 1439 * M,
                count: 2
            },
        ]
    );
    assert!((a.coverage - 1407.0 / 1440.0).abs() < 1e-12);
    assert!(a.suspicious.is_empty());
    let b = &report.symbols[1];
    assert_eq!((b.expected, b.present, b.coverage), (1440, 1440, 1.0));
    assert!(b.missing.is_empty());

    // A symbol with no rows: one run covering everything; an empty range: coverage 1.
    let none = db
        .check_completeness(day, Freq::M1, &syms(&["CCCUSDT"]))
        .await
        .unwrap();
    assert_eq!(
        none.symbols[0].missing,
        vec![MissingRun {
            start: JAN1,
            end: JAN1 + 1439 * M,
            count: 1440
        }]
    );
    assert_eq!(none.symbols[0].coverage, 0.0);
    let nothing = TimeRange::new(JAN1, JAN1).unwrap();
    let r = db
        .check_completeness(nothing, Freq::M1, &syms(&["AAAUSDT"]))
        .await
        .unwrap();
    assert_eq!((r.symbols[0].expected, r.symbols[0].coverage), (0, 1.0));

    // Rows written by another tool: off-grid and inverted high/low.
    {
        let c = raw(dir.path());
        c.execute_batch(&format!(
            "INSERT INTO market_data (symbol, timestamp, freq, open_price, high_price, low_price, \
             close_price, volume, quote_volume, trades_count, taker_buy_volume, \
             taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume) VALUES \
             ('AAAUSDT', {}, '1m', 1, 2, 0.5, 1, 1, 1, 1, 0, 0, 1, 1), \
             ('AAAUSDT', {}, '1m', 1, 0.5, 2, 1, 1, 1, 1, 0, 0, 1, 1)",
            JAN1 + 10 * M + 30_000,
            JAN1 + 300 * M,
        ))
        .unwrap();
    }
    let a = db
        .check_completeness(day, Freq::M1, &syms(&["AAAUSDT"]))
        .await
        .unwrap();
    let a = &a.symbols[0];
    assert_eq!(a.present, 1440 - 32);
    assert_eq!(a.suspicious.len(), 2, "{:?}", a.suspicious);
    assert_eq!(a.suspicious[0].timestamp, JAN1 + 10 * M + 30_000);
    assert!(a.suspicious[0].reason.contains("not on the 1m grid"));
    assert_eq!(a.suspicious[1].timestamp, JAN1 + 300 * M);
    assert!(
        a.suspicious[1].reason.contains("high_price"),
        "{}",
        a.suspicious[1].reason
    );
    assert_eq!(
        a.missing[0],
        MissingRun {
            start: JAN1 + 10 * M,
            end: JAN1 + 10 * M,
            count: 1
        }
    );
    assert_eq!(
        a.missing[1],
        MissingRun {
            start: JAN1 + 301 * M,
            end: JAN1 + 329 * M,
            count: 29
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completeness_of_calendar_and_second_grids() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let d = |y, m, dd| parse_ymd(y, m, dd).unwrap();

    // Weekly bars 2023-12-04 .. 2024-01-29 (Mondays) without 2024-01-01.
    let weeks: Vec<i64> = (0..9).map(|i| d(2023, 12, 4) + i * 7 * DAY_MS).collect();
    assert_eq!(*weeks.last().unwrap(), d(2024, 1, 29));
    let stored: Vec<i64> = weeks.iter().copied().filter(|t| *t != JAN1).collect();
    db.store_data(bars("BTCUSDT", Freq::W1, &stored), Freq::W1)
        .await
        .unwrap();
    let range = TimeRange::parse("2023-12-01", "2024-02-04").unwrap();
    let r = db.check_completeness(range, Freq::W1, &[]).await.unwrap();
    let s = &r.symbols[0];
    assert_eq!((s.expected, s.present), (9, 8));
    assert_eq!(
        s.missing,
        vec![MissingRun {
            start: JAN1,
            end: JAN1,
            count: 1
        }]
    );

    // Monthly bars 2023-10 .. 2024-03 without 2024-01.
    let months = [
        d(2023, 10, 1),
        d(2023, 11, 1),
        d(2023, 12, 1),
        d(2024, 2, 1),
        d(2024, 3, 1),
    ];
    db.store_data(bars("BTCUSDT", Freq::Mo1, &months), Freq::Mo1)
        .await
        .unwrap();
    let range = TimeRange::parse("2023-10-01", "2024-03-31").unwrap();
    let r = db.check_completeness(range, Freq::Mo1, &[]).await.unwrap();
    let s = &r.symbols[0];
    assert_eq!((s.expected, s.present), (6, 5));
    assert_eq!(
        s.missing,
        vec![MissingRun {
            start: JAN1,
            end: JAN1,
            count: 1
        }]
    );
    // Complete when the hole is outside the range.
    let range = TimeRange::parse("2024-02-01", "2024-03-31").unwrap();
    let r = db.check_completeness(range, Freq::Mo1, &[]).await.unwrap();
    assert_eq!((r.symbols[0].expected, r.symbols[0].coverage), (2, 1.0));

    // 3d bars whose phase is not an epoch multiple: the phase comes from the stored bars.
    let phase = d(2024, 1, 2);
    assert_ne!(Freq::D3.floor(phase), phase);
    let d3: Vec<i64> = (0..10)
        .filter(|i| *i != 4)
        .map(|i| phase + i * 3 * DAY_MS)
        .collect();
    db.store_data(bars("ETHUSDT", Freq::D3, &d3), Freq::D3)
        .await
        .unwrap();
    let range = TimeRange::new(phase, phase + 30 * DAY_MS).unwrap();
    let r = db.check_completeness(range, Freq::D3, &[]).await.unwrap();
    let s = &r.symbols[0];
    assert_eq!((s.expected, s.present), (10, 9));
    assert!(s.suspicious.is_empty());
    let hole = phase + 12 * DAY_MS;
    assert_eq!(
        s.missing,
        vec![MissingRun {
            start: hole,
            end: hole,
            count: 1
        }]
    );

    // 1s over a whole year with two bars stored: runs computed without a grid in memory.
    let secs = [d(2024, 3, 1), d(2024, 3, 1) + 1000];
    db.store_data(bars("SOLUSDT", Freq::S1, &secs), Freq::S1)
        .await
        .unwrap();
    let year = TimeRange::parse("2024-01-01", "2024-12-31").unwrap();
    let r = db.check_completeness(year, Freq::S1, &[]).await.unwrap();
    let s = &r.symbols[0];
    assert_eq!(s.expected, 366 * 86_400);
    assert_eq!(s.present, 2);
    assert_eq!(s.missing.len(), 2);
    assert_eq!(
        s.missing[0],
        MissingRun {
            start: JAN1,
            end: secs[0] - 1000,
            count: (secs[0] - JAN1) as u64 / 1000
        }
    );
    assert_eq!(s.missing[1].end, year.end_exclusive - 1000);
}

// ---------------------------------------------------------------------------------------
// Resampling

/// 1m bars with values that sum exactly in any order (multiples of 1/4, small).
fn minute_bars(symbol: &str, start: i64, n: i64, skip: impl Fn(i64) -> bool) -> Vec<Kline> {
    (0..n)
        .filter(|i| !skip(*i))
        .map(|i| {
            let p = 100.0 + ((i * 7919) % 97) as f64 / 4.0;
            let c = 100.0 + ((i * 104_729) % 89) as f64 / 4.0;
            Kline {
                symbol: symbol.to_owned(),
                open_time: start + i * M,
                open: p,
                high: p.max(c) + ((i % 5) as f64) / 4.0,
                low: p.min(c) - ((i % 3) as f64) / 4.0,
                close: c,
                volume: (i % 13) as f64 + 0.25,
                close_time: start + i * M + M - 1,
                quote_volume: (i % 17) as f64 * 2.0 + 0.5,
                trades_count: i % 11,
                taker_buy_volume: (i % 13) as f64 / 2.0,
                taker_buy_quote_volume: (i % 17) as f64,
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resampling_rules() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let two_days = TimeRange::parse("2024-01-01", "2024-01-02").unwrap();
    let mut rows = minute_bars("AAAUSDT", JAN1, 2880, |_| false);
    rows.extend(minute_bars("BBBUSDT", JAN1, 2880, |i| {
        (600..700).contains(&i)
    }));
    db.store_data(rows, Freq::M1).await.unwrap();

    // 1m -> 1h (stored) -> 1d equals 1m -> 1d.
    let h = db
        .resample_and_store(two_days, Freq::M1, Freq::H1, &[], IncompletePolicy::Keep)
        .await
        .unwrap();
    // BBB misses 10:00-11:39: hour 10 is empty (no bar), hour 11 is incomplete.
    assert_eq!(
        (h.buckets, h.incomplete, h.dropped, h.stored),
        (95, 1, 0, 95)
    );
    let via_h = db
        .resample(two_days, Freq::H1, Freq::D1, &[], IncompletePolicy::Keep)
        .await
        .unwrap();
    let direct = db
        .resample(two_days, Freq::M1, Freq::D1, &[], IncompletePolicy::Keep)
        .await
        .unwrap();
    assert_eq!(via_h.frame, direct.frame);
    assert_eq!(
        direct.frame.timestamp(),
        vec![JAN1, JAN1 + DAY_MS, JAN1, JAN1 + DAY_MS]
    );
    assert_eq!(direct.incomplete, 1);
    let dropped = db
        .resample(two_days, Freq::M1, Freq::D1, &[], IncompletePolicy::Drop)
        .await
        .unwrap();
    assert_eq!(
        (dropped.buckets, dropped.incomplete, dropped.dropped),
        (4, 1, 1)
    );
    assert_eq!(dropped.frame.len(), 3);
    assert_eq!(dropped.frame.symbols()[1], ("BBBUSDT".to_owned(), 2..3));
    assert_eq!(dropped.frame.timestamp()[2], JAN1 + DAY_MS);

    // A range selects the buckets that open in it, each built from all its source bars:
    // one starting at the day's open but ending at 06:00 gives the whole day; one starting
    // mid-day selects no day bucket at all.
    let head = TimeRange::new(JAN1, JAN1 + 6 * H).unwrap();
    let aaa = syms(&["AAAUSDT"]);
    let one = db
        .resample(head, Freq::M1, Freq::D1, &aaa, IncompletePolicy::Drop)
        .await
        .unwrap();
    assert_eq!(one.frame.timestamp(), vec![JAN1]);
    assert_eq!(one.frame, direct.frame.filter_rows(|i| i == 0));
    let mid = TimeRange::new(JAN1 + 5 * H + 17 * M, JAN1 + 6 * H).unwrap();
    let none = db
        .resample(mid, Freq::M1, Freq::D1, &aaa, IncompletePolicy::Drop)
        .await
        .unwrap();
    assert!(none.frame.is_empty());

    // Not a whole multiple.
    let err = db
        .resample(two_days, Freq::M3, Freq::M5, &[], IncompletePolicy::Keep)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resampling_known_values_labels_and_empty_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // 24 hourly bars: open 100+i, high 200+i, low 50-i, close 150+i, volume 1000.
    let hourly: Vec<Kline> = (0..24)
        .map(|i| {
            let f = i as f64;
            Kline {
                symbol: "BTCUSDT".into(),
                open_time: JAN1 + i * H,
                open: 100.0 + f,
                high: 200.0 + f,
                low: 50.0 - f,
                close: 150.0 + f,
                volume: 1000.0,
                close_time: JAN1 + (i + 1) * H - 1,
                quote_volume: 5000.0,
                trades_count: 3,
                taker_buy_volume: 400.0,
                taker_buy_quote_volume: 2000.0,
            }
        })
        .collect();
    db.store_data(hourly, Freq::H1).await.unwrap();
    let day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let r = db
        .resample(day, Freq::H1, Freq::D1, &[], IncompletePolicy::Keep)
        .await
        .unwrap();
    assert_eq!(r.frame.timestamp(), vec![JAN1]);
    let one = |f| f64s(&r.frame, f)[0];
    assert_eq!(
        [
            one(Feature::Open),
            one(Feature::High),
            one(Feature::Low),
            one(Feature::Close)
        ],
        [100.0, 223.0, 27.0, 173.0]
    );
    assert_eq!(one(Feature::Volume), 24_000.0);
    assert_eq!(one(Feature::TradesCount), 72.0);
    assert_eq!(one(Feature::TakerSellVolume), 24.0 * 600.0);
    assert_eq!(r.incomplete, 0);

    // 1d -> 1w: the week of Monday 2024-01-01 is labelled 2024-01-01; a week with no daily
    // bars gets no bar; a week with some is incomplete.
    let days: Vec<i64> = (0..7).chain(14..16).map(|i| JAN1 + i * DAY_MS).collect();
    db.store_data(bars("BTCUSDT", Freq::D1, &days), Freq::D1)
        .await
        .unwrap();
    let range = TimeRange::parse("2024-01-01", "2024-01-28").unwrap();
    let w = db
        .resample(range, Freq::D1, Freq::W1, &[], IncompletePolicy::Keep)
        .await
        .unwrap();
    assert_eq!(
        w.frame.timestamp(),
        vec![1_704_067_200_000, JAN1 + 14 * DAY_MS]
    );
    assert_eq!((w.buckets, w.incomplete), (2, 1));
    let w = db
        .resample_and_store(range, Freq::D1, Freq::W1, &[], IncompletePolicy::Drop)
        .await
        .unwrap();
    assert_eq!((w.buckets, w.incomplete, w.dropped, w.stored), (2, 1, 1, 1));
    assert_eq!(
        db.get_time_range("BTCUSDT", Freq::W1).await.unwrap(),
        Some((JAN1, JAN1))
    );

    // 1d -> 1M across a year boundary is labelled on the 1st.
    let dec = parse_ymd(2023, 12, 30).unwrap();
    db.store_data(
        bars("ETHUSDT", Freq::D1, &[dec, dec + DAY_MS, JAN1]),
        Freq::D1,
    )
    .await
    .unwrap();
    let m = db
        .resample(
            TimeRange::parse("2023-12-01", "2024-01-31").unwrap(),
            Freq::D1,
            Freq::Mo1,
            &syms(&["ETHUSDT"]),
            IncompletePolicy::Keep,
        )
        .await
        .unwrap();
    assert_eq!(
        m.frame.timestamp(),
        vec![parse_ymd(2023, 12, 1).unwrap(), JAN1]
    );
    assert_eq!(m.incomplete, 2);
}

// ---------------------------------------------------------------------------------------
// Python v1.9 files

const PYTHON_V19_DDL: &str = "
CREATE TABLE IF NOT EXISTS market_data (
    symbol TEXT,
    timestamp INTEGER,
    freq TEXT,
    open_price REAL,
    high_price REAL,
    low_price REAL,
    close_price REAL,
    volume REAL,
    quote_volume REAL,
    trades_count INTEGER,
    taker_buy_volume REAL,
    taker_buy_quote_volume REAL,
    taker_sell_volume REAL,
    taker_sell_quote_volume REAL,
    PRIMARY KEY (symbol, timestamp, freq)
);
CREATE INDEX IF NOT EXISTS idx_symbol ON market_data(symbol);
CREATE INDEX IF NOT EXISTS idx_timestamp ON market_data(timestamp);
CREATE INDEX IF NOT EXISTS idx_freq ON market_data(freq);
CREATE INDEX IF NOT EXISTS idx_symbol_freq_timestamp ON market_data(symbol, freq, timestamp);
CREATE TABLE IF NOT EXISTS funding_rate (
    symbol TEXT,
    timestamp INTEGER,
    funding_rate REAL,
    funding_time INTEGER,
    mark_price REAL,
    index_price REAL,
    PRIMARY KEY (symbol, timestamp)
);
CREATE INDEX IF NOT EXISTS idx_funding_symbol ON funding_rate(symbol);
CREATE INDEX IF NOT EXISTS idx_funding_timestamp ON funding_rate(timestamp);
CREATE TABLE IF NOT EXISTS open_interest (
    symbol TEXT,
    timestamp INTEGER,
    interval TEXT,
    open_interest REAL,
    open_interest_value REAL,
    PRIMARY KEY (symbol, timestamp, interval)
);
CREATE INDEX IF NOT EXISTS idx_oi_symbol ON open_interest(symbol);
CREATE INDEX IF NOT EXISTS idx_oi_timestamp ON open_interest(timestamp);
CREATE TABLE IF NOT EXISTS long_short_ratio (
    symbol TEXT,
    timestamp INTEGER,
    period TEXT,
    ratio_type TEXT,
    long_short_ratio REAL,
    long_account REAL,
    short_account REAL,
    PRIMARY KEY (symbol, timestamp, period, ratio_type)
);
CREATE INDEX IF NOT EXISTS idx_lsr_symbol ON long_short_ratio(symbol);
CREATE INDEX IF NOT EXISTS idx_lsr_timestamp ON long_short_ratio(timestamp);
";

/// Inserts a kline the way the Python v1.9 `store_data` does (`INSERT OR REPLACE`, taker
/// sells computed, falsy zero written as NULL for optional metrics).
fn python_insert(c: &rusqlite::Connection, k: &Kline, freq: &str) {
    c.execute(
        "INSERT OR REPLACE INTO market_data (symbol, timestamp, freq, open_price, high_price, \
         low_price, close_price, volume, quote_volume, trades_count, taker_buy_volume, \
         taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rusqlite::params![
            k.symbol,
            k.open_time,
            freq,
            k.open,
            k.high,
            k.low,
            k.close,
            k.volume,
            k.quote_volume,
            k.trades_count,
            k.taker_buy_volume,
            k.taker_buy_quote_volume,
            k.volume - k.taker_buy_volume,
            k.quote_volume - k.taker_buy_quote_volume
        ],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_v19_files_open_read_and_accept_writes() {
    let dir = tempfile::tempdir().unwrap();
    let times: Vec<i64> = (0..5).map(|i| JAN1 + i * M).collect();
    let py_rows = bars("BTCUSDT", Freq::M1, &times);
    {
        let c = raw(dir.path());
        c.execute_batch(PYTHON_V19_DDL).unwrap();
        for k in &py_rows {
            python_insert(&c, k, "1m");
        }
        c.execute(
            "INSERT OR REPLACE INTO funding_rate VALUES ('BTCUSDT', ?1, 0.0001, ?1, NULL, 42000.5)",
            [JAN1],
        )
        .unwrap();
        c.execute(
            "INSERT OR REPLACE INTO long_short_ratio VALUES ('BTCUSDT', ?1, '5m', 'account', 1.25, 0.55, 0.45)",
            [JAN1],
        )
        .unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }
    let db = open(dir.path()).await;
    assert_eq!(db.schema_version().await.unwrap(), SCHEMA_VERSION);
    assert_eq!(db.tables().kline_indexes, 4);
    let all = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let got = db.read_data(all, Freq::M1, &[], &[], true).await.unwrap();
    assert_eq!(got, expected_frame(&py_rows, all));
    let fr = db.read_funding_rate(all, &[], false).await.unwrap();
    assert_eq!(fr[0].mark_price, None);
    assert_eq!(fr[0].index_price, Some(42000.5));
    let lsr = db
        .read_long_short_ratio(all, &[], Freq::M5, RatioType::TopTraderAccount, false)
        .await
        .unwrap();
    assert_eq!(lsr.len(), 1);
    assert_eq!(lsr[0].long_short_ratio, 1.25);

    // Upsert: corrected old bars and new ones, no duplicates.
    let more: Vec<i64> = (3..8).map(|i| JAN1 + i * M).collect();
    let mut ours = bars("BTCUSDT", Freq::M1, &more);
    for k in &mut ours {
        k.close = k.low;
    }
    db.store_data(ours.clone(), Freq::M1).await.unwrap();
    assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 8);
    let mut want: Vec<Kline> = py_rows[..3].to_vec();
    want.extend(ours);
    let got = db.read_data(all, Freq::M1, &[], &[], true).await.unwrap();
    assert_eq!(got, expected_frame(&want, all));
    db.close().await;

    // The Python side still upserts into the same file, and its indexes are intact.
    let c = raw(dir.path());
    python_insert(&c, &py_rows[4], "1m");
    let n: i64 = c
        .query_row("SELECT COUNT(*) FROM market_data", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 8);
    let idx: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('market_data', 'funding_rate', 'open_interest', 'long_short_ratio')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(idx, 10);
    let v: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_files_take_python_upserts_and_python_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let times: Vec<i64> = (0..3).map(|i| JAN1 + i * M).collect();
    let rows = bars("BTCUSDT", Freq::M1, &times);
    db.store_data(rows.clone(), Freq::M1).await.unwrap();
    db.close().await;
    {
        // What the Python MarketDB does when it opens our file.
        let c = raw(dir.path());
        c.execute_batch(PYTHON_V19_DDL).unwrap();
        python_insert(&c, &rows[1], "1m");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM market_data", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
    }
    let db = open(dir.path()).await;
    assert_eq!(db.tables().kline_indexes, 4);
    db.store_data(rows.clone(), Freq::M1).await.unwrap();
    let dropped = db.drop_secondary_indexes().await.unwrap();
    assert_eq!(dropped.len(), 10);
    assert!(dropped.contains(&"idx_symbol_freq_timestamp".to_owned()));
    db.store_data(rows.clone(), Freq::M1).await.unwrap();
    assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 3);
    let all = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    assert_eq!(
        db.read_data(all, Freq::M1, &[], &[], true).await.unwrap(),
        expected_frame(&rows, all)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_head_files_are_readable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = raw(dir.path());
        c.execute_batch(
            "CREATE TABLE klines (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL, \
             freq TEXT NOT NULL, open_price REAL NOT NULL, high_price REAL NOT NULL, \
             low_price REAL NOT NULL, close_price REAL NOT NULL, volume REAL NOT NULL, \
             close_time INTEGER NOT NULL, quote_volume REAL NOT NULL, \
             trades_count INTEGER NOT NULL, taker_buy_volume REAL NOT NULL, \
             taker_buy_quote_volume REAL NOT NULL, taker_sell_volume REAL NOT NULL, \
             taker_sell_quote_volume REAL NOT NULL, PRIMARY KEY (symbol, timestamp, freq));
             CREATE TABLE funding_rates (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL, \
             funding_rate REAL NOT NULL, funding_time INTEGER NOT NULL, mark_price REAL, \
             index_price REAL, PRIMARY KEY (symbol, timestamp));
             CREATE TABLE open_interests (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL, \
             interval TEXT NOT NULL DEFAULT '5m', open_interest REAL NOT NULL, \
             open_interest_value REAL, PRIMARY KEY (symbol, timestamp, interval));
             CREATE TABLE long_short_ratios (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL, \
             period TEXT NOT NULL DEFAULT '5m', ratio_type TEXT NOT NULL DEFAULT 'account', \
             long_short_ratio REAL NOT NULL, long_account REAL, short_account REAL, \
             PRIMARY KEY (symbol, timestamp, period, ratio_type));",
        )
        .unwrap();
    }
    let db = open(dir.path()).await;
    assert_eq!(db.tables().kline, "klines");
    let rows = bars("BTCUSDT", Freq::H1, &[JAN1, JAN1 + H]);
    db.store_data(rows.clone(), Freq::H1).await.unwrap();
    let all = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    assert_eq!(
        db.read_data(all, Freq::H1, &[], &[], true).await.unwrap(),
        expected_frame(&rows, all)
    );
    let c = raw(dir.path());
    let ct: i64 = c
        .query_row(
            "SELECT close_time FROM klines WHERE timestamp = ?1",
            [JAN1],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ct, JAN1 + H - 1);
    let tables: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'market_data'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "no v1.9 tables are added to a 1.10+ file");
}

// ---------------------------------------------------------------------------------------
// Streaming

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_deliver_every_row_once_in_bounded_frames() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // 20 symbols x 10,000 minutes (about 7 days) = 200,000 rows.
    let times: Vec<i64> = (0..10_000).map(|i| JAN1 + 7 * H + i * M).collect();
    let symbols: Vec<String> = (0..20).map(|i| format!("S{i:02}USDT")).collect();
    let rows: Vec<Vec<Kline>> = symbols.iter().map(|s| bars(s, Freq::M1, &times)).collect();
    db.store_data(rows, Freq::M1).await.unwrap();
    let range = TimeRange::parse("2023-12-31", "2024-01-31").unwrap();
    let want: Vec<(String, i64)> = symbols
        .iter()
        .flat_map(|s| times.iter().map(move |t| (s.clone(), *t)))
        .collect();

    for chunk in [ScanChunk::Rows(7_777), ScanChunk::Symbol, ScanChunk::Day] {
        let mut stream = db.scan(
            range,
            Freq::M1,
            &[],
            &[Feature::Close, Feature::TradesCount],
            chunk,
        );
        let mut got: Vec<(String, i64)> = Vec::with_capacity(want.len());
        let mut frames = 0;
        while let Some(frame) = stream.next().await {
            let frame = frame.unwrap();
            frames += 1;
            assert!(!frame.is_empty());
            assert_eq!(frame.columns().len(), 2);
            match chunk {
                ScanChunk::Rows(n) => assert!(frame.len() <= n),
                ScanChunk::Symbol => assert_eq!(frame.symbols().len(), 1),
                ScanChunk::Day => {
                    let day = frame.timestamp()[0].div_euclid(DAY_MS);
                    assert!(
                        frame
                            .timestamp()
                            .iter()
                            .all(|t| t.div_euclid(DAY_MS) == day)
                    );
                }
            }
            for (i, t) in frame.timestamp().iter().enumerate() {
                got.push((frame.symbol_of(i).unwrap().to_owned(), *t));
            }
        }
        match chunk {
            ScanChunk::Rows(n) => {
                assert_eq!(frames, want.len().div_ceil(n));
                assert_eq!(got, want);
            }
            ScanChunk::Symbol => {
                assert_eq!(frames, 20);
                assert_eq!(got, want);
            }
            ScanChunk::Day => {
                // Day order: every row once, (symbol, time) order within each day.
                assert_eq!(frames, 8);
                let mut sorted = got.clone();
                sorted.sort_by_key(|(s, t)| (t.div_euclid(DAY_MS), s.clone(), *t));
                assert_eq!(got, sorted);
                sorted.sort();
                assert_eq!(sorted, want);
            }
        }
    }

    // Errors arrive through the stream; a dropped stream stops the producer.
    let mut bad = db.scan(range, Freq::M1, &syms(&["NO/PE"]), &[], ScanChunk::Symbol);
    assert!(matches!(bad.next().await, Some(Err(Error::Model(_)))));
    assert!(bad.next().await.is_none());
    let mut zero = db.scan(range, Freq::M1, &[], &[], ScanChunk::Rows(0));
    assert!(matches!(
        zero.next().await,
        Some(Err(Error::InvalidArgument { .. }))
    ));
    let mut early = db.scan(range, Freq::M1, &[], &[], ScanChunk::Rows(10));
    assert_eq!(early.next().await.unwrap().unwrap().len(), 10);
    drop(early);
    assert_eq!(db.count("S00USDT", Freq::M1, None).await.unwrap(), 10_000);

    // Scans read with a small page cache; every reader has the configured one back.
    let configured = db.pool().config().pragmas.cache_size;
    let guards = all_readers(&db).await;
    for g in &guards {
        let size: i64 = g.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap();
        assert_eq!(size, configured);
    }
}

/// Holds every reader of the pool at once (so each one is inspected).
async fn all_readers(db: &AsyncMarketDB) -> Vec<marketdb_pool::ReadGuard> {
    let mut guards = Vec::new();
    for _ in 0..db.pool().config().readers {
        guards.push(db.pool().read_guard().await.unwrap());
    }
    guards
}

#[test]
fn blocking_scan_from_a_plain_thread() {
    let rt = rt();
    let dir = tempfile::tempdir().unwrap();
    let db = rt.block_on(open(dir.path()));
    let times: Vec<i64> = (0..100).map(|i| JAN1 + i * M).collect();
    rt.block_on(db.store_data(bars("BTCUSDT", Freq::M1, &times), Freq::M1))
        .unwrap();
    let range = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let mut stream = {
        let _guard = rt.enter();
        db.scan(range, Freq::M1, &[], &[], ScanChunk::Rows(30))
    };
    let mut n = 0;
    while let Some(f) = stream.blocking_next() {
        n += f.unwrap().len();
    }
    assert_eq!(n, 100);
}

// ---------------------------------------------------------------------------------------
// Metrics

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_round_trip_with_zero_and_null() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let funding = vec![
        FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: JAN1,
            funding_rate: 0.0001,
            mark_price: Some(0.0),
            index_price: None,
        },
        FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: JAN1 + 8 * H,
            funding_rate: -0.0003,
            mark_price: Some(42000.25),
            index_price: Some(41999.5),
        },
        FundingRate {
            symbol: "ETHUSDT".into(),
            funding_time: JAN1 + 3,
            funding_rate: 0.0,
            mark_price: None,
            index_price: Some(0.0),
        },
    ];
    let oi = vec![
        OpenInterest {
            symbol: "BTCUSDT".into(),
            time: JAN1,
            interval: Freq::M5,
            open_interest: 0.0,
            open_interest_value: Some(0.0),
        },
        OpenInterest {
            symbol: "BTCUSDT".into(),
            time: JAN1 + 5 * M,
            interval: Freq::M5,
            open_interest: 12.5,
            open_interest_value: None,
        },
        OpenInterest {
            symbol: "BTCUSDT".into(),
            time: JAN1,
            interval: Freq::H1,
            open_interest: 99.0,
            open_interest_value: Some(1.0),
        },
    ];
    let lsr = vec![
        LongShortRatio {
            symbol: "BTCUSDT".into(),
            timestamp: JAN1,
            period: Freq::M5,
            ratio_type: RatioType::GlobalAccount,
            long_short_ratio: 1.1,
            long_account: Some(0.0),
            short_account: None,
        },
        LongShortRatio {
            symbol: "BTCUSDT".into(),
            timestamp: JAN1,
            period: Freq::M5,
            ratio_type: RatioType::TakerVol,
            long_short_ratio: 0.9,
            long_account: None,
            short_account: None,
        },
    ];
    assert_eq!(db.store_funding_rate(funding.clone()).await.unwrap(), 3);
    assert_eq!(db.store_open_interest(oi.clone()).await.unwrap(), 3);
    assert_eq!(db.store_long_short_ratio(lsr.clone()).await.unwrap(), 2);
    let day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();

    let mut want = funding.clone();
    want.sort_by(|a, b| (&a.symbol, a.funding_time).cmp(&(&b.symbol, b.funding_time)));
    assert_eq!(db.read_funding_rate(day, &[], false).await.unwrap(), want);
    assert_eq!(
        db.read_funding_rate(day, &syms(&["ethusdt"]), false)
            .await
            .unwrap(),
        want[2..].to_vec()
    );
    assert_eq!(
        db.read_open_interest(day, &[], Freq::M5, false)
            .await
            .unwrap(),
        oi[..2].to_vec()
    );
    assert_eq!(
        db.read_open_interest(day, &[], Freq::H1, false)
            .await
            .unwrap(),
        oi[2..].to_vec()
    );
    assert_eq!(
        db.read_long_short_ratio(day, &[], Freq::M5, RatioType::GlobalAccount, false)
            .await
            .unwrap(),
        lsr[..1].to_vec()
    );
    assert!(
        db.read_long_short_ratio(day, &[], Freq::M5, RatioType::TopTraderPosition, false)
            .await
            .unwrap()
            .is_empty()
    );
    // raise_on_empty: an empty metric read is a typed error naming what was asked for;
    // a non-empty one is unchanged.
    let err = db
        .read_long_short_ratio(day, &[], Freq::M5, RatioType::TopTraderPosition, true)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoData { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "no data found for 5m toptrader_position long/short ratios of all symbols in \
         [2024-01-01T00:00:00Z, 2024-01-02T00:00:00Z)"
    );
    let later = TimeRange::parse("2024-02-01", "2024-02-01").unwrap();
    let err = db
        .read_funding_rate(later, &syms(&["ETHUSDT"]), true)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("funding rates of ETHUSDT"),
        "{err}"
    );
    assert!(matches!(
        db.read_open_interest(later, &[], Freq::M5, true).await,
        Err(Error::NoData { .. })
    ));
    assert_eq!(db.read_funding_rate(day, &[], true).await.unwrap(), want);

    // Stored as 0 and NULL, not the other way round.
    let c = raw(dir.path());
    let (zero, null): (Option<f64>, Option<f64>) = c
        .query_row(
            "SELECT mark_price, index_price FROM funding_rate WHERE symbol = 'BTCUSDT' AND timestamp = ?1",
            [JAN1],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((zero, null), (Some(0.0), None));

    // The other spelling (Python 1.10+ writes `global_account`) is read as an alias; where
    // both exist, the spelling this file's era writes (`global` in v1.9 tables) wins.
    c.execute_batch(&format!(
        "INSERT INTO long_short_ratio VALUES ('BTCUSDT', {t}, '5m', 'global_account', 7.0, NULL, NULL);
         INSERT INTO long_short_ratio VALUES ('BTCUSDT', {t2}, '5m', 'global_account', 8.0, 0.5, 0.0);",
        t = JAN1,
        t2 = JAN1 + 5 * M
    ))
    .unwrap();
    let got = db
        .read_long_short_ratio(day, &[], Freq::M5, RatioType::GlobalAccount, false)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], lsr[0]);
    assert_eq!(got[1].long_short_ratio, 8.0);
    assert_eq!(got[1].short_account, Some(0.0));
    assert_eq!(got[1].ratio_type, RatioType::GlobalAccount);

    // OI and LSR together: both or neither.
    let mut more_lsr = lsr.clone();
    more_lsr[0].timestamp += 10 * M;
    more_lsr[1].long_short_ratio = f64::NAN;
    let mut more_oi = oi.clone();
    more_oi[0].time += 10 * M;
    assert!(matches!(
        db.store_metrics(more_oi.clone(), more_lsr.clone()).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        db.read_open_interest(day, &[], Freq::M5, false)
            .await
            .unwrap()
            .len(),
        2
    );
    more_lsr.truncate(1);
    assert_eq!(db.store_metrics(more_oi, more_lsr).await.unwrap(), 4);
    assert_eq!(
        db.read_open_interest(day, &[], Freq::M5, false)
            .await
            .unwrap()
            .len(),
        3
    );

    // Validation is atomic for metrics too.
    let mut bad = funding.clone();
    bad.push(FundingRate {
        symbol: "BAD SYMBOL".into(),
        funding_time: 0,
        funding_rate: 0.0,
        mark_price: None,
        index_price: None,
    });
    bad[0].funding_rate = 0.5;
    assert!(matches!(
        db.store_funding_rate(bad).await,
        Err(Error::Invalid(_))
    ));
    assert_eq!(db.read_funding_rate(day, &[], false).await.unwrap(), want);
    let _ = KlineInput::from(Vec::<Kline>::new());
    assert_eq!(
        db.store_data(Vec::<Kline>::new(), Freq::M1).await.unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------
// Read-only opens and honest results
// ---------------------------------------------------------------------------------------

fn sha256(path: &Path) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    Sha256::digest(std::fs::read(path).unwrap()).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_opens_change_nothing_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    // A missing file is an error and is not created (nor its folder).
    let missing = dir.path().join("sub/none.db");
    assert!(AsyncMarketDB::open_read_only(&missing).await.is_err());
    assert!(!dir.path().join("sub").exists());

    // A Python v1.9 file: rollback journal, user_version 0, its indexes.
    let path = dir.path().join("py.db");
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch(&marketdb_store::bench::Layout::Python.ddl())
            .unwrap();
        for k in bars("BTCUSDT", Freq::M1, &[JAN1, JAN1 + M]) {
            python_insert(&c, &k, "1m");
        }
    }
    let before = sha256(&path);
    let db = AsyncMarketDB::open_read_only(&path).await.unwrap();
    assert!(db.is_read_only());
    let r = TimeRange::new(JAN1, JAN1 + DAY_MS).unwrap();
    let frame = db.read_data(r, Freq::M1, &[], &[], true).await.unwrap();
    assert_eq!(frame.timestamp(), vec![JAN1, JAN1 + M]);
    assert_eq!(db.schema_version().await.unwrap(), 0);
    assert_eq!(db.tables().kline_indexes, 4);
    let err = db
        .store_data(bars("BTCUSDT", Freq::M1, &[JAN1 + 2 * M]), Freq::M1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("open read-only"), "{err}");
    assert!(db.checkpoint().await.is_err());
    db.close().await;
    assert_eq!(sha256(&path), before, "a read-only open changed the file");
    for side in ["py.db-wal", "py.db-shm", "py.db-journal"] {
        assert!(!dir.path().join(side).exists(), "{side}");
    }

    // A file without the tables: named, not created.
    let empty = dir.path().join("empty.db");
    rusqlite::Connection::open(&empty)
        .unwrap()
        .execute_batch("CREATE TABLE other(x)")
        .unwrap();
    let err = AsyncMarketDB::open_read_only(&empty).await.unwrap_err();
    assert!(err.to_string().contains("no table market_data"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_opens_do_not_wait_for_a_held_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.store_data(bars("BTCUSDT", Freq::M1, &[JAN1]), Freq::M1)
        .await
        .unwrap();
    db.close().await;
    let path = dir.path().join("market.db");
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    // With a short busy timeout, anything that needed the lock fails at once.
    let mut config = StoreConfig::read_only(&path);
    config.pool.busy_timeout = std::time::Duration::from_millis(50);
    let ro = AsyncMarketDB::open_with(config.clone()).await.unwrap();
    assert_eq!(ro.count("BTCUSDT", Freq::M1, None).await.unwrap(), 1);
    ro.close().await;
    config.pool.read_only = false;
    let err = AsyncMarketDB::open_with(config).await.unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    holder.execute_batch("ROLLBACK").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_checkpoint_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("market.db"));
    config.pool.busy_timeout = std::time::Duration::from_millis(50);
    let db = AsyncMarketDB::open_with(config).await.unwrap();
    db.store_data(bars("BTCUSDT", Freq::M1, &[JAN1]), Freq::M1)
        .await
        .unwrap();
    assert_eq!(
        db.checkpoint().await.unwrap(),
        marketdb_store::Checkpoint::Truncated
    );
    // A reader holding a snapshot of the WAL keeps it from being truncated.
    let reader = rusqlite::Connection::open(dir.path().join("market.db")).unwrap();
    db.store_data(bars("BTCUSDT", Freq::M1, &[JAN1 + M]), Freq::M1)
        .await
        .unwrap();
    reader.execute_batch("BEGIN").unwrap();
    let n: i64 = reader
        .query_row("SELECT COUNT(*) FROM market_data", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2);
    db.store_data(bars("BTCUSDT", Freq::M1, &[JAN1 + 2 * M]), Freq::M1)
        .await
        .unwrap();
    let outcome = db.checkpoint().await.unwrap();
    assert!(
        matches!(outcome, marketdb_store::Checkpoint::Busy { .. }),
        "{outcome:?}"
    );
    assert!(!outcome.is_complete());
    reader.execute_batch("COMMIT").unwrap();
    assert!(db.checkpoint().await.unwrap().is_complete());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_store_is_a_success_even_when_its_checkpoint_fails() {
    use marketdb_model::Records;
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("market.db"));
    config.pool.backend = marketdb_store::Backend::Builtin;
    // The blocker below queues behind the store, so the timeout must outlast a store of
    // 100,001 rows in a debug build on a busy machine (300 ms did not); the blocker holds
    // the writer longer than the timeout.
    config.pool.acquire_timeout = std::time::Duration::from_secs(3);
    let db = AsyncMarketDB::open_with(config).await.unwrap();
    let n_rows = marketdb_store::CHECKPOINT_AFTER_ROWS as i64 + 1;
    let rows: Vec<Kline> = (0..n_rows)
        .map(|i| bar("BTCUSDT", Freq::S1, JAN1 + i * 1000, (i % 50) as f64))
        .collect();
    // A streamed store (its size unknown until it ends) takes the writer again for its
    // checkpoint after the commit. A second task queues behind it (the built-in writer is
    // FIFO) and, once it has the writer, keeps it past the acquire timeout, so the
    // checkpoint cannot get the writer and fails.
    let batches: Vec<Result<Records, std::io::Error>> = vec![Ok(Records::Klines {
        freq: Freq::S1,
        rows,
    })];
    let store = {
        let db = db.clone();
        tokio::spawn(async move { db.store_records(batches).await })
    };
    while db.pool().stats().writer.in_use == 0 {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    let blocker = {
        let pool = db.pool().clone();
        tokio::spawn(async move {
            let guard = pool.write_guard().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(4000)).await;
            drop(guard);
        })
    };
    let stored = store.await.unwrap();
    blocker.await.unwrap();
    assert_eq!(stored.unwrap(), n_rows as usize, "the rows were committed");
    assert_eq!(
        db.count("BTCUSDT", Freq::S1, None).await.unwrap(),
        n_rows as u64
    );
    assert!(
        db.pool().stats().writer.waits >= 2,
        "both the blocker and the checkpoint had to wait for the writer"
    );
    assert_eq!(writer_autocheckpoint(&db).await, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_queued_behind_a_large_store_finds_the_wal_folded_and_the_checkpoint_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::new(dir.path().join("market.db"));
    config.pool.backend = marketdb_store::Backend::Builtin;
    let db = AsyncMarketDB::open_with(config).await.unwrap();
    let wal = dir.path().join("market.db-wal");
    let n_rows = marketdb_store::CHECKPOINT_AFTER_ROWS as i64 + 1;
    let rows: Vec<Kline> = (0..n_rows)
        .map(|i| bar("BTCUSDT", Freq::S1, JAN1 + i * 1000, (i % 50) as f64))
        .collect();
    let store = {
        let db = db.clone();
        tokio::spawn(async move { db.store_data(rows, Freq::S1).await })
    };
    while db.pool().stats().writer.in_use == 0 {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    // Queued (FIFO) while the large store holds the writer: it gets the writer only after
    // the store's checkpoint, never between its commit and the checkpoint.
    let guard = db.pool().write_guard().await.unwrap();
    let pages: i64 = guard
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    drop(guard);
    assert_eq!(store.await.unwrap().unwrap(), n_rows as usize);
    assert_eq!(
        pages, 1000,
        "the next writer has the automatic checkpoint back"
    );
    assert_eq!(
        wal_len, 0,
        "the WAL was checkpointed and truncated before the next writer"
    );
}

/// The `wal_autocheckpoint` the writer connection has now (read holding the writer, so
/// after any background fold).
async fn writer_autocheckpoint(db: &AsyncMarketDB) -> i64 {
    let guard = db.pool().write_guard().await.unwrap();
    guard
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_store_folds_the_wal_after_returning_and_close_waits_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let db = open(dir.path()).await;
    let n_rows = marketdb_store::CHECKPOINT_AFTER_ROWS as i64 + 1;
    let rows: Vec<Kline> = (0..n_rows)
        .map(|i| bar("BTCUSDT", Freq::S1, JAN1 + i * 1000, (i % 50) as f64))
        .collect();
    assert_eq!(
        db.store_data(rows.clone(), Freq::S1).await.unwrap(),
        n_rows as usize
    );
    // Committed and visible as soon as the call returns, fold or no fold.
    assert_eq!(
        db.count("BTCUSDT", Freq::S1, None).await.unwrap(),
        n_rows as u64
    );
    // The fold's TRUNCATE checkpoint empties the WAL while the store is open (an automatic
    // checkpoint at commit would copy it but leave the file at full size).
    db.wait_for_fold().await;
    let wal_len = std::fs::metadata(dir.path().join("market.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "the fold truncated the WAL");
    // The commit ran without the automatic checkpoint; the fold put the setting back.
    assert_eq!(writer_autocheckpoint(&db).await, 1000);

    // A failed large call (its last row is bad) stores nothing and restores it too.
    let mut bad = rows;
    for k in &mut bad {
        k.open_time += n_rows * 1000;
        k.close_time = Freq::S1.close_time(k.open_time);
    }
    bad.last_mut().unwrap().high = -1.0;
    assert!(db.store_data(bad, Freq::S1).await.is_err());
    assert_eq!(
        db.count("BTCUSDT", Freq::S1, None).await.unwrap(),
        n_rows as u64
    );
    assert_eq!(writer_autocheckpoint(&db).await, 1000);

    // Another large store, then close at once: close waits for its fold, so the WAL is
    // truncated and the file alone holds every row.
    let more: Vec<Kline> = (0..n_rows)
        .map(|i| bar("ETHUSDT", Freq::S1, JAN1 + i * 1000, (i % 50) as f64))
        .collect();
    db.store_data(more, Freq::S1).await.unwrap();
    db.close().await;
    let wal = std::fs::metadata(dir.path().join("market.db-wal")).map_or(0, |m| m.len());
    assert_eq!(
        wal, 0,
        "the WAL was folded and truncated before close returned"
    );
    let again = AsyncMarketDB::open_read_only(&path).await.unwrap();
    assert_eq!(
        again.count("ETHUSDT", Freq::S1, None).await.unwrap(),
        n_rows as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_store_whose_caller_stops_waiting_still_commits_and_restores_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let n_rows = marketdb_store::CHECKPOINT_AFTER_ROWS as i64 + 1;
    let rows: Vec<Kline> = (0..n_rows)
        .map(|i| bar("BTCUSDT", Freq::S1, JAN1 + i * 1000, (i % 50) as f64))
        .collect();
    let caller = {
        let db = db.clone();
        tokio::spawn(async move { db.store_data(rows, Freq::S1).await })
    };
    // The caller goes away once its transaction runs (as a cancelled asyncio task does).
    while db.pool().stats().writer.in_use == 0 {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
    caller.abort();
    let _ = caller.await;
    // The write commits regardless, and the writer gets its automatic checkpoint back:
    // polled, since nobody awaits the fold (a generous bound, not a timing check).
    let mut restored = false;
    for _ in 0..600 {
        if writer_autocheckpoint(&db).await == 1000
            && db.count("BTCUSDT", Freq::S1, None).await.unwrap() == n_rows as u64
        {
            restored = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        restored,
        "the write committed and wal_autocheckpoint was restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_records_are_one_transaction() {
    use marketdb_model::Records;
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let times: Vec<i64> = (0..10).map(|i| JAN1 + i * M).collect();
    let chunk = move |range: std::ops::Range<usize>| Records::Klines {
        freq: Freq::M1,
        rows: bars("BTCUSDT", Freq::M1, &times[range]),
    };
    let funding = Records::Funding(vec![FundingRate {
        symbol: "BTCUSDT".into(),
        funding_time: JAN1,
        funding_rate: 0.0001,
        mark_price: None,
        index_price: None,
    }]);
    // A failing input after two good batches: nothing stored, the cause kept.
    let failing: Vec<Result<Records, std::io::Error>> = vec![
        Ok(chunk(0..4)),
        Ok(funding.clone()),
        Err(std::io::Error::other("parser gave up")),
    ];
    let err = db.store_records(failing).await.unwrap_err();
    assert!(matches!(err, Error::Input(_)), "{err}");
    assert_eq!(
        std::error::Error::source(&err).unwrap().to_string(),
        "parser gave up"
    );
    assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 0);
    // An invalid row in a later batch: nothing stored either.
    let mut bad = bars("BTCUSDT", Freq::M1, &[JAN1 + 8 * M, JAN1 + 9 * M]);
    bad[1].low = bad[1].high + 1.0;
    let batches: Vec<Result<Records, std::io::Error>> = vec![
        Ok(chunk(0..4)),
        Ok(Records::Klines {
            freq: Freq::M1,
            rows: bad,
        }),
    ];
    assert!(matches!(
        db.store_records(batches).await.unwrap_err(),
        Error::Invalid(_)
    ));
    assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 0);
    // Good batches from a channel fed by another thread: all stored.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Records, std::io::Error>>(1);
    let feeder = std::thread::spawn(move || {
        for r in [0..4, 4..8, 8..10] {
            tx.send(Ok(chunk(r))).unwrap();
        }
        tx.send(Ok(funding)).unwrap();
    });
    assert_eq!(db.store_records(rx).await.unwrap(), 11);
    feeder.join().unwrap();
    assert_eq!(db.count("BTCUSDT", Freq::M1, None).await.unwrap(), 10);
    let r = TimeRange::new(JAN1, JAN1 + DAY_MS).unwrap();
    assert_eq!(db.read_funding_rate(r, &[], false).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_completeness_delete_and_symbol_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // Funding every 8 h on Jan 1-2 with Binance's few-ms jitter, 08:00 Jan 2 missing.
    let funding: Vec<FundingRate> = [0, 8, 16, 24, 40]
        .iter()
        .map(|h| FundingRate {
            symbol: "BTCUSDT".into(),
            funding_time: JAN1 + h * H + 3,
            funding_rate: 0.0001,
            mark_price: None,
            index_price: None,
        })
        .collect();
    db.store_funding_rate(funding).await.unwrap();
    // Open interest every 5 min over 2 h, minutes 20..35 missing (3 slots), one point off
    // the grid at 01:02.
    let m5 = 5 * M;
    let oi_times: Vec<i64> = (0..24)
        .map(|i| JAN1 + i * m5)
        .filter(|t| !(JAN1 + 20 * M..JAN1 + 35 * M).contains(t))
        .collect();
    let oi: Vec<OpenInterest> = oi_times
        .iter()
        .map(|&t| OpenInterest {
            symbol: "BTCUSDT".into(),
            time: t,
            interval: Freq::M5,
            open_interest: 1.0,
            open_interest_value: None,
        })
        .collect();
    db.store_open_interest(oi).await.unwrap();
    // marketdb refuses an off-grid point; files written by other tools may hold one.
    raw(dir.path())
        .execute(
            "INSERT INTO open_interest (symbol, timestamp, interval, open_interest) \
             VALUES ('BTCUSDT', ?1, '5m', 1.0)",
            [JAN1 + H + 2 * M],
        )
        .unwrap();
    let lsr = |t: i64, r: RatioType| LongShortRatio {
        symbol: "ETHUSDT".into(),
        timestamp: t,
        period: Freq::M5,
        ratio_type: r,
        long_short_ratio: 1.0,
        long_account: None,
        short_account: None,
    };
    db.store_long_short_ratio(vec![
        lsr(JAN1, RatioType::TakerVol),
        lsr(JAN1 + 2 * m5, RatioType::TakerVol),
        lsr(JAN1, RatioType::GlobalAccount),
    ])
    .await
    .unwrap();

    let two_days = TimeRange::parse("2024-01-01", "2024-01-02").unwrap();
    let r = db
        .check_metric_completeness(two_days, MetricFamily::FundingRate, Freq::H8, &[])
        .await
        .unwrap();
    let s = &r.symbols[0];
    assert_eq!(
        (s.symbol.as_str(), s.expected, s.present),
        ("BTCUSDT", 6, 5)
    );
    assert_eq!(
        s.missing,
        vec![MissingRun {
            start: JAN1 + 32 * H,
            end: JAN1 + 32 * H,
            count: 1
        }]
    );
    assert!(s.suspicious.is_empty(), "funding jitter is not suspicious");

    let two_hours = TimeRange::new(JAN1, JAN1 + 2 * H).unwrap();
    let r = db
        .check_metric_completeness(two_hours, MetricFamily::OpenInterest, Freq::M5, &[])
        .await
        .unwrap();
    let s = &r.symbols[0];
    assert_eq!((s.expected, s.present), (24, 21));
    assert_eq!(
        s.missing,
        vec![MissingRun {
            start: JAN1 + 20 * M,
            end: JAN1 + 30 * M,
            count: 3
        }]
    );
    assert_eq!(s.suspicious.len(), 1);
    assert_eq!(s.suspicious[0].timestamp, JAN1 + H + 2 * M);
    // At 1h, the 5m series has every hour.
    let r = db
        .check_metric_completeness(two_hours, MetricFamily::OpenInterest, Freq::H1, &[])
        .await
        .unwrap();
    assert_eq!(r.symbols[0].expected, 2);
    // Ratios: only the asked type counts; the other type's table rows do not.
    let r = db
        .check_metric_completeness(
            TimeRange::new(JAN1, JAN1 + 3 * m5).unwrap(),
            MetricFamily::LongShortRatio(RatioType::TakerVol),
            Freq::M5,
            &syms(&["ETHUSDT"]),
        )
        .await
        .unwrap();
    let s = &r.symbols[0];
    assert_eq!((s.expected, s.present, s.missing.len()), (3, 2, 1));
    assert_eq!(s.missing[0].start, JAN1 + m5);
    assert!(matches!(
        db.check_metric_completeness(two_days, MetricFamily::FundingRate, Freq::Mo1, &[])
            .await,
        Err(Error::InvalidArgument { .. })
    ));

    // Deletes: only the asked series, range and symbols.
    let first_day = TimeRange::parse("2024-01-01", "2024-01-01").unwrap();
    let n = db
        .delete_metric_range(MetricFamily::FundingRate, &[], first_day, None)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        db.read_funding_rate(two_days, &[], false)
            .await
            .unwrap()
            .len(),
        2
    );
    let n = db
        .delete_metric_range(
            MetricFamily::OpenInterest,
            &syms(&["BTCUSDT"]),
            two_hours,
            Some(Freq::H1),
        )
        .await
        .unwrap();
    assert_eq!(n, 0, "no 1h open interest stored");
    let n = db
        .delete_metric_range(
            MetricFamily::LongShortRatio(RatioType::TakerVol),
            &[],
            two_days,
            Some(Freq::M5),
        )
        .await
        .unwrap();
    assert_eq!(n, 2);
    let left = db
        .read_long_short_ratio(two_days, &[], Freq::M5, RatioType::GlobalAccount, false)
        .await
        .unwrap();
    assert_eq!(left.len(), 1, "the other ratio type stays");
    let n = db
        .delete_metric_range(MetricFamily::OpenInterest, &[], two_hours, None)
        .await
        .unwrap();
    assert_eq!(n, 22);

    // get_symbol_data_range: every interval with count, first, last.
    db.store_data(
        bars("BTCUSDT", Freq::H1, &[JAN1, JAN1 + H, JAN1 + 5 * H]),
        Freq::H1,
    )
    .await
    .unwrap();
    db.store_data(bars("BTCUSDT", Freq::M1, &[JAN1 + 7 * M]), Freq::M1)
        .await
        .unwrap();
    let ranges = db.get_symbol_data_range("BTCUSDT").await.unwrap();
    assert_eq!(
        ranges,
        vec![
            SymbolRange {
                freq: Freq::M1,
                record_count: 1,
                earliest_timestamp: JAN1 + 7 * M,
                latest_timestamp: JAN1 + 7 * M,
            },
            SymbolRange {
                freq: Freq::H1,
                record_count: 3,
                earliest_timestamp: JAN1,
                latest_timestamp: JAN1 + 5 * H,
            },
        ]
    );
    assert!(
        db.get_symbol_data_range("ETHUSDT")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(db.get_symbol_data_range("bad symbol!").await.is_err());
}

// ---------------------------------------------------------------------------------------
// Inspection by seeks equals a full scan

/// Where a file came from: marketdb's layouts, or cryptoservice's (v1.9 with its indexes,
/// 1.10+ with or without its indexes).
#[derive(Clone, Copy, Debug)]
enum FileLayout {
    Ours,
    PkOnly,
    PythonV19,
    Head,
    HeadBare,
}

const LAYOUTS: [FileLayout; 5] = [
    FileLayout::Ours,
    FileLayout::PkOnly,
    FileLayout::PythonV19,
    FileLayout::Head,
    FileLayout::HeadBare,
];

const HEAD_DDL: &str = "
CREATE TABLE klines (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL, freq TEXT NOT NULL,
    open_price REAL NOT NULL, high_price REAL NOT NULL, low_price REAL NOT NULL,
    close_price REAL NOT NULL, volume REAL NOT NULL, close_time INTEGER NOT NULL,
    quote_volume REAL NOT NULL, trades_count INTEGER NOT NULL,
    taker_buy_volume REAL NOT NULL, taker_buy_quote_volume REAL NOT NULL,
    taker_sell_volume REAL NOT NULL, taker_sell_quote_volume REAL NOT NULL,
    PRIMARY KEY (symbol, timestamp, freq));
CREATE TABLE funding_rates (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL,
    funding_rate REAL NOT NULL, funding_time INTEGER NOT NULL, mark_price REAL,
    index_price REAL, PRIMARY KEY (symbol, timestamp));
CREATE TABLE open_interests (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL,
    interval TEXT NOT NULL DEFAULT '5m', open_interest REAL NOT NULL,
    open_interest_value REAL, PRIMARY KEY (symbol, timestamp, interval));
CREATE TABLE long_short_ratios (symbol TEXT NOT NULL, timestamp INTEGER NOT NULL,
    period TEXT NOT NULL DEFAULT '5m', ratio_type TEXT NOT NULL DEFAULT 'account',
    long_short_ratio REAL NOT NULL, long_account REAL, short_account REAL,
    PRIMARY KEY (symbol, timestamp, period, ratio_type));
";

const HEAD_INDEXES: &str = "
CREATE INDEX idx_klines_symbol ON klines(symbol);
CREATE INDEX idx_klines_timestamp ON klines(timestamp);
CREATE INDEX idx_klines_freq ON klines(freq);
CREATE INDEX idx_klines_symbol_freq ON klines(symbol, freq);
CREATE INDEX idx_klines_symbol_freq_timestamp ON klines(symbol, freq, timestamp);
CREATE INDEX idx_funding_symbol ON funding_rates(symbol);
CREATE INDEX idx_funding_timestamp ON funding_rates(timestamp);
CREATE INDEX idx_funding_symbol_timestamp ON funding_rates(symbol, timestamp);
CREATE INDEX idx_oi_symbol ON open_interests(symbol);
CREATE INDEX idx_oi_timestamp ON open_interests(timestamp);
CREATE INDEX idx_oi_symbol_timestamp ON open_interests(symbol, timestamp);
CREATE INDEX idx_lsr_symbol ON long_short_ratios(symbol);
CREATE INDEX idx_lsr_timestamp ON long_short_ratios(timestamp);
CREATE INDEX idx_lsr_symbol_timestamp ON long_short_ratios(symbol, timestamp);
";

/// Rows of every table, as (symbol, key..., timestamp).
#[derive(Clone, Debug, Default)]
struct Holdings {
    klines: Vec<(String, Freq, i64)>,
    funding: Vec<(String, i64)>,
    open_interest: Vec<(String, &'static str, i64)>,
    long_short_ratio: Vec<(String, &'static str, &'static str, i64)>,
}

impl FileLayout {
    fn head(self) -> bool {
        matches!(self, FileLayout::Head | FileLayout::HeadBare)
    }

    fn tables(self) -> [&'static str; 4] {
        if self.head() {
            [
                "klines",
                "funding_rates",
                "open_interests",
                "long_short_ratios",
            ]
        } else {
            [
                "market_data",
                "funding_rate",
                "open_interest",
                "long_short_ratio",
            ]
        }
    }

    /// Writes `h` into a new file at `path` the way the file's writer lays it out.
    fn write(self, path: &Path, h: &Holdings) {
        use marketdb_store::bench::Layout;
        let c = rusqlite::Connection::open(path).unwrap();
        match self {
            FileLayout::Ours => c.execute_batch(&Layout::WithoutRowid.ddl()),
            FileLayout::PkOnly => c.execute_batch(&Layout::PkOnly.ddl()),
            FileLayout::PythonV19 => c.execute_batch(&Layout::Python.ddl()),
            FileLayout::Head => c.execute_batch(&format!("{HEAD_DDL}{HEAD_INDEXES}")),
            FileLayout::HeadBare => c.execute_batch(HEAD_DDL),
        }
        .unwrap();
        let [kt, ft, ot, lt] = self.tables();
        let tx = c.unchecked_transaction().unwrap();
        let close_time = if self.head() { ", close_time" } else { "" };
        let mut k = tx
            .prepare(&format!(
                "INSERT OR REPLACE INTO {kt} (symbol, timestamp, freq, open_price, high_price, \
                 low_price, close_price, volume, quote_volume, trades_count, taker_buy_volume, \
                 taker_buy_quote_volume, taker_sell_volume, taker_sell_quote_volume{close_time}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14{})",
                if self.head() { ", ?15" } else { "" }
            ))
            .unwrap();
        for (i, (s, f, t)) in h.klines.iter().enumerate() {
            let b = bar(s, *f, *t, (i % 17) as f64);
            let mut p: Vec<rusqlite::types::Value> = vec![
                s.clone().into(),
                (*t).into(),
                f.as_str().to_owned().into(),
                b.open.into(),
                b.high.into(),
                b.low.into(),
                b.close.into(),
                b.volume.into(),
                b.quote_volume.into(),
                b.trades_count.into(),
                b.taker_buy_volume.into(),
                b.taker_buy_quote_volume.into(),
                b.taker_sell_volume().into(),
                b.taker_sell_quote_volume().into(),
            ];
            if self.head() {
                p.push(b.close_time.into());
            }
            k.execute(rusqlite::params_from_iter(p)).unwrap();
        }
        drop(k);
        for (s, t) in &h.funding {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {ft} (symbol, timestamp, funding_rate, funding_time) \
                     VALUES (?1, ?2, 0.0001, ?2)"
                ),
                rusqlite::params![s, t],
            )
            .unwrap();
        }
        for (s, i, t) in &h.open_interest {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {ot} (symbol, timestamp, interval, open_interest) \
                     VALUES (?1, ?2, ?3, 5.0)"
                ),
                rusqlite::params![s, t, i],
            )
            .unwrap();
        }
        for (s, p, r, t) in &h.long_short_ratio {
            tx.execute(
                &format!(
                    "INSERT OR REPLACE INTO {lt} (symbol, timestamp, period, ratio_type, \
                     long_short_ratio) VALUES (?1, ?2, ?3, ?4, 1.5)"
                ),
                rusqlite::params![s, t, p, r],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
}

/// `SELECT key..., COUNT(*), COUNT(DISTINCT symbol), MIN(timestamp), MAX(timestamp)
/// ... GROUP BY key... ORDER BY key...`, as JSON rows: the full-scan answer.
fn oracle_groups(c: &rusqlite::Connection, table: &str, keys: &[&str]) -> Vec<serde_json::Value> {
    let cols: String = keys.iter().map(|k| format!("{k}, ")).collect();
    let group = if keys.is_empty() {
        String::new()
    } else {
        format!("GROUP BY {0} ORDER BY {0}", keys.join(", "))
    };
    let mut stmt = c
        .prepare(&format!(
            "SELECT {cols}COUNT(*), COUNT(DISTINCT symbol), MIN(timestamp), MAX(timestamp) \
             FROM {table} {group}"
        ))
        .unwrap();
    let n = keys.len();
    stmt.query_map([], |r| {
        let mut v = serde_json::Map::new();
        for (i, k) in keys.iter().enumerate() {
            v.insert((*k).to_owned(), json!(r.get::<_, String>(i)?));
        }
        v.insert("record_count".into(), json!(r.get::<_, i64>(n)?));
        v.insert("unique_symbols".into(), json!(r.get::<_, i64>(n + 1)?));
        v.insert(
            "earliest_timestamp".into(),
            json!(r.get::<_, Option<i64>>(n + 2)?),
        );
        v.insert(
            "latest_timestamp".into(),
            json!(r.get::<_, Option<i64>>(n + 3)?),
        );
        Ok(serde_json::Value::Object(v))
    })
    .unwrap()
    .collect::<rusqlite::Result<_>>()
    .unwrap()
}

fn strings(c: &rusqlite::Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Vec<String> {
    let mut stmt = c.prepare(sql).unwrap();
    stmt.query_map(p, |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
}

/// Every inspection of the file at `path` (summary, symbol listings, time ranges, symbol
/// ranges, completeness over `check`) against plain full-scan SQL and a grid walk.
async fn assert_inspection_matches_scan(path: &Path, layout: FileLayout, check: TimeRange) {
    let db = AsyncMarketDB::open_with(StoreConfig::read_only(path))
        .await
        .unwrap();
    let c = rusqlite::Connection::open(path).unwrap();
    let [kt, ft, ot, lt] = layout.tables();

    let summary = serde_json::to_value(db.get_data_summary().await.unwrap()).unwrap();
    let mut md = oracle_groups(&c, kt, &["freq"]);
    for g in &mut md {
        for (ts, date) in [
            ("earliest_timestamp", "earliest_date"),
            ("latest_timestamp", "latest_date"),
        ] {
            let d = g[ts].as_i64().map(marketdb_model::time::date_string);
            g[date] = json!(d);
        }
    }
    assert_eq!(summary["market_data"], json!(md), "{layout:?}");
    assert_eq!(
        summary["funding_rate"],
        oracle_groups(&c, ft, &[])[0],
        "{layout:?}"
    );
    assert_eq!(
        summary["open_interest"],
        json!(oracle_groups(&c, ot, &["interval"])),
        "{layout:?}"
    );
    assert_eq!(
        summary["long_short_ratio"],
        json!(oracle_groups(&c, lt, &["period", "ratio_type"])),
        "{layout:?}"
    );

    let all = strings(
        &c,
        &format!("SELECT DISTINCT symbol FROM {kt} ORDER BY symbol"),
        &[],
    );
    assert_eq!(db.get_symbols(None).await.unwrap(), all, "{layout:?}");
    let freqs = strings(&c, &format!("SELECT DISTINCT freq FROM {kt}"), &[]);
    for f in [Freq::M1, Freq::H1, Freq::D1] {
        let want = strings(
            &c,
            &format!("SELECT DISTINCT symbol FROM {kt} WHERE freq = ?1 ORDER BY symbol"),
            &[&f.as_str()],
        );
        assert_eq!(
            db.get_symbols(Some(f)).await.unwrap(),
            want,
            "{layout:?} {f}"
        );
    }

    for s in ["AAAUSDT", "BTCUSDT", "ETHUSDT", "ZZ9"] {
        let mut stmt = c
            .prepare(&format!(
                "SELECT freq, COUNT(*), MIN(timestamp), MAX(timestamp) FROM {kt} \
                 WHERE symbol = ?1 GROUP BY freq"
            ))
            .unwrap();
        let mut want: Vec<SymbolRange> = stmt
            .query_map([s], |r| {
                Ok(SymbolRange {
                    freq: Freq::parse(&r.get::<_, String>(0)?).unwrap(),
                    record_count: r.get::<_, i64>(1)? as u64,
                    earliest_timestamp: r.get(2)?,
                    latest_timestamp: r.get(3)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        want.sort_by_key(|r| r.freq);
        assert_eq!(
            db.get_symbol_data_range(s).await.unwrap(),
            want,
            "{layout:?} {s}"
        );
        for f in [Freq::M1, Freq::H1, Freq::D1] {
            let want: Option<(i64, i64)> = c
                .query_row(
                    &format!(
                        "SELECT MIN(timestamp), MAX(timestamp) FROM {kt} \
                         WHERE symbol = ?1 AND freq = ?2"
                    ),
                    rusqlite::params![s, f.as_str()],
                    |r| Ok(r.get::<_, Option<i64>>(0)?.zip(r.get::<_, Option<i64>>(1)?)),
                )
                .unwrap();
            assert_eq!(db.get_time_range(s, f).await.unwrap(), want, "{layout:?}");
        }
    }

    // Completeness: every stored symbol of each interval, plus one without bars.
    for f in freqs.iter().map(|f| Freq::parse(f).unwrap()) {
        let mut symbols = strings(
            &c,
            &format!("SELECT DISTINCT symbol FROM {kt} WHERE freq = ?1"),
            &[&f.as_str()],
        );
        symbols.push("NOPEUSDT".into());
        let report = db.check_completeness(check, f, &symbols).await.unwrap();
        symbols.sort();
        assert_eq!(report.symbols.len(), symbols.len());
        for (got, s) in report.symbols.iter().zip(&symbols) {
            let stored: std::collections::BTreeSet<i64> = {
                let mut stmt = c
                    .prepare(&format!(
                        "SELECT timestamp FROM {kt} WHERE symbol = ?1 AND freq = ?2"
                    ))
                    .unwrap();
                stmt.query_map(rusqlite::params![s, f.as_str()], |r| r.get(0))
                    .unwrap()
                    .collect::<rusqlite::Result<_>>()
                    .unwrap()
            };
            let grid: Vec<i64> = f.grid(check.start, check.end_exclusive).collect();
            let present = grid.iter().filter(|t| stored.contains(t)).count() as u64;
            let mut missing: Vec<MissingRun> = Vec::new();
            for (i, t) in grid.iter().enumerate() {
                if stored.contains(t) {
                    continue;
                }
                match missing.last_mut() {
                    Some(run) if i > 0 && grid[i - 1] == run.end => {
                        run.end = *t;
                        run.count += 1;
                    }
                    _ => missing.push(MissingRun {
                        start: *t,
                        end: *t,
                        count: 1,
                    }),
                }
            }
            let ctx = format!("{layout:?} {s} {f} {check:?}");
            assert_eq!(got.symbol, *s, "{ctx}");
            assert_eq!(got.expected, grid.len() as u64, "{ctx}");
            assert_eq!(got.present, present, "{ctx}");
            let coverage = if grid.is_empty() {
                1.0
            } else {
                present as f64 / grid.len() as f64
            };
            assert_eq!(got.coverage, coverage, "{ctx}");
            assert_eq!(got.missing, missing, "{ctx}");
            assert!(got.suspicious.is_empty(), "{ctx}: {:?}", got.suspicious);
        }
    }
    db.close().await;
}

const SYMBOLS: [&str; 4] = ["AAAUSDT", "BTCUSDT", "ETHUSDT", "ZZ9"];
const SERIES_FREQS: [Freq; 3] = [Freq::M1, Freq::H1, Freq::D1];

/// Random series with gaps: per (symbol, interval) a start, a length and a gap pattern;
/// metrics likewise; one of the layouts; a completeness range.
fn holdings() -> impl Strategy<Value = (Holdings, FileLayout, TimeRange)> {
    (
        proptest::collection::vec(
            (0usize..4, 0usize..3, 0i64..40, 1i64..90, any::<u64>()),
            0..9,
        ),
        proptest::collection::vec((0usize..4, 0i64..12), 0..12),
        proptest::collection::vec((0usize..4, 0usize..2, 0i64..40), 0..20),
        proptest::collection::vec((0usize..4, 0usize..2, 0usize..3, 0i64..40), 0..30),
        0usize..LAYOUTS.len(),
        (0i64..300, 0i64..300),
    )
        .prop_map(|(series, funding, oi, lsr, layout, (a, n))| {
            let mut h = Holdings::default();
            for (si, fi, start, len, gaps) in series {
                let f = SERIES_FREQS[fi];
                let step = f.nominal_ms();
                for i in 0..len {
                    // Keep three slots in four, the pattern given by the seed.
                    if (gaps >> (i % 64)) & 3 != 0 {
                        h.klines
                            .push((SYMBOLS[si].into(), f, JAN1 + (start + i) * step));
                    }
                }
            }
            h.funding = funding
                .into_iter()
                .map(|(s, i)| (SYMBOLS[s].into(), JAN1 + i * 8 * H))
                .collect();
            h.open_interest = oi
                .into_iter()
                .map(|(s, k, i)| (SYMBOLS[s].into(), ["5m", "1h"][k], JAN1 + i * H))
                .collect();
            h.long_short_ratio = lsr
                .into_iter()
                .map(|(s, p, r, i)| {
                    (
                        SYMBOLS[s].into(),
                        ["5m", "1h"][p],
                        ["account", "global", "position"][r],
                        JAN1 + i * H,
                    )
                })
                .collect();
            let start = JAN1 + a * 7 * M;
            let range = TimeRange::new(start, start + n * 11 * M).unwrap();
            (h, LAYOUTS[layout], range)
        })
}

#[test]
fn inspection_by_seeks_equals_a_full_scan() {
    let rt = rt();
    let config = ProptestConfig {
        cases: 40,
        ..ProptestConfig::default()
    };
    proptest!(config, |((h, layout, range) in holdings())| {
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("market.db");
            layout.write(&path, &h);
            assert_inspection_matches_scan(&path, layout, range).await;
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_by_seeks_on_hand_built_files() {
    // BTC: 1m over two hours with a hole, 1h over two days, 1d; ETH: 1m later and shorter;
    // ZZ9: 1d only. Metrics with two intervals and three (period, type) pairs.
    let mut h = Holdings::default();
    for i in 0..120 {
        if !(30..45).contains(&i) {
            h.klines.push(("BTCUSDT".into(), Freq::M1, JAN1 + i * M));
        }
    }
    for i in 0..48 {
        h.klines.push(("BTCUSDT".into(), Freq::H1, JAN1 + i * H));
    }
    for i in [0, 1, 3] {
        h.klines
            .push(("BTCUSDT".into(), Freq::D1, JAN1 + i * DAY_MS));
        h.klines
            .push(("ZZ9".into(), Freq::D1, JAN1 + (i + 5) * DAY_MS));
    }
    for i in 90..150 {
        h.klines.push(("ETHUSDT".into(), Freq::M1, JAN1 + i * M));
    }
    for i in 0..6 {
        h.funding.push(("BTCUSDT".into(), JAN1 + i * 8 * H));
        h.open_interest
            .push(("ETHUSDT".into(), "5m", JAN1 + i * 5 * M));
        h.long_short_ratio
            .push(("BTCUSDT".into(), "5m", "account", JAN1 + i * 5 * M));
    }
    h.open_interest.push(("BTCUSDT".into(), "1h", JAN1 + H));
    h.long_short_ratio
        .push(("ETHUSDT".into(), "5m", "global", JAN1));
    h.long_short_ratio
        .push(("ETHUSDT".into(), "1h", "account", JAN1 + 2 * H));
    let check = TimeRange::new(JAN1 + 20 * M, JAN1 + 100 * M).unwrap();
    for layout in LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("market.db");
        layout.write(&path, &h);
        assert_inspection_matches_scan(&path, layout, check).await;
        let db = AsyncMarketDB::open_with(StoreConfig::read_only(&path))
            .await
            .unwrap();
        let s = db.get_data_summary().await.unwrap();
        let counts: Vec<(String, u64, u64)> = s
            .market_data
            .iter()
            .map(|k| (k.freq.clone(), k.record_count, k.unique_symbols))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("1d".to_owned(), 6, 2),
                ("1h".to_owned(), 48, 1),
                ("1m".to_owned(), 165, 2)
            ],
            "{layout:?}"
        );
        assert_eq!(s.long_short_ratio.len(), 3);
        assert_eq!(s.open_interest[1].record_count, 6);
        let r = db.check_completeness(check, Freq::M1, &[]).await.unwrap();
        let got: Vec<(u64, u64)> = r.symbols.iter().map(|s| (s.expected, s.present)).collect();
        assert_eq!(got, vec![(80, 65), (80, 10)], "{layout:?}");
        db.close().await;
    }
}

/// A read split across two readers equals the one-snapshot read, and stays one state while a
/// writer commits: every frame read during the writes holds whole commits (each adds the
/// same hour to every symbol), never one symbol ahead of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_reads_equal_one_snapshot_and_never_mix_two_states() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("market.db");
    let open_with = |min: u64| {
        let mut config = StoreConfig::new(&path);
        config.pool.readers = 2;
        config.parallel_read_min_bars = min;
        AsyncMarketDB::open_with(config)
    };
    let split = open_with(0).await.unwrap();
    let whole = open_with(u64::MAX).await.unwrap();
    let names = ["AAA", "BBB", "CCC", "DDD", "EEE"];
    for s in names {
        split
            .store_data(minute_bars(s, JAN1, 600, |i| i % 37 == 5), Freq::M1)
            .await
            .unwrap();
    }
    let range = TimeRange::new(JAN1, JAN1 + 30 * H).unwrap();
    for symbols in [
        syms(&[]),
        syms(&["EEE", "AAA", "CCC"]),
        syms(&["BBB", "ZZZ"]),
    ] {
        let a = split
            .read_data(range, Freq::M1, &symbols, &[], false)
            .await
            .unwrap();
        let b = whole
            .read_data(range, Freq::M1, &symbols, &[], false)
            .await
            .unwrap();
        assert_eq!(a, b, "symbols {symbols:?}");
        assert!(!a.is_empty());
    }
    // Each quiet read was split; whether its halves were joined depends on the two readers
    // overlapping in time (a loaded machine may run them one after the other, and the read
    // then runs again in one snapshot), so only the attempts are counted.
    let (joined, again) = split.split_read_counts();
    assert_eq!(joined + again, 3, "the three quiet reads were split");
    assert_eq!(whole.split_read_counts(), (0, 0));

    // A writer adds one hour to every symbol per commit while the split reads run.
    let writer = {
        let db = whole.clone();
        tokio::spawn(async move {
            for h in 10..40 {
                let mut rows = Vec::new();
                for s in names {
                    rows.extend(minute_bars(s, JAN1 + h * H, 60, |_| false));
                }
                db.store_data(rows, Freq::M1).await.unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let frame = split
            .read_data(range, Freq::M1, &[], &[Feature::Close], false)
            .await
            .unwrap();
        let counts: Vec<usize> = frame.symbols().iter().map(|(_, r)| r.len()).collect();
        assert_eq!(counts.len(), names.len());
        assert!(
            counts.windows(2).all(|w| w[0] == w[1]),
            "a read mixed two states: {counts:?}"
        );
        reads += 1;
    }
    writer.await.unwrap();
    let (joined, again) = split.split_read_counts();
    assert_eq!(joined + again, 3 + reads, "every read was split");
}

/// The change record as the rows of `table` say it should be: (key1, key2, symbol, day,
/// rows, first, last), in key order.
fn record_truth(c: &rusqlite::Connection, table: &str, k1: &str, k2: &str) -> Vec<[String; 7]> {
    let sql = format!(
        "SELECT {k1}, {k2}, symbol, timestamp / 86400000 AS day, COUNT(*), MIN(timestamp), \
         MAX(timestamp) FROM {table} GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    );
    rows_of(c, &sql)
}

fn record_of(c: &rusqlite::Connection, table: &str) -> Vec<[String; 7]> {
    let sql = format!(
        "SELECT key1, key2, symbol, day, rows, first_ts, last_ts FROM marketdb_changes \
         WHERE tbl = '{table}' ORDER BY key1, key2, symbol, day"
    );
    rows_of(c, &sql)
}

fn rows_of(c: &rusqlite::Connection, sql: &str) -> Vec<[String; 7]> {
    let mut stmt = c.prepare(sql).unwrap();
    stmt.query_map([], |r| {
        let mut out: [String; 7] = Default::default();
        for (i, slot) in out.iter_mut().enumerate() {
            *slot = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
                other => format!("{other:?}"),
            };
        }
        Ok(out)
    })
    .unwrap()
    .collect::<rusqlite::Result<Vec<_>>>()
    .unwrap()
}

/// Every table's record equals what its rows say.
fn assert_record_exact(c: &rusqlite::Connection) {
    for (table, k1, k2) in [
        ("market_data", "freq", "''"),
        ("funding_rate", "''", "''"),
        ("open_interest", "interval", "''"),
        ("long_short_ratio", "period", "ratio_type"),
    ] {
        assert_eq!(
            record_of(c, table),
            record_truth(c, table, k1, k2),
            "the change record of {table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_record_follows_every_writer_and_the_summary_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    let minutes = |from: i64, n: i64| (0..n).map(|i| from + i * M).collect::<Vec<_>>();
    let mut rows = bars("AAA", Freq::M1, &minutes(JAN1 + 23 * H, 180));
    rows.extend(bars("BBB", Freq::M1, &minutes(JAN1, 90)));
    db.store_data(rows, Freq::M1).await.unwrap();
    db.store_data(bars("AAA", Freq::H1, &[JAN1, JAN1 + H]), Freq::H1)
        .await
        .unwrap();
    db.store_funding_rate(vec![FundingRate {
        symbol: "AAA".into(),
        funding_time: JAN1 + 8 * H,
        funding_rate: 0.0001,
        mark_price: None,
        index_price: None,
    }])
    .await
    .unwrap();
    db.store_metrics(
        vec![OpenInterest {
            symbol: "AAA".into(),
            time: JAN1,
            interval: Freq::M5,
            open_interest: 1.0,
            open_interest_value: Some(2.0),
        }],
        vec![LongShortRatio {
            symbol: "AAA".into(),
            timestamp: JAN1 + DAY_MS,
            period: Freq::M5,
            ratio_type: RatioType::TakerVol,
            long_short_ratio: 0.9,
            long_account: None,
            short_account: None,
        }],
    )
    .await
    .unwrap();
    // Deletes through the store: the triggers record them.
    db.delete_range(
        &syms(&["AAA"]),
        TimeRange {
            start: JAN1 + DAY_MS,
            end_exclusive: JAN1 + DAY_MS + 30 * M,
        },
        Freq::M1,
    )
    .await
    .unwrap();
    let c = raw(dir.path());
    assert_record_exact(&c);
    let stale = |c: &rusqlite::Connection| -> i64 {
        c.query_row(
            "SELECT COUNT(*) FROM marketdb_changes WHERE stale = 1",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(stale(&c), 0, "marketdb's writes leave nothing stale");

    // Another program writes: an upsert, a new symbol two days on, an update, a delete.
    python_insert(&c, &bar("AAA", Freq::M1, JAN1 + 23 * H, 99.0), "1m");
    python_insert(&c, &bar("CCC", Freq::M1, JAN1 + 2 * DAY_MS, 1.0), "1m");
    c.execute(
        "UPDATE market_data SET close_price = 1.5 WHERE symbol = 'BBB' AND timestamp = ?1",
        [JAN1],
    )
    .unwrap();
    c.execute(
        "DELETE FROM market_data WHERE symbol = 'BBB' AND timestamp >= ?1",
        [JAN1 + 60 * M],
    )
    .unwrap();
    c.execute("DELETE FROM funding_rate", []).unwrap();
    // Four days: AAA and BBB on the 1st, CCC on the 3rd, the funding day.
    assert_eq!(
        stale(&c),
        4,
        "the triggers marked what the other program changed"
    );

    // Readers use the record and count the stale days: the summary equals the rows.
    let summary = db.get_data_summary().await.unwrap();
    let truth: Vec<(String, i64, i64, i64, i64)> = c
        .prepare(
            "SELECT freq, COUNT(*), COUNT(DISTINCT symbol), MIN(timestamp), MAX(timestamp) \
             FROM market_data GROUP BY freq ORDER BY freq",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let got: Vec<(String, i64, i64, i64, i64)> = summary
        .market_data
        .iter()
        .map(|k| {
            (
                k.freq.clone(),
                k.record_count as i64,
                k.unique_symbols as i64,
                k.earliest_timestamp.unwrap(),
                k.latest_timestamp.unwrap(),
            )
        })
        .collect();
    assert_eq!(got, truth);
    assert_eq!(summary.funding_rate.record_count, 0);
    assert_eq!(summary.funding_rate.earliest_timestamp, None);
    assert_eq!(stale(&c), 4, "a read changes nothing");

    // The next marketdb write settles every stale day, its own and the other program's.
    db.store_data(bars("DDD", Freq::M1, &[JAN1]), Freq::M1)
        .await
        .unwrap();
    assert_eq!(stale(&c), 0);
    assert_record_exact(&c);

    // A write to a data table that does not declare itself is refused on the store's
    // writer, so no new write path can skip the record.
    let err = db
        .pool()
        .write(|tx| {
            tx.execute("DELETE FROM market_data", [])
                .map_err(marketdb_pool::Error::from)
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not authorized"), "{err}");
    // Whatever the case of the table's name.
    let err = db
        .pool()
        .write(|tx| {
            tx.execute("UPDATE Market_Data SET volume = 0", [])
                .map_err(marketdb_pool::Error::from)
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not authorized"), "{err}");
    assert_record_exact(&c);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_record_cannot_place_make_the_summary_count_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    db.store_data(
        bars("AAA", Freq::M1, &[JAN1, JAN1 + M, JAN1 + 2 * M]),
        Freq::M1,
    )
    .await
    .unwrap();
    // Another program stores a timestamp that is text, and a row with an empty interval.
    let c = raw(dir.path());
    c.execute_batch(
        "INSERT INTO market_data (symbol, timestamp, freq) VALUES ('AAA', 'x', '1m'), \
         ('BBB', 5, '')",
    )
    .unwrap();
    let truth = |c: &rusqlite::Connection| -> Vec<(String, i64, i64)> {
        c.prepare(
            "SELECT freq, COUNT(*), COUNT(DISTINCT symbol) FROM market_data GROUP BY freq \
             ORDER BY freq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap()
    };
    let got = |s: &marketdb_store::DataSummary| -> Vec<(String, i64, i64)> {
        s.market_data
            .iter()
            .map(|k| {
                (
                    k.freq.clone(),
                    k.record_count as i64,
                    k.unique_symbols as i64,
                )
            })
            .collect()
    };
    // Stale (a read), then settled by marketdb's next write: counted from the rows both times.
    assert_eq!(got(&db.get_data_summary().await.unwrap()), truth(&c));
    db.store_data(bars("CCC", Freq::M1, &[JAN1]), Freq::M1)
        .await
        .unwrap();
    assert_eq!(got(&db.get_data_summary().await.unwrap()), truth(&c));
    assert_eq!(truth(&c).iter().map(|t| t.1).sum::<i64>(), 6);
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_counts_whole_days_from_the_record_and_reads_every_other_day() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path()).await;
    // AAA: days 1-3 whole, day 4 with a 10-minute hole; BBB: days 1-2 whole, day 3 half.
    let aaa = minute_bars("AAA", JAN1, 4 * 1440, |i| {
        (3 * 1440 + 100..3 * 1440 + 110).contains(&i)
    });
    db.store_data(aaa, Freq::M1).await.unwrap();
    db.store_data(
        minute_bars("BBB", JAN1, 2 * 1440 + 720, |_| false),
        Freq::M1,
    )
    .await
    .unwrap();
    let c = raw(dir.path());
    let vouched: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM marketdb_changes WHERE stale = 0 AND unchecked = 0 \
             AND rows = 1440",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(vouched, 3 + 2, "the record vouches for the five whole days");
    // Another program adds an off-grid row to a whole day of AAA and breaks a bar of BBB:
    // those days are no longer vouched for, even after marketdb's next write settles them.
    let mut odd = bar("AAA", Freq::M1, JAN1 + DAY_MS + 30_000, 1.0);
    odd.close_time = odd.open_time + M - 1;
    python_insert(&c, &odd, "1m");
    c.execute(
        "UPDATE market_data SET high_price = low_price - 1 WHERE symbol = 'BBB' AND timestamp = ?1",
        [JAN1 + 5 * M],
    )
    .unwrap();
    db.store_data(bars("CCC", Freq::M1, &[JAN1]), Freq::M1)
        .await
        .unwrap();
    let range = TimeRange::parse("2024-01-01", "2024-01-05").unwrap();
    let fast = db.check_completeness(range, Freq::M1, &[]).await.unwrap();
    let a = &fast.symbols[0];
    assert_eq!((a.expected, a.present), (5 * 1440, 4 * 1440 - 10));
    assert_eq!(a.suspicious.len(), 1, "{:?}", a.suspicious);
    assert_eq!(a.suspicious[0].timestamp, JAN1 + DAY_MS + 30_000);
    let b = &fast.symbols[1];
    assert_eq!(b.present, 2 * 1440 + 720);
    assert_eq!(b.suspicious.len(), 1, "{:?}", b.suspicious);
    db.close().await;

    // The same file without its record: every row read, the same report.
    let copy = tempfile::tempdir().unwrap();
    for side in ["", "-wal"] {
        let from = dir.path().join(format!("market.db{side}"));
        if from.exists() {
            std::fs::copy(from, copy.path().join(format!("market.db{side}"))).unwrap();
        }
    }
    let c = raw(copy.path());
    c.execute_batch("DROP TABLE marketdb_changes").unwrap();
    drop(c);
    let slow_db = AsyncMarketDB::open_read_only(copy.path().join("market.db"))
        .await
        .unwrap();
    let slow = slow_db
        .check_completeness(range, Freq::M1, &[])
        .await
        .unwrap();
    assert_eq!(fast, slow);
    slow_db.close().await;
}
