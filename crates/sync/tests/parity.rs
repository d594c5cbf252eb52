//! Parity of the blocking facade with the async store: the same random sequence of calls
//! goes through `MarketDB` and `AsyncMarketDB` on two files, and every result is equal.
//! Also: calling the blocking facade inside a runtime is a clear error, not a panic.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use marketdb_export::NumpyExport;
use marketdb_model::time::DAY_MS;
use marketdb_model::{
    Feature, Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType, TimeRange,
};
use marketdb_store::{AsyncMarketDB, IncompletePolicy, ScanChunk};
use marketdb_sync::{Error, ExportRequest, MarketDB};
use proptest::prelude::*;

const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z

#[derive(Clone, Debug)]
enum Call {
    Store {
        symbol: usize,
        start: i64,
        n: usize,
        price: f64,
    },
    Read {
        from_h: i64,
        hours: i64,
        features: usize,
    },
    Delete {
        symbol: usize,
        from_h: i64,
        hours: i64,
    },
    Summary,
    Check {
        hours: i64,
    },
    Resample,
    Latest {
        limit: usize,
    },
    StoreFunding {
        symbol: usize,
        n: usize,
        rate: f64,
    },
    StoreMetrics {
        symbol: usize,
        n: usize,
        level: f64,
    },
    ReadMetrics {
        from_h: i64,
        hours: i64,
    },
    Inspect {
        symbol: usize,
    },
    Scan {
        rows: usize,
    },
}

const SYMBOLS: [&str; 3] = ["AAAUSDT", "BBBUSDT", "CCCUSDT"];

fn bars(symbol: &str, start_h: i64, n: usize, price: f64) -> Vec<Kline> {
    (0..n as i64)
        .map(|i| {
            let p = price + i as f64;
            Kline {
                symbol: symbol.to_owned(),
                open_time: T0 + (start_h + i) * 3_600_000,
                open: p,
                high: p + 2.0,
                low: p - 1.0,
                close: p + 1.0,
                volume: 10.0 + i as f64,
                close_time: T0 + (start_h + i + 1) * 3_600_000 - 1,
                quote_volume: 1000.0,
                trades_count: 3 + i,
                taker_buy_volume: 5.0,
                taker_buy_quote_volume: 500.0,
            }
        })
        .collect()
}

fn call() -> impl Strategy<Value = Call> {
    prop_oneof![
        (0..3usize, 0..72i64, 1..30usize, 1.0..1000.0f64).prop_map(|(symbol, start, n, price)| {
            Call::Store {
                symbol,
                start,
                n,
                price,
            }
        }),
        (0..72i64, 1..72i64, 0..3usize).prop_map(|(from_h, hours, features)| Call::Read {
            from_h,
            hours,
            features
        }),
        (0..3usize, 0..72i64, 1..10i64).prop_map(|(symbol, from_h, hours)| Call::Delete {
            symbol,
            from_h,
            hours
        }),
        Just(Call::Summary),
        (1..96i64).prop_map(|hours| Call::Check { hours }),
        Just(Call::Resample),
        (1..5usize).prop_map(|limit| Call::Latest { limit }),
        (0..3usize, 1..10usize, -0.001..0.001f64)
            .prop_map(|(symbol, n, rate)| Call::StoreFunding { symbol, n, rate }),
        (0..3usize, 1..30usize, 0.0..1e6f64).prop_map(|(symbol, n, level)| Call::StoreMetrics {
            symbol,
            n,
            level
        }),
        (0..72i64, 1..72i64).prop_map(|(from_h, hours)| Call::ReadMetrics { from_h, hours }),
        (0..3usize).prop_map(|symbol| Call::Inspect { symbol }),
        (1..50usize).prop_map(|rows| Call::Scan { rows }),
    ]
}

fn range_h(from_h: i64, hours: i64) -> TimeRange {
    TimeRange::new(T0 + from_h * 3_600_000, T0 + (from_h + hours) * 3_600_000).unwrap()
}

fn all() -> Vec<String> {
    SYMBOLS.iter().map(|s| s.to_string()).collect()
}

