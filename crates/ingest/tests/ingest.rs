//! End-to-end tests of marketdb-ingest on Binance Vision files that the tests write
//! themselves into temporary folders: plain and zipped CSVs, with and without headers,
//! microsecond spot rows, monthly klines, funding and metrics files, good and bad
//! `.CHECKSUM` files, bad lines in both modes, and broken archives. Every parsed value is
//! compared with the value written.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::io::Write;
use std::path::{Path, PathBuf};

use marketdb_ingest::{
    BadRows, Error, FileKind, FileSpec, Overrides, Parsed, ParsedFile, discover, parse_file,
    parse_file_with_progress,
};
use marketdb_model::{Freq, FundingRate, Kline, LongShortRatio, OpenInterest, RatioType};
use sha2::{Digest, Sha256};
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

const T0: i64 = 1_704_067_200_000; // 2024-01-01T00:00:00Z
const KLINE_HEADER: &str = "open_time,open,high,low,close,volume,close_time,quote_volume,count,\
                            taker_buy_volume,taker_buy_quote_volume,ignore";

// ---------------------------------------------------------------------------------------
// Fixture helpers

/// A valid 1m kline number `i` of the day starting at `T0`, with values that exercise
/// decimals (every f64 is written with Rust's shortest round-trip form).
fn kline(i: i64) -> Kline {
    let open = 100.0 + (i % 50) as f64 * 0.25 + 0.01;
    let volume = 10.0 + i as f64 * 0.001;
    let quote_volume = volume * open;
    Kline {
        symbol: "BTCUSDT".into(),
        open_time: T0 + i * 60_000,
        open,
        high: open + 1.5,
        low: open - 1.25,
        close: open + 0.5,
        volume,
        close_time: T0 + i * 60_000 + 59_999,
        quote_volume,
        trades_count: i * 3,
        taker_buy_volume: volume / 3.0,
        taker_buy_quote_volume: quote_volume / 3.0,
    }
}

/// The Binance CSV line of `k`; timestamps in µs when `micros`.
fn kline_line(k: &Kline, micros: bool) -> String {
    let scale = if micros { 1000 } else { 1 };
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},0",
        k.open_time * scale,
        k.open,
        k.high,
        k.low,
        k.close,
        k.volume,
        k.close_time * scale + if micros { 999 } else { 0 },
        k.quote_volume,
        k.trades_count,
        k.taker_buy_volume,
        k.taker_buy_quote_volume
    )
}

fn kline_csv(rows: &[Kline], header: bool, micros: bool) -> String {
    let mut out = String::new();
    if header {
        out.push_str(KLINE_HEADER);
        out.push('\n');
    }
    for k in rows {
        out.push_str(&kline_line(k, micros));
        out.push('\n');
    }
    out
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Writes a zip holding `entries` (name, content), deflated.
fn write_zip(path: &Path, entries: &[(&str, &str)]) -> PathBuf {
    write_zip_with(path, entries, CompressionMethod::Deflated)
}

fn write_zip_with(path: &Path, entries: &[(&str, &str)], method: CompressionMethod) -> PathBuf {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, content) in entries {
        zip.start_file(*name, options).unwrap();
        zip.write_all(content.as_bytes()).unwrap();
    }
    zip.finish().unwrap();
    path.to_path_buf()
}

