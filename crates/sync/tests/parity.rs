//! Parity of the blocking facade with the async store: the same random sequence of calls
//! goes through `MarketDB` and `AsyncMarketDB` on two files, and every result is equal.
//! Also: calling the blocking facade inside a runtime is a clear error, not a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use marketdb_model::{DAY_MS, Feature, Freq, Kline, TimeRange};
use marketdb_store::{AsyncMarketDB, IncompletePolicy};
use marketdb_sync::{Error, MarketDB};
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
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

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

#[test]
fn inside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    let sync = MarketDB::open(&path).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt.block_on(async { sync.get_symbols(None) }).unwrap_err();
    assert!(matches!(err, Error::InsideRuntime), "{err}");
    assert!(err.to_string().contains("use AsyncMarketDB"));
    let err = rt.block_on(async { MarketDB::open(&path) }).unwrap_err();
    assert!(matches!(err, Error::InsideRuntime));
    // Outside the runtime it still works.
    assert_eq!(sync.get_symbols(None).unwrap(), Vec::<String>::new());
}