/// Runs one call on both databases and returns both results rendered comparably.
fn apply(
    call: &Call,
    sync: &MarketDB,
    rt: &tokio::runtime::Runtime,
    db: &AsyncMarketDB,
) -> (String, String) {
    let feats = [
        vec![],
        vec![Feature::Close, Feature::Vwap],
        vec![Feature::TradesCount],
    ];
    match call {
        Call::Store {
            symbol,
            start,
            n,
            price,
        } => {
            let data = bars(SYMBOLS[*symbol], *start, *n, *price);
            let a = sync
                .store_data(data.clone(), Freq::H1)
                .map_err(|e| e.to_string());
            let b = rt
                .block_on(db.store_data(data, Freq::H1))
                .map_err(|e| e.to_string());
            (format!("{a:?}"), format!("{b:?}"))
        }
        Call::Read {
            from_h,
            hours,
            features,
        } => {
            let r = range_h(*from_h, *hours);
            let f = &feats[*features];
            let a = sync.read_data(r, Freq::H1, &all(), f, false).unwrap();
            let b = rt
                .block_on(db.read_data(r, Freq::H1, &all(), f, false))
                .unwrap();
            (format!("{a:?}"), format!("{b:?}"))
        }
        Call::Delete {
            symbol,
            from_h,
            hours,
        } => {
            let r = range_h(*from_h, *hours);
            let s = vec![SYMBOLS[*symbol].to_owned()];
            let a = sync.delete_range(&s, r, Freq::H1).unwrap();
            let b = rt.block_on(db.delete_range(&s, r, Freq::H1)).unwrap();
            (a.to_string(), b.to_string())
        }
        Call::Summary => {
            let a = serde_json::to_value(sync.get_data_summary().unwrap()).unwrap();
            let b = serde_json::to_value(rt.block_on(db.get_data_summary()).unwrap()).unwrap();
            (a.to_string(), b.to_string())
        }
        Call::Check { hours } => {
            let r = range_h(0, *hours);
            let a = serde_json::to_value(sync.check_completeness(r, Freq::H1, &all()).unwrap())
                .unwrap();
            let b = serde_json::to_value(
                rt.block_on(db.check_completeness(r, Freq::H1, &all()))
                    .unwrap(),
            )
            .unwrap();
            (a.to_string(), b.to_string())
        }
        Call::Resample => {
            let r = TimeRange::new(T0, T0 + 3 * DAY_MS).unwrap();
            let a = sync
                .resample(r, Freq::H1, Freq::D1, &all(), IncompletePolicy::Keep)
                .unwrap();
            let b = rt
                .block_on(db.resample(r, Freq::H1, Freq::D1, &all(), IncompletePolicy::Keep))
                .unwrap();
            (
                format!("{:?} {}", a.frame, a.incomplete),
                format!("{:?} {}", b.frame, b.incomplete),
            )
        }
        Call::Latest { limit } => {
            let a = sync.get_latest(&all(), Freq::H1, *limit).unwrap();
            let b = rt
                .block_on(db.get_latest(&all(), Freq::H1, *limit))
                .unwrap();
            (format!("{a:?}"), format!("{b:?}"))
        }
        Call::StoreFunding { symbol, n, rate } => {
            let data: Vec<FundingRate> = (0..*n as i64)
                .map(|i| FundingRate {
                    symbol: SYMBOLS[*symbol].to_owned(),
                    funding_time: T0 + i * 8 * 3_600_000,
                    funding_rate: rate + i as f64 * 1e-6,
                    mark_price: (i % 2 == 0).then_some(100.0 + i as f64),
                    index_price: None,
                })
                .collect();
            let a = sync.store_funding_rate(data.clone()).unwrap();
            let b = rt.block_on(db.store_funding_rate(data)).unwrap();
            (a.to_string(), b.to_string())
        }
        Call::StoreMetrics { symbol, n, level } => {
            let sym = SYMBOLS[*symbol].to_owned();
            let oi: Vec<OpenInterest> = (0..*n as i64)
                .map(|i| OpenInterest {
                    symbol: sym.clone(),
                    time: T0 + i * 300_000,
                    interval: Freq::M5,
                    open_interest: level + i as f64,
                    open_interest_value: Some(0.0),
                })
                .collect();
            let lsr: Vec<LongShortRatio> = (0..*n as i64)
                .map(|i| LongShortRatio {
                    symbol: sym.clone(),
                    timestamp: T0 + i * 300_000,
                    period: Freq::M5,
                    ratio_type: RatioType::ALL[i as usize % 4],
                    long_short_ratio: 1.0 + i as f64 / 10.0,
                    long_account: None,
                    short_account: Some(0.5),
                })
                .collect();
            let a = sync.store_metrics(oi.clone(), lsr.clone()).unwrap();
            let b = rt.block_on(db.store_metrics(oi, lsr)).unwrap();
            (a.to_string(), b.to_string())
        }
        Call::ReadMetrics { from_h, hours } => {
            let r = range_h(*from_h, *hours);
            let a = (
                sync.read_funding_rate(r, &all(), false).unwrap(),
                sync.read_open_interest(r, &all(), Freq::M5, false).unwrap(),
                sync.read_long_short_ratio(r, &all(), Freq::M5, RatioType::TakerVol, false)
                    .unwrap(),
            );
            let b = (
                rt.block_on(db.read_funding_rate(r, &all(), false)).unwrap(),
                rt.block_on(db.read_open_interest(r, &all(), Freq::M5, false))
                    .unwrap(),
                rt.block_on(db.read_long_short_ratio(
                    r,
                    &all(),
                    Freq::M5,
                    RatioType::TakerVol,
                    false,
                ))
                .unwrap(),
            );
            (format!("{a:?}"), format!("{b:?}"))
        }
        Call::Inspect { symbol } => {
            let s = SYMBOLS[*symbol];
            let r = range_h(0, 48);
            let a = (
                sync.count(s, Freq::H1, None).unwrap(),
                sync.get_time_range(s, Freq::H1).unwrap(),
                sync.get_available_dates(s, Freq::H1).unwrap(),
                sync.data_exists(s, r, Freq::H1).unwrap(),
                sync.get_frequencies(s).unwrap(),
                sync.get_symbols(None).unwrap(),
            );
            let b = (
                rt.block_on(db.count(s, Freq::H1, None)).unwrap(),
                rt.block_on(db.get_time_range(s, Freq::H1)).unwrap(),
                rt.block_on(db.get_available_dates(s, Freq::H1)).unwrap(),
                rt.block_on(db.data_exists(s, r, Freq::H1)).unwrap(),
                rt.block_on(db.get_frequencies(s)).unwrap(),
                rt.block_on(db.get_symbols(None)).unwrap(),
            );
            (format!("{a:?}"), format!("{b:?}"))
        }
        Call::Scan { rows } => {
            let r = range_h(0, 96);
            let a: Vec<String> = sync
                .scan(r, Freq::H1, &all(), &[], ScanChunk::Rows(*rows))
                .unwrap()
                .map(|f| format!("{:?}", f.unwrap()))
                .collect();
            let mut stream = {
                let _guard = rt.enter();
                db.scan(r, Freq::H1, &all(), &[], ScanChunk::Rows(*rows))
            };
            let mut b = Vec::new();
            while let Some(f) = rt.block_on(stream.next()) {
                b.push(format!("{:?}", f.unwrap()));
            }
            (a.join("\n"), b.join("\n"))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn sync_facade_equals_async_api(calls in prop::collection::vec(call(), 1..25)) {
        let dir = tempfile::tempdir().unwrap();
        let sync = MarketDB::open(dir.path().join("sync.db")).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let db = rt.block_on(AsyncMarketDB::open(dir.path().join("async.db"))).unwrap();
        for c in &calls {
            let (a, b) = apply(c, &sync, &rt, &db);
            prop_assert_eq!(a, b, "call {:?}", c);
        }
        rt.block_on(db.close());
        sync.close().unwrap();
    }
}

/// Opens, writes, reads and scans through the blocking facade from wherever it is called.
fn exercise(path: &std::path::Path, symbol: &str) {
    let sync = MarketDB::open(path).unwrap();
    sync.store_data(bars(symbol, 0, 5, 10.0), Freq::H1).unwrap();
    let frame = sync
        .read_data(range_h(0, 24), Freq::H1, &[symbol.to_owned()], &[], true)
        .unwrap();
    assert_eq!(frame.len(), 5);
    let scanned: usize = sync
        .scan(range_h(0, 24), Freq::H1, &[], &[], ScanChunk::Rows(2))
        .unwrap()
        .map(|f| f.unwrap().len())
        .sum();
    assert!(scanned >= 5);
    sync.close().unwrap();
}

#[test]
fn the_blocking_facade_works_wherever_a_thread_may_block() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    // A plain thread.
    exercise(&path, "PLAIN");
    let multi = tokio::runtime::Runtime::new().unwrap();
    // Inside spawn_blocking, under Runtime::enter, and on a worker (an async task).
    let p = path.clone();
    multi
        .block_on(multi.spawn_blocking(move || exercise(&p, "BLOCKING")))
        .unwrap();
    {
        let _guard = multi.enter();
        exercise(&path, "ENTERED");
    }
    let p = path.clone();
    multi
        .block_on(multi.spawn(async move { exercise(&p, "WORKER") }))
        .unwrap();
    // In block_on of a multi-thread runtime, and on a current-thread runtime's thread.
    multi.block_on(async { exercise(&path, "BLOCKON") });
    let current = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    current.block_on(async { exercise(&path, "CURRENT") });
    let p = path.clone();
    current
        .block_on(current.spawn_blocking(move || exercise(&p, "CURBLOCK")))
        .unwrap();
    let sync = MarketDB::open(&path).unwrap();
    assert_eq!(sync.get_symbols(Some(Freq::H1)).unwrap().len(), 7);
    // A closed facade says so.
    drop(sync);
    let _ = Error::Closed.to_string();
}

#[test]
fn blocking_exports_write_what_was_stored() {
    let dir = tempfile::tempdir().unwrap();
    let db = MarketDB::open(dir.path().join("m.db")).unwrap();
    // Two whole days of 1h bars for two symbols.
    db.store_data(bars("AAAUSDT", 0, 48, 100.0), Freq::H1)
        .unwrap();
    db.store_data(bars("BBBUSDT", 0, 48, 200.0), Freq::H1)
        .unwrap();

    // The 1.9 call: both days whole, end day included.
    let out = dir.path().join("files");
    let report = db
        .export_to_files(&out, "2024-01-01", "2024-01-02", Freq::H1, &[])
        .unwrap();
    assert_eq!(report.days.len(), 2);
    let export = NumpyExport::open(&out).unwrap();
    assert_eq!(export.days(Freq::H1).unwrap(), ["20240101", "20240102"]);
    for (d, date) in ["20240101", "20240102"].iter().enumerate() {
        let want: Vec<i64> = (0..24)
            .map(|h| T0 + (d as i64 * 24 + h) * 3_600_000)
            .collect();
        assert_eq!(export.timestamps(Freq::H1, date).unwrap(), want);
        assert_eq!(
            export.symbols(Freq::H1, date).unwrap(),
            ["AAAUSDT", "BBBUSDT"]
        );
        // Bar i closes at price + i + 1.
        let cls = export.matrix(Freq::H1, Feature::Close, date).unwrap();
        assert_eq!((cls.rows(), cls.cols()), (2, 24));
        for h in 0..24 {
            let i = (d * 24 + h) as f64;
            assert_eq!(cls.get_f64(0, h), Some(100.0 + i + 1.0));
            assert_eq!(cls.get_f64(1, h), Some(200.0 + i + 1.0));
        }
    }
    assert!(matches!(
        db.export_to_files(&out, "2024-13-01", "2024-01-02", Freq::H1, &[]),
        Err(Error::Export(_))
    ));

    // CSV of one symbol: every stored value, in order.
    let range = TimeRange::new(T0, T0 + 48 * 3_600_000).unwrap();
    let mut req = ExportRequest::new(vec!["BBBUSDT".into()], range, Freq::H1);
    req.features = vec![Feature::Close, Feature::TradesCount];
    let csv_path = dir.path().join("b.csv");
    db.export_to_csv(&req, &csv_path).unwrap();
    let text = std::fs::read_to_string(&csv_path).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows[0], "symbol,timestamp,datetime,cls,tnum");
    assert_eq!(rows.len(), 49);
    for (i, row) in rows[1..].iter().enumerate() {
        let f: Vec<&str> = row.split(',').collect();
        assert_eq!(f[1].parse::<i64>().unwrap(), T0 + i as i64 * 3_600_000);
        assert_eq!(f[3].parse::<f64>().unwrap(), 200.0 + i as f64 + 1.0);
        assert_eq!(f[4].parse::<i64>().unwrap(), 3 + i as i64);
    }
    // Statistics in memory: count 48, mean of tnum 3..=50 is 26.5, min and max of cls.
    let stats = db.summary_statistics(&req).unwrap();
    let tnum = stats[0].features[1].1;
    assert_eq!(
        (tnum.count, tnum.mean, tnum.min, tnum.max),
        (48, 26.5, 3.0, 50.0)
    );
    let cls = stats[0].features[0].1;
    assert_eq!((cls.min, cls.max), (201.0, 248.0));
    // Parquet and the statistics file are written where asked.
    let pq = dir.path().join("b.parquet");
    assert_eq!(db.export_to_parquet(&req, &pq).unwrap().rows, 48);
    assert!(pq.is_file());
    // The dataset, and its import into another database through the blocking facade.
    let lake = marketdb_dataset::DatasetLocation::Local(dir.path().join("lake"));
    let published = db
        .export_dataset(&marketdb_dataset::DatasetRequest::default(), &lake)
        .unwrap();
    assert!(!published.written.is_empty());
    let other = MarketDB::open(dir.path().join("other.db")).unwrap();
    let imported = other.import_dataset(&lake).unwrap();
    assert_eq!(imported.imported, published.written);
    assert_eq!(imported.rows, published.rows);
    let back = other
        .read_data(
            range,
            Freq::H1,
            &["BBBUSDT".to_owned()],
            &[Feature::Close],
            true,
        )
        .unwrap();
    assert_eq!(back.len(), 48);
    other.close().unwrap();
    // The database itself is never an export target.
    assert!(db.export_to_csv(&req, dir.path().join("m.db")).is_err());
    db.close().unwrap();
    let err = db.export_to_csv(&req, &csv_path).unwrap_err();
    assert!(matches!(err, Error::Export(_)), "{err:?}");
}