/// Writes `path.CHECKSUM` in Binance's format, with the real digest or a wrong one.
fn write_checksum(path: &Path, correct: bool) -> String {
    let mut digest = hex(&Sha256::digest(std::fs::read(path).unwrap()));
    if !correct {
        digest = digest.replace(&digest[..4], "0000");
    }
    let name = path.file_name().unwrap().to_string_lossy();
    let mut sidecar = path.as_os_str().to_owned();
    sidecar.push(".CHECKSUM");
    std::fs::write(sidecar, format!("{digest}  {name}\n")).unwrap();
    digest
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(path: &Path) -> ParsedFile {
    parse_file(path, &Overrides::default(), BadRows::Fail).unwrap()
}

fn parse_err(path: &Path) -> Error {
    parse_file(path, &Overrides::default(), BadRows::Fail).unwrap_err()
}

fn klines_of(parsed: &ParsedFile) -> (Freq, &[Kline]) {
    match &parsed.data {
        Parsed::Klines { freq, rows } => (*freq, rows),
        other => panic!("expected klines, got {other:?}"),
    }
}

fn day_of_klines(n: i64) -> Vec<Kline> {
    (0..n).map(kline).collect()
}

// ---------------------------------------------------------------------------------------
// Klines

#[test]
fn plain_spot_csv_without_header_every_value_exact() {
    let dir = tempfile::tempdir().unwrap();
    let rows = day_of_klines(1440);
    let path = write(
        &dir.path().join("BTCUSDT-1m-2024-01-01.csv"),
        &kline_csv(&rows, false, false),
    );
    let parsed = parse(&path);
    assert_eq!(parsed.path, path);
    assert_eq!(
        parsed.spec,
        FileSpec {
            kind: FileKind::Klines,
            symbol: "BTCUSDT".into(),
            freq: Some(Freq::M1)
        }
    );
    assert!(!parsed.checksum_verified, "no CHECKSUM file was written");
    assert!(parsed.rejected.is_empty());
    assert_eq!(parsed.lines, 1440);
    let (freq, got) = klines_of(&parsed);
    assert_eq!(freq, Freq::M1);
    assert_eq!(got, rows.as_slice());
}

#[test]
fn literal_binance_row_is_parsed_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir.path().join("BTCUSDT-1m-2024-01-01.csv"),
        "1704067200000,42283.58000000,42554.57000000,42261.02000000,42475.23000000,\
         1271.68108000,1704067259999,53957248.97350000,47134,682.57581000,28957416.81990000,0\n",
    );
    let expected = Kline {
        symbol: "BTCUSDT".into(),
        open_time: 1_704_067_200_000,
        open: 42283.58,
        high: 42554.57,
        low: 42261.02,
        close: 42475.23,
        volume: 1271.68108,
        close_time: 1_704_067_259_999,
        quote_volume: 53957248.9735,
        trades_count: 47134,
        taker_buy_volume: 682.57581,
        taker_buy_quote_volume: 28957416.8199,
    };
    assert_eq!(klines_of(&parse(&path)).1, [expected]);
}

#[test]
fn zipped_futures_csv_with_header_and_good_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let rows = day_of_klines(300);
    let path = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-01.zip"),
        &[("BTCUSDT-1m-2024-01-01.csv", &kline_csv(&rows, true, false))],
    );
    write_checksum(&path, true);
    let parsed = parse(&path);
    assert!(parsed.checksum_verified);
    assert_eq!(parsed.lines, 300, "the header is not a data line");
    assert_eq!(klines_of(&parsed).1, rows.as_slice());
}

#[test]
fn zipped_and_plain_with_and_without_header_agree() {
    let dir = tempfile::tempdir().unwrap();
    let rows = day_of_klines(100);
    let mut results = Vec::new();
    for (i, header) in [false, true].into_iter().enumerate() {
        let text = kline_csv(&rows, header, false);
        let sub = dir.path().join(i.to_string());
        std::fs::create_dir_all(&sub).unwrap();
        let plain = write(&sub.join("BTCUSDT-1m-2024-01-01.csv"), &text);
        let zipped = write_zip(
            &sub.join("BTCUSDT-1m-2024-01-01.zip"),
            &[("BTCUSDT-1m-2024-01-01.csv", &text)],
        );
        results.push(parse(&plain).data);
        results.push(parse(&zipped).data);
    }
    for r in &results {
        assert_eq!(
            r,
            &Parsed::Klines {
                freq: Freq::M1,
                rows: rows.clone()
            }
        );
    }
}

#[test]
fn microsecond_spot_rows_become_milliseconds() {
    let dir = tempfile::tempdir().unwrap();
    // Binance spot from 2025-01-01 on: open 1735689600000000, close 1735689659999999.
    let base = 1_735_689_600_000;
    let rows: Vec<Kline> = (0..10)
        .map(|i| Kline {
            open_time: base + i * 60_000,
            close_time: base + i * 60_000 + 59_999,
            ..kline(i)
        })
        .collect();
    let text = kline_csv(&rows, false, true);
    assert!(text.starts_with("1735689600000000,"), "{text}");
    assert!(text.lines().next().unwrap().contains(",1735689659999999,"));
    let path = write_zip(
        &dir.path().join("BTCUSDT-1m-2025-01-01.zip"),
        &[("BTCUSDT-1m-2025-01-01.csv", &text)],
    );
    assert_eq!(klines_of(&parse(&path)).1, rows.as_slice());
}

#[test]
fn monthly_files_and_the_1mo_interval() {
    let dir = tempfile::tempdir().unwrap();
    // A monthly file of 1mo bars (one bar: January 2024).
    let jan = Kline {
        close_time: 1_706_745_599_999, // 2024-01-31T23:59:59.999Z
        ..kline(0)
    };
    let path = write_zip(
        &dir.path().join("BTCUSDT-1mo-2024-01.zip"),
        &[(
            "BTCUSDT-1mo-2024-01.csv",
            &kline_csv(std::slice::from_ref(&jan), true, false),
        )],
    );
    let parsed = parse(&path);
    assert_eq!(parsed.spec.freq, Some(Freq::Mo1));
    assert_eq!(klines_of(&parsed), (Freq::Mo1, &[jan][..]));
    // A monthly file of 1d bars (31 of them).
    let days: Vec<Kline> = (0..31)
        .map(|d| Kline {
            open_time: T0 + d * 86_400_000,
            close_time: T0 + (d + 1) * 86_400_000 - 1,
            ..kline(d)
        })
        .collect();
    let path = write_zip(
        &dir.path().join("ETHUSDT-1d-2024-01.zip"),
        &[("ETHUSDT-1d-2024-01.csv", &kline_csv(&days, false, false))],
    );
    let parsed = parse(&path);
    assert_eq!(parsed.spec.symbol, "ETHUSDT");
    let (freq, got) = klines_of(&parsed);
    assert_eq!(freq, Freq::D1);
    assert_eq!(got.len(), 31);
    for (g, d) in got.iter().zip(&days) {
        assert_eq!(g.symbol, "ETHUSDT", "the symbol comes from the file name");
        assert_eq!(
            g,
            &Kline {
                symbol: "ETHUSDT".into(),
                ..d.clone()
            }
        );
    }
}

// ---------------------------------------------------------------------------------------
// Funding and metrics

#[test]
fn funding_file_every_value_exact() {
    let dir = tempfile::tempdir().unwrap();
    let text = "calc_time,funding_interval_hours,last_funding_rate\n\
                1704067200000,8,0.00037409\n\
                1704096000000,8,-0.00010000\n\
                1704124800000000,8,0\n";
    let path = write_zip(
        &dir.path().join("BTCUSDT-fundingRate-2024-01.zip"),
        &[("BTCUSDT-fundingRate-2024-01.csv", text)],
    );
    let parsed = parse(&path);
    assert_eq!(parsed.spec.kind, FileKind::Funding);
    assert_eq!(parsed.spec.freq, None);
    let fr = |t: i64, r: f64| FundingRate {
        symbol: "BTCUSDT".into(),
        funding_time: t,
        funding_rate: r,
        mark_price: None,
        index_price: None,
    };
    assert_eq!(
        parsed.data,
        Parsed::Funding(vec![
            fr(1_704_067_200_000, 0.00037409),
            fr(1_704_096_000_000, -0.0001),
            fr(1_704_124_800_000, 0.0),
        ])
    );
}

#[test]
fn metrics_file_utc_times_and_every_value_exact() {
    let dir = tempfile::tempdir().unwrap();
    let text = "create_time,symbol,sum_open_interest,sum_open_interest_value,\
                count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,\
                count_long_short_ratio,sum_taker_long_short_vol_ratio\n\
                2025-01-21 00:05:00,ACEUSDT,2310973.79000000,3669133.08638300,4.24734982,\
                2.26803000,2.72141015,0.69236000\n\
                2025-01-21 00:10:00,ACEUSDT,2311000.5,,,0,,\n";
    let path = write_zip(
        &dir.path().join("ACEUSDT-metrics-2025-01-21.zip"),
        &[("ACEUSDT-metrics-2025-01-21.csv", text)],
    );
    let parsed = parse(&path);
    assert_eq!(parsed.spec.kind, FileKind::Metrics);
    let t1 = 1_737_417_900_000; // 2025-01-21T00:05:00Z (UTC, not local time)
    let t2 = t1 + 300_000;
    let oi = |time, open_interest, open_interest_value| OpenInterest {
        symbol: "ACEUSDT".into(),
        time,
        interval: Freq::M5,
        open_interest,
        open_interest_value,
    };
    let lsr = |timestamp, ratio_type, r: f64, accounts: Option<(f64, f64)>| LongShortRatio {
        symbol: "ACEUSDT".into(),
        timestamp,
        period: Freq::M5,
        ratio_type,
        long_short_ratio: r,
        long_account: accounts.map(|a| a.0),
        short_account: accounts.map(|a| a.1),
    };
    let split = |r: f64| Some((r / (r + 1.0), 1.0 / (r + 1.0)));
    assert_eq!(
        parsed.data,
        Parsed::Metrics {
            open_interest: vec![
                oi(t1, 2310973.79, Some(3669133.086383)),
                // An empty value cell leaves the value unset.
                oi(t2, 2311000.5, None),
            ],
            long_short_ratio: vec![
                lsr(
                    t1,
                    RatioType::TopTraderAccount,
                    4.24734982,
                    split(4.24734982)
                ),
                lsr(t1, RatioType::TopTraderPosition, 2.26803, split(2.26803)),
                lsr(t1, RatioType::GlobalAccount, 2.72141015, split(2.72141015)),
                lsr(t1, RatioType::TakerVol, 0.69236, None),
                // Empty ratio cells give no record; a zero ratio splits 0.5/0.5.
                lsr(t2, RatioType::TopTraderPosition, 0.0, Some((0.5, 0.5))),
            ],
        }
    );
}

// ---------------------------------------------------------------------------------------
// Checksums

#[test]
fn bad_checksum_names_file_and_both_digests() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-01.zip"),
        &[(
            "BTCUSDT-1m-2024-01-01.csv",
            &kline_csv(&day_of_klines(5), false, false),
        )],
    );
    let wrong = write_checksum(&path, false);
    let actual = hex(&Sha256::digest(std::fs::read(&path).unwrap()));
    let err = parse_err(&path);
    match &err {
        Error::ChecksumMismatch {
            file,
            expected,
            actual: got,
        } => {
            assert_eq!(file, &path);
            assert_eq!(expected, &wrong);
            assert_eq!(got, &actual);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("BTCUSDT-1m-2024-01-01.zip"), "{msg}");
    assert!(msg.contains(&wrong) && msg.contains(&actual), "{msg}");
}

// ---------------------------------------------------------------------------------------
// Bad lines

/// A 1m file of 20 lines whose line 17 has `high = abc`; with a header, the header is line 1.
fn file_with_bad_line_17(dir: &Path, header: bool) -> (PathBuf, Vec<Kline>) {
    let n = if header { 19 } else { 20 };
    let rows = day_of_klines(n);
    let mut lines: Vec<String> = rows.iter().map(|k| kline_line(k, false)).collect();
    let bad_index = if header { 15 } else { 16 };
    let mut fields: Vec<String> = lines[bad_index].split(',').map(String::from).collect();
    fields[2] = "abc".into();
    lines[bad_index] = fields.join(",");
    if header {
        lines.insert(0, KLINE_HEADER.into());
    }
    let path = write(
        // Both files hold 2024-01-01: the daily one, and the monthly one for the header case.
        &dir.join(if header {
            "BTCUSDT-1m-2024-01.csv"
        } else {
            "BTCUSDT-1m-2024-01-01.csv"
        }),
        &(lines.join("\n") + "\n"),
    );
    let good = rows
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != bad_index)
        .map(|(_, k)| k)
        .collect();
    (path, good)
}

#[test]
fn one_bad_line_fails_the_file_naming_file_line_field_value_reason() {
    let dir = tempfile::tempdir().unwrap();
    for header in [false, true] {
        let (path, _) = file_with_bad_line_17(dir.path(), header);
        let err = parse_err(&path);
        assert_eq!(
            err.to_string(),
            format!("{}:17: field high = \"abc\": not a number", path.display())
        );
        match err {
            Error::Row {
                file,
                line,
                field,
                value,
                reason,
            } => {
                assert_eq!((file, line, field), (path.clone(), 17, "high"));
                assert_eq!((value.as_str(), reason.as_str()), ("abc", "not a number"));
            }
            other => panic!("expected a row error, got {other:?}"),
        }
    }
}

#[test]
fn skip_mode_returns_good_rows_and_the_rejected_line() {
    let dir = tempfile::tempdir().unwrap();
    for header in [false, true] {
        let (path, good) = file_with_bad_line_17(dir.path(), header);
        let parsed = parse_file(&path, &Overrides::default(), BadRows::Skip).unwrap();
        assert_eq!(klines_of(&parsed).1, good.as_slice());
        assert_eq!(parsed.rejected.len(), 1);
        let r = &parsed.rejected[0];
        assert_eq!(
            (r.file.as_path(), r.line, r.field),
            (path.as_path(), 17, "high")
        );
        assert_eq!(
            (r.value.as_str(), r.reason.as_str()),
            ("abc", "not a number")
        );
        assert_eq!(parsed.lines, 20 - u64::from(header));
    }
}

#[test]
fn each_kind_of_bad_kline_is_refused_with_field_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let good = kline_line(&kline(1), false);
    let with = |col: usize, value: &str| {
        let mut f: Vec<&str> = good.split(',').collect();
        f[col] = value;
        f.join(",")
    };
    let cases = [
        (with(1, "NaN"), "open", "NaN", "not a finite number"),
        (with(5, "inf"), "volume", "inf", "not a finite number"),
        (with(5, "-5"), "volume", "-5", "must not be negative"),
        (
            with(2, "1"),
            "high",
            "1",
            "high is below max(open, close, low)",
        ),
        (
            with(3, "101.01"),
            "low",
            "101.01",
            "low is above min(open, close, high)",
        ),
        (with(9, "1e9"), "taker_buy_volume", "1e9", "exceeds volume"),
        (with(8, "1.5"), "count", "1.5", "not an integer"),
        (
            with(0, "1704067230000"),
            "open_time",
            "1704067230000",
            "not aligned to a 1m bucket",
        ),
        (
            with(6, "1704067379999"),
            "close_time",
            "1704067379999",
            "does not end a 1m bar",
        ),
        (
            good.rsplit_once(',').unwrap().0.to_owned(),
            "row",
            "",
            "expected 12 fields, got 11",
        ),
        (
            format!("{good},extra"),
            "row",
            "",
            "expected 12 fields, got 13",
        ),
    ];
    for (i, (line, field, value, reason)) in cases.into_iter().enumerate() {
        let text = format!("{}\n{line}\n", kline_line(&kline(0), false));
        let path = write(&dir.path().join(format!("case{i}.csv")), &text);
        let overrides = Overrides {
            kind: Some(FileKind::Klines),
            symbol: Some("BTCUSDT".into()),
            freq: Some(Freq::M1),
        };
        let err = parse_file(&path, &overrides, BadRows::Fail).unwrap_err();
        let msg = err.to_string();
        let Error::Row {
            line: l,
            field: f,
            value: v,
            reason: r,
            ..
        } = err
        else {
            panic!("{line}: expected a row error, got {msg}");
        };
        assert_eq!((l, f), (2, field), "{msg}");
        assert!(v.contains(value), "{msg}");
        assert!(r.contains(reason), "{msg}");
        assert!(
            msg.starts_with(&format!("{}:2: field {field} = ", path.display())),
            "{msg}"
        );
    }
}

#[test]
fn bad_metrics_and_funding_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir.path().join("ACEUSDT-metrics-2025-01-21.csv"),
        "create_time,symbol,sum_open_interest,sum_open_interest_value,\
         count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,\
         count_long_short_ratio,sum_taker_long_short_vol_ratio\n\
         2025-01-21 00:05:00,ACEUSDT,1,2,3,4,5,6\n\
         2025-01-21 25:00:00,ACEUSDT,1,2,3,4,5,6\n",
    );
    let msg = parse_err(&path).to_string();
    assert!(
        msg.contains(":3: field create_time = \"2025-01-21 25:00:00\""),
        "{msg}"
    );
    let path = write(
        &dir.path().join("BTCUSDT-fundingRate-2024-01.csv"),
        "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,abc\n",
    );
    let msg = parse_err(&path).to_string();
    assert!(
        msg.ends_with(":2: field last_funding_rate = \"abc\": not a number"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------
// Broken and odd files

#[test]
fn truncated_zip_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-01.zip"),
        &[(
            "BTCUSDT-1m-2024-01-01.csv",
            &kline_csv(&day_of_klines(500), false, false),
        )],
    );
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = parse_err(&path);
    assert!(matches!(err, Error::Zip { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "{} is not a readable zip archive (truncated or corrupt)",
            path.display()
        )
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the zip reader's cause is kept"
    );
    // An empty .zip file is not an archive either.
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(parse_err(&path), Error::Zip { .. }));
}

#[test]
fn corrupt_zip_data_is_an_error_and_returns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = kline_csv(&day_of_klines(50), false, false);
    let path = write_zip_with(
        &dir.path().join("BTCUSDT-1m-2024-01-01.zip"),
        &[("BTCUSDT-1m-2024-01-01.csv", &text)],
        CompressionMethod::Stored,
    );
    // Change the unused `ignore` column of the last line: every line still parses, but
    // the entry's CRC no longer matches.
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = ",0\n";
    let at = bytes
        .windows(needle.len())
        .rposition(|w| w == needle.as_bytes())
        .unwrap();
    bytes[at + 1] = b'7';
    std::fs::write(&path, &bytes).unwrap();
    for mode in [BadRows::Fail, BadRows::Skip] {
        let err = parse_file(&path, &Overrides::default(), mode).unwrap_err();
        assert!(matches!(err, Error::Read { .. }), "{err:?}");
        assert!(
            err.to_string().contains("BTCUSDT-1m-2024-01-01.zip"),
            "{err}"
        );
    }
}

#[test]
fn zips_without_exactly_one_csv() {
    let dir = tempfile::tempdir().unwrap();
    let none = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-01.zip"),
        &[("readme.txt", "hello")],
    );
    let msg = parse_err(&none).to_string();
    assert_eq!(
        msg,
        format!("zip archive {} holds no csv file", none.display())
    );
    let text = kline_csv(&day_of_klines(2), false, false);
    let two = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01-02.zip"),
        &[("a.csv", &text), ("b.csv", &text)],
    );
    assert!(matches!(
        parse_err(&two),
        Error::ManyCsvInZip { count: 2, .. }
    ));
    // macOS companions do not count.
    let mac = write_zip(
        &dir.path().join("BTCUSDT-1m-2024-01.zip"),
        &[("BTCUSDT.csv", &text), ("__MACOSX/._BTCUSDT.csv", "junk")],
    );
    assert_eq!(parse(&mac).data.len(), 2);
}

#[test]
fn empty_files_give_zero_rows() {
    let dir = tempfile::tempdir().unwrap();
    let header_only = format!("{KLINE_HEADER}\n");
    for (name, text) in [
        ("BTCUSDT-1m-2024-01-01.csv", ""),
        ("BTCUSDT-1m-2024-01-02.csv", header_only.as_str()),
        ("BTCUSDT-fundingRate-2024-01.csv", "\n\n"),
    ] {
        let parsed = parse(&write(&dir.path().join(name), text));
        assert!(parsed.data.is_empty(), "{name}");
        assert_eq!(parsed.lines, 0);
    }
    let empty_in_zip = write_zip(
        &dir.path().join("BTCUSDT-metrics-2024-01-01.zip"),
        &[("BTCUSDT-metrics-2024-01-01.csv", "")],
    );
    assert!(parse(&empty_in_zip).data.is_empty());
}

#[test]
fn missing_files_and_folders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("BTCUSDT-1m-2024-01-01.csv");
    std::fs::create_dir(&folder).unwrap();
    assert_eq!(
        parse_err(&folder).to_string(),
        format!("{} is not a file", folder.display())
    );
    let missing = dir.path().join("BTCUSDT-1m-2024-01-02.csv");
    let err = parse_err(&missing);
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("cannot read {}", missing.display())
    );
}

#[test]
fn header_of_another_kind_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        &dir.path().join("BTCUSDT-1m-2024-01-01.csv"),
        "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.0001\n",
    );
    let msg = parse_err(&path).to_string();
    assert!(msg.starts_with("unexpected header in "), "{msg}");
    assert!(msg.contains("BTCUSDT-1m-2024-01-01.csv") && msg.contains("found 3 columns"));
}

// ---------------------------------------------------------------------------------------
// Names, overrides, discovery, progress

#[test]
fn name_inference_and_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let text = kline_csv(&day_of_klines(3), false, false);
    for (name, kind, freq) in [
        (
            "BTCUSDT-1m-2024-01-01.zip",
            FileKind::Klines,
            Some(Freq::M1),
        ),
        ("BTCUSDT-1m-2024-01.zip", FileKind::Klines, Some(Freq::M1)),
        ("BTCUSDT-1mo-2024-01.zip", FileKind::Klines, Some(Freq::Mo1)),
        ("BTCUSDT-fundingRate-2024-01.zip", FileKind::Funding, None),
        ("BTCUSDT-metrics-2024-01-01.zip", FileKind::Metrics, None),
    ] {
        let spec = FileSpec::infer(Path::new(name), &Overrides::default()).unwrap();
        assert_eq!(
            (spec.kind, spec.symbol.as_str(), spec.freq),
            (kind, "BTCUSDT", freq)
        );
    }
    // A renamed file needs overrides; the error names the file and the missing flags.
    let renamed = write(&dir.path().join("download (1).csv"), &text);
    let msg = parse_err(&renamed).to_string();
    assert!(msg.starts_with("cannot understand the file name "), "{msg}");
    assert!(msg.contains("download (1).csv"), "{msg}");
    assert!(msg.ends_with("pass --kind, --symbol and --freq"), "{msg}");
    let overrides = Overrides {
        kind: Some(FileKind::Klines),
        symbol: Some("btcusdt".into()),
        freq: Some(Freq::M1),
    };
    let parsed = parse_file(&renamed, &overrides, BadRows::Fail).unwrap();
    assert_eq!(klines_of(&parsed).1, day_of_klines(3).as_slice());
    // A symbol override relabels the rows.
    let named = write(&dir.path().join("BTCUSDT-1m-2024-01-01.csv"), &text);
    let relabel = Overrides {
        symbol: Some("XBTUSDT".into()),
        ..Overrides::default()
    };
    let parsed = parse_file(&named, &relabel, BadRows::Fail).unwrap();
    assert!(klines_of(&parsed).1.iter().all(|k| k.symbol == "XBTUSDT"));
}

#[test]
fn discover_then_parse_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("futures/um/daily/klines/BTCUSDT/1m");
    std::fs::create_dir_all(&sub).unwrap();
    let text = kline_csv(&day_of_klines(4), true, false);
    let a = write_zip(
        &sub.join("BTCUSDT-1m-2024-01-01.zip"),
        &[("BTCUSDT-1m-2024-01-01.csv", &text)],
    );
    write_checksum(&a, true);
    let b = write(&dir.path().join("BTCUSDT-1m-2024-01-01.csv"), &text);
    write(&dir.path().join("notes.md"), "not data");
    let files = discover(&[dir.path().to_path_buf()]).unwrap();
    assert_eq!(files, vec![b.clone(), a.clone()]);
    let parsed: Vec<ParsedFile> = files.iter().map(|f| parse(f)).collect();
    assert_eq!(
        parsed
            .iter()
            .map(|p| p.checksum_verified)
            .collect::<Vec<_>>(),
        [false, true]
    );
    assert!(parsed.iter().all(|p| p.data.len() == 4));
}

#[test]
fn progress_reports_rows_read() {
    let dir = tempfile::tempdir().unwrap();
    // 20,000 one-second bars: more than one progress step and several read buffers.
    let rows: Vec<Kline> = (0..20_000)
        .map(|i| Kline {
            open_time: T0 + i * 1000,
            close_time: T0 + i * 1000 + 999,
            ..kline(i)
        })
        .collect();
    let path = write_zip(
        &dir.path().join("BTCUSDT-1s-2024-01-01.zip"),
        &[("BTCUSDT-1s-2024-01-01.csv", &kline_csv(&rows, false, false))],
    );
    let mut seen = Vec::new();
    let parsed = parse_file_with_progress(&path, &Overrides::default(), BadRows::Fail, &mut |n| {
        seen.push(n)
    })
    .unwrap();
    assert_eq!(seen, [16_384, 20_000]);
    assert_eq!(klines_of(&parsed), (Freq::S1, rows.as_slice()));
}
