"""Compatibility of marketdb with the Python package cryptoservice 1.9.0, both directions.

Run by `cargo xtask compat` with the Python of a virtualenv holding cryptoservice==1.9.0:

    python scripts/compat.py --marketdb target/debug/marketdb --work target/compat/run

It generates deterministic data of every kind (klines at 1m, 1h and 1d, funding rates, open
interest, the four long/short ratio types) and checks:

1. cryptoservice writes (MarketDB.store_*), marketdb reads (query, metrics, summary): every
   value equal to what cryptoservice itself reads back, counts and ranges equal;
2. marketdb writes (ingest of Binance Vision files of the same data), cryptoservice reads with
   its own calls and defaults (read_data_by_timestamp, read_funding_rate,
   read_open_interest, read_long_short_ratio with ratio_type="account" and the others);
3. cryptoservice upserts into the marketdb file, marketdb reads everything, no duplicates;
4. the NumPy exports of both programs on the same data, value by value.

Every difference is a failed check unless it is listed in KNOWN (an intentional difference
documented in docs/compat.md). Prints a table (check, result) and exits 1 on any failure.
`--corrupt` changes one stored value in marketdb's file before cryptoservice reads it, to
show that the checks catch a wrong value.
"""

import argparse
import json
import os
import pickle
import random
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
from cryptoservice.data.storage_db import MarketDB
from cryptoservice.models.enums import Freq
from cryptoservice.models.market_data import FundingRate, LongShortRatio, OpenInterest
from cryptoservice.models.market_ticker import PerpetualMarketTicker

JAN1 = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DAY = 86_400_000
SYMBOLS = ["AAAUSDT", "BBBUSDT", "CCCUSDT"]
# (interval, its length in ms, days of data)
KLINES = [("1m", 60_000, 1), ("1h", 3_600_000, 3), ("1d", DAY, 10)]
FREQ = {"1m": Freq.m1, "1h": Freq.h1, "1d": Freq.d1}
# cryptoservice 1.9 spelling of each long/short ratio type, and its Vision column.
RATIOS = [
    ("account", "count_toptrader_long_short_ratio"),
    ("position", "sum_toptrader_long_short_ratio"),
    ("global", "count_long_short_ratio"),
    ("taker", "sum_taker_long_short_vol_ratio"),
]
KLINE_COLUMNS = [
    "open_price", "high_price", "low_price", "close_price", "volume", "quote_volume",
    "trades_count", "taker_buy_volume", "taker_buy_quote_volume", "taker_sell_volume",
    "taker_sell_quote_volume",
]
# marketdb's short feature names for the same columns, in the same order.
SHORT = ["opn", "hgh", "low", "cls", "vol", "amt", "tnum", "tbvol", "tbamt", "tsvol", "tsamt"]

RESULTS = []
# klines, funding, open interest, ratios: set once by main().
GENERATED = []


def check(name, problems, known=None):
    """A failed check with `known` set is an intentional difference: the check passes only
    when the difference is exactly the documented one, reported as `known: <reason>`."""
    RESULTS.append((name, list(problems), known))


def decimal_text(x, places):
    return f"{x:.{places}f}"


def gen_klines():
    """{interval: [(symbol, open_time, [12 Binance text fields])]}, valid, no zero volume."""
    rng = random.Random(19)
    out = {}
    for interval, step, days in KLINES:
        rows = []
        for sym in SYMBOLS:
            price = 100.0 + rng.random() * 900
            for i in range(days * DAY // step):
                t = JAN1 + i * step
                o = round(price, 2)
                c = round(max(1.0, o * (1 + rng.gauss(0, 0.002))), 2)
                h = round(max(o, c) * (1 + rng.random() * 0.001), 2)
                lo = round(min(o, c) * (1 - rng.random() * 0.001), 2)
                v = round(1 + rng.random() * 50, 3)
                q = round(v * (o + c) / 2, 4)
                share = rng.random()
                tbv = round(v * share, 3)
                tbq = round(q * share, 4)
                n = 1 + int(v * 7)
                fields = [
                    str(t), decimal_text(o, 2), decimal_text(h, 2), decimal_text(lo, 2),
                    decimal_text(c, 2), decimal_text(v, 3), str(t + step - 1),
                    decimal_text(q, 4), str(n), decimal_text(tbv, 3), decimal_text(tbq, 4), "0",
                ]
                rows.append((sym, t, fields))
                price = c
        out[interval] = rows
    return out


def gen_metrics():
    """Funding every 8 h over 3 days; open interest and the four ratios every 5 min, 1 day."""
    rng = random.Random(23)
    funding, oi, lsr = [], [], []
    for sym in SYMBOLS:
        for i in range(9):
            funding.append((sym, JAN1 + i * 8 * 3_600_000, round(rng.gauss(0.0001, 0.0002), 8)))
        for i in range(288):
            t = JAN1 + i * 300_000
            oi.append((sym, t, round(1e5 + rng.random() * 1e5, 3), round(1e7 * rng.random(), 2)))
            for name, _ in RATIOS:
                lsr.append((sym, t, name, round(0.5 + rng.random(), 6)))
    return funding, oi, lsr


def run(args, *cmd):
    out = subprocess.run([args.marketdb, *cmd], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"marketdb {' '.join(cmd)} failed: {out.stderr.strip()}")
    return out.stdout


def jsonl(text):
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def to_f(x):
    return None if x is None else float(x)


def compare(name, want, got):
    """want, got: {key: tuple of values}; floats compared exactly (bit for bit)."""
    problems = []
    for k in sorted(set(want) | set(got), key=str):
        if k not in got:
            problems.append(f"{k}: missing")
        elif k not in want:
            problems.append(f"{k}: extra")
        elif want[k] != got[k]:
            problems.append(f"{k}: want {want[k]}, got {got[k]}")
        if len(problems) >= 5:
            problems.append("...")
            break
    check(f"{name} ({len(want)} values)", problems)


def py_klines(db, interval, days):
    df = db.read_data_by_timestamp(
        JAN1, JAN1 + days * DAY - 1, FREQ[interval], SYMBOLS, raise_on_empty=False
    )
    out = {}
    for (sym, ts), row in df.iterrows():
        t = int(ts.value // 1_000_000)
        out[(sym, t)] = tuple(float(row[c]) for c in KLINE_COLUMNS)
    return out


def md_klines(args, db, interval, days):
    text = run(
        args, "--db", str(db), "-q", "query", "--symbols", "all", "--freq", interval,
        "--start", str(JAN1), "--end", str(JAN1 + days * DAY - 1), "--format", "jsonl",
    )
    return {(r["symbol"], r["timestamp"]): tuple(float(r[s]) for s in SHORT) for r in jsonl(text)}


def direction_python_writes(args, work, klines, funding, oi, lsr):
    db_path = work / "python.db"
    db = MarketDB(db_path)
    for interval, _, _ in KLINES:
        tickers = [
            PerpetualMarketTicker(sym, t, fields) for sym, t, fields in klines[interval]
        ]
        db.store_data(tickers, FREQ[interval])
    db.store_funding_rate(
        [FundingRate(symbol=s, funding_time=t, funding_rate=Decimal(str(r))) for s, t, r in funding]
    )
    db.store_open_interest(
        [
            OpenInterest(symbol=s, open_interest=Decimal(str(v)), time=t,
                         open_interest_value=Decimal(str(val)))
            for s, t, v, val in oi
        ]
    )
    db.store_long_short_ratio(
        [
            LongShortRatio(symbol=s, long_short_ratio=Decimal(str(r)),
                           long_account=Decimal(str(r / (r + 1))),
                           short_account=Decimal(str(1 / (r + 1))), timestamp=t, ratio_type=name)
            for s, t, name, r in lsr
        ]
    )
    for interval, _, days in KLINES:
        compare(
            f"python writes, marketdb reads: {interval} klines",
            py_klines(db, interval, days),
            md_klines(args, db_path, interval, days),
        )
    end = "2024-01-05"
    fr = db.read_funding_rate("2024-01-01", end, SYMBOLS)
    want = {(s, int(ts.value // 1_000_000)): (float(r.funding_rate),) for (s, ts), r in fr.iterrows()}
    got = {
        (r["symbol"], r["timestamp"]): (r["funding_rate"],)
        for r in jsonl(run(args, "--db", str(db_path), "-q", "metrics", "funding", "--symbols",
                           "all", "--timerange", "20240101-20240104", "--format", "jsonl"))
    }
    compare("python writes, marketdb reads: funding rates", want, got)
    o = db.read_open_interest("2024-01-01", end, SYMBOLS)
    want = {
        (s, int(ts.value // 1_000_000)): (float(r.open_interest), to_f(r.open_interest_value))
        for (s, ts), r in o.iterrows()
    }
    got = {
        (r["symbol"], r["timestamp"]): (r["open_interest"], to_f(r["open_interest_value"]))
        for r in jsonl(run(args, "--db", str(db_path), "-q", "metrics", "open-interest",
                           "--symbols", "all", "--timerange", "20240101-20240104",
                           "--format", "jsonl"))
    }
    compare("python writes, marketdb reads: open interest", want, got)
    for name, _ in RATIOS:
        r = db.read_long_short_ratio("2024-01-01", end, SYMBOLS, ratio_type=name)
        want = {
            (s, int(ts.value // 1_000_000)): (float(x.long_short_ratio),)
            for (s, ts), x in r.iterrows()
        }
        got = {
            (x["symbol"], x["timestamp"]): (x["long_short_ratio"],)
            for x in jsonl(run(args, "--db", str(db_path), "-q", "metrics", "long-short-ratio",
                               "--symbols", "all", "--timerange", "20240101-20240104",
                               "--ratio-type", name, "--format", "jsonl"))
        }
        compare(f"python writes, marketdb reads: long/short ratio {name}", want, got)
    # Counts and ranges: the two summaries agree.
    py = db.get_data_summary()
    md = json.loads(run(args, "--db", str(db_path), "-q", "summary", "--json"))
    problems = []
    for entry in py.get("market_data", []):
        twin = [e for e in md["market_data"] if e["freq"] == entry["freq"]]
        keys = ("record_count", "unique_symbols", "earliest_timestamp", "latest_timestamp")
        if not twin or any(int(entry[k]) != int(twin[0][k]) for k in keys):
            problems.append(f"{entry['freq']}: python {entry}, marketdb {twin}")
    check("python writes: summaries agree (counts, symbols, first, last)", problems)
    db.close()
    return db_path


def write_vision(work, klines, funding, oi, lsr):
    """Binance Vision files of the same data: daily kline files, a monthly funding file,
    a daily metrics file per symbol."""
    vision = work / "vision"
    shutil.rmtree(vision, ignore_errors=True)
    vision.mkdir(parents=True)
    for interval, _, _ in KLINES:
        by_file = {}
        for sym, t, fields in klines[interval]:
            day = np.datetime64(t, "ms").astype("datetime64[D]")
            by_file.setdefault((sym, str(day)), []).append(",".join(fields))
        for (sym, day), lines in by_file.items():
            (vision / f"{sym}-{interval}-{day}.csv").write_text("\n".join(lines) + "\n")
    for sym in SYMBOLS:
        lines = ["calc_time,funding_interval_hours,last_funding_rate"]
        lines += [f"{t},8,{r}" for s, t, r in funding if s == sym]
        (vision / f"{sym}-fundingRate-2024-01.csv").write_text("\n".join(lines) + "\n")
        header = "create_time,symbol,sum_open_interest,sum_open_interest_value," + ",".join(
            column for _, column in RATIOS
        )
        ratios = {(s, t, name): r for s, t, name, r in lsr if s == sym}
        lines = [header]
        for s, t, v, val in oi:
            if s != sym:
                continue
            stamp = str(np.datetime64(t, "ms")).replace("T", " ")[:19]
            cells = [str(ratios[(sym, t, name)]) for name, _ in RATIOS]
            lines.append(",".join([stamp, sym, str(v), str(val), *cells]))
        (vision / f"{sym}-metrics-2024-01-01.csv").write_text("\n".join(lines) + "\n")
    return vision


def direction_marketdb_writes(args, work, klines, funding, oi, lsr):
    db_path = work / "marketdb.db"
    for side in ("", "-wal", "-shm"):
        Path(f"{db_path}{side}").unlink(missing_ok=True)
    vision = write_vision(work, klines, funding, oi, lsr)
    run(args, "--db", str(db_path), "-q", "ingest", str(vision))
    if args.corrupt:
        import sqlite3

        c = sqlite3.connect(db_path)
        c.execute(
            "UPDATE market_data SET close_price = close_price + 0.01 WHERE symbol = 'BBBUSDT' "
            "AND freq = '1h' AND timestamp = ?",
            (JAN1 + 3_600_000,),
        )
        c.commit()
        c.close()
    db = MarketDB(db_path)
    for interval, _, days in KLINES:
        want = {
            (sym, t): tuple(
                float(x) for x in [*fields[1:6], fields[7], fields[8], fields[9], fields[10]]
            )
            + (float(fields[5]) - float(fields[9]), float(fields[7]) - float(fields[10]))
            for sym, t, fields in klines[interval]
        }
        got = {k: v for k, v in py_klines(db, interval, days).items()}
        compare(f"marketdb writes, python reads: {interval} klines", want, got)
    end = "2024-01-05"
    fr = db.read_funding_rate("2024-01-01", end, SYMBOLS)
    got = {(s, int(ts.value // 1_000_000)): (float(r.funding_rate),) for (s, ts), r in fr.iterrows()}
    compare(
        "marketdb writes, python reads: funding rates",
        {(s, t): (r,) for s, t, r in funding},
        got,
    )
    o = db.read_open_interest("2024-01-01", end, SYMBOLS)
    got = {
        (s, int(ts.value // 1_000_000)): (float(r.open_interest), to_f(r.open_interest_value))
        for (s, ts), r in o.iterrows()
    }
    compare(
        "marketdb writes, python reads: open interest (interval 5m default)",
        {(s, t): (v, val) for s, t, v, val in oi},
        got,
    )
    for name, _ in RATIOS:
        kwargs = {} if name == "account" else {"ratio_type": name}
        r = db.read_long_short_ratio("2024-01-01", end, SYMBOLS, **kwargs)
        got = {
            (s, int(ts.value // 1_000_000)): (float(x.long_short_ratio),)
            for (s, ts), x in r.iterrows()
        }
        label = "default ratio_type" if name == "account" else f"ratio_type={name}"
        compare(
            f"marketdb writes, python reads: long/short ratio ({label})",
            {(s, t): (x,) for s, t, n, x in lsr if n == name},
            got,
        )
    db.close()
    return db_path


def upserts(args, db_path, klines):
    """cryptoservice upserts changed 1h bars into marketdb's file; marketdb reads them."""
    db = MarketDB(db_path)
    changed = []
    for sym, t, fields in klines["1h"][:24]:
        f = list(fields)
        f[4] = decimal_text(float(f[4]) + 0.5, 2)
        f[2] = decimal_text(max(float(f[2]), float(f[4])), 2)
        changed.append((sym, t, f))
    db.store_data([PerpetualMarketTicker(s, t, f) for s, t, f in changed], Freq.h1)
    db.close()
    got = md_klines(args, db_path, "1h", 3)
    problems = []
    if len(got) != len(klines["1h"]):
        problems.append(f"{len(got)} bars, want {len(klines['1h'])} (duplicates or losses)")
    for sym, t, f in changed:
        if got.get((sym, t), (None,) * 4)[3] != float(f[4]):
            problems.append(f"{sym} {t}: close {got.get((sym, t))}, want {f[4]}")
            break
    check("python upserts into marketdb's file, marketdb reads all", problems)


def dataset_after_python_writes(args, work, db_path, klines):
    """A partition cryptoservice changes in marketdb's file is found and re-published by
    `export dataset`, the rest is told unchanged by the change record, and cryptoservice
    still reads the file."""
    out = work / "dataset"
    shutil.rmtree(out, ignore_errors=True)

    def export():
        text = run(args, "--db", str(db_path), "-q", "export", "dataset", "--out", str(out), "--json")
        return json.loads(text)

    first = export()
    again = export()
    problems = []
    if not first["written"]:
        problems.append("the first export wrote nothing")
    # The self-check's raw UPDATE (--corrupt) left one day stale: marketdb has not written
    # since, so that partition is compared by its rows (and found unchanged).
    stale = 1 if args.corrupt else 0
    if again["written"] or again["compared_by_rows"] != stale:
        problems.append(f"a re-run with no change wrote {again['written']} and compared "
                        f"{again['compared_by_rows']} partition(s) by rows, want {stale}")
    upserts(args, db_path, klines)
    after = export()
    touched = sorted({f"klines/freq=1h/date={datetime.fromtimestamp(t / 1000, timezone.utc):%Y-%m-%d}"
                      for _, t, _ in klines["1h"][:24]})
    if after["written"] != touched:
        problems.append(f"after cryptoservice stored 24 bars, written {after['written']}, want {touched}")
    if after["compared_by_rows"] != len(touched):
        problems.append(f"{after['compared_by_rows']} partition(s) compared by rows, want {len(touched)}")
    import pyarrow.parquet as pq

    table = pq.read_table(out / "klines" / "freq=1h").to_pylist()
    def ms(ts):
        return int(ts.timestamp() * 1000) if hasattr(ts, "timestamp") else int(ts)

    closes = {(r["symbol"], ms(r["timestamp"])): r.get("close_price", r.get("close")) for r in table}
    for sym, t, f in klines["1h"][:24]:
        want = float(f[4]) + 0.5
        got = closes.get((sym, t))
        if got is None or abs(got - want) > 1e-9:
            problems.append(f"{sym} {t}: published close {got}, want {want}")
            break
    db = MarketDB(db_path)
    got = py_klines(db, "1h", 3)
    db.close()
    if len(got) != len(klines["1h"]):
        problems.append(f"cryptoservice reads {len(got)} 1h bars afterwards, want {len(klines['1h'])}")
    check("python changes a partition: export dataset re-publishes exactly it", problems)


def exports(args, work, py_db):
    """The NumPy exports of both programs on the same 1m day, value by value."""
    out_py, out_md = work / "export_py", work / "export_md"
    shutil.rmtree(out_py, ignore_errors=True)
    shutil.rmtree(out_md, ignore_errors=True)
    db = MarketDB(py_db)
    # 1.9 reads [start 00:00, end 00:00]: ask for the day after to get the whole day.
    db.export_to_files(out_py, "2024-01-01", "2024-01-02", Freq.m1, SYMBOLS)
    db.close()
    run(args, "--db", str(py_db), "-q", "export", "numpy", "--symbols", "all", "--timerange",
        "20240101-20240101", "--freq", "1m", "--out", str(out_md))
    day = "20240101"
    md_symbols = json.loads((out_md / "1m" / "symbols" / f"{day}.json").read_text())
    md_times = np.load(out_md / "1m" / "timestamp" / f"{day}.npy")
    with open(out_py / "1m" / day / "universe_token.pkl", "rb") as f:
        py_symbols = list(pickle.load(f))
    problems = []
    if py_symbols != md_symbols:
        problems.append(f"symbols: python {py_symbols}, marketdb {md_symbols}")
    features = ["cls", "hgh", "low", "tnum", "opn", "amt", "tbvol", "tbamt", "vol", "vwap",
                "ret", "tsvol", "tsamt"]
    compared = 0
    for feat in features:
        a = np.load(out_py / "1m" / day / feat / f"{day}.npy", allow_pickle=True).astype(float)
        b = np.load(out_md / "1m" / feat / f"{day}.npy", allow_pickle=False)
        # 1.9's columns are the timestamps present that day; ours the full grid. The data has
        # no hole, so both are the 1440 minutes.
        if a.shape != b.shape or len(md_times) != a.shape[1]:
            problems.append(f"{feat}: shape python {a.shape}, marketdb {b.shape}")
            continue
        diff = np.argwhere(a != b)
        compared += a.size
        if len(diff):
            i, j = diff[0]
            problems.append(f"{feat}[{i},{j}]: python {a[i, j]!r}, marketdb {b[i, j]!r}")
    check(f"numpy exports of the same day, value by value ({compared} cells)", problems)
    export_with_hole(args, work, py_db)
    csv_export(args, py_db)
    combined(args, py_db)


def combined(args, py_db):
    """Bars with metrics: cryptoservice's get_combined_data joins on exact (symbol, open
    time) keys; marketdb (query --features, read_combined) gives each bar the latest value
    at its close (the known difference "bars with metrics in memory" of docs/compat.md).
    Checked: marketdb equals an as-of oracle computed here from the generated data, and
    equals cryptoservice wherever cryptoservice has a funding rate."""
    _, funding, oi, _ = GENERATED
    db = MarketDB(py_db)
    df = db.get_combined_data(SYMBOLS, "2024-01-01", "2024-01-03", Freq.h1,
                              include_funding_rate=True, include_open_interest=True)
    db.close()
    py = {(s, int(ts.value // 1_000_000)): (to_f(r.funding_rate), to_f(r.open_interest))
          for (s, ts), r in df.iterrows()}
    text = run(args, "--db", str(py_db), "-q", "query", "--symbols", "all", "--freq", "1h",
               "--start", "2024-01-01", "--end", "2024-01-03 00:00", "--features", "fr,oi",
               "--format", "jsonl")
    md = {(r["symbol"], r["timestamp"]): (r["fr"], r["oi"]) for r in jsonl(text)}

    def as_of(points, sym, close, tol):
        best = None
        for s, t, v in points:
            if s == sym and close - tol < t <= close and (best is None or t > best[0]):
                best = (t, v)
        return None if best is None else best[1]

    problems = []
    if set(py) != set(md):
        problems.append(f"bars: cryptoservice {len(py)}, marketdb {len(md)}")
    fr_points = [(s, t, r) for s, t, r in funding]
    oi_points = [(s, t, v) for s, t, v, _ in oi]
    exact = 0
    for (sym, t), (fr, o) in sorted(md.items()):
        close = t + 3_600_000 - 1
        want = (as_of(fr_points, sym, close, 48 * 3_600_000),
                as_of(oi_points, sym, close, 6 * 3_600_000))
        if (fr, o) != want:
            problems.append(f"{sym} {t}: marketdb {(fr, o)}, as-of oracle {want}")
        py_fr = py.get((sym, t), (None, None))[0]
        if py_fr is not None and py_fr == py_fr:  # not NaN
            exact += 1
            if py_fr != fr:
                problems.append(f"{sym} {t}: funding cryptoservice {py_fr}, marketdb {fr}")
        if len(problems) >= 5:
            break
    funding_bars = sum(1 for s, t, _ in funding if (s, t) in md)
    if exact != funding_bars:
        problems.append(f"cryptoservice has funding on {exact} bars, {funding_bars} expected")
    check(f"bars with funding and open interest ({len(md)} bars)", problems,
          known="get_combined_data joins exact keys; marketdb aligns as of each close")


def export_with_hole(args, work, py_db):
    """12:00 missing for every symbol: cryptoservice drops the column, marketdb keeps a NaN
    column (the known difference "NumPy grid" of docs/compat.md); every other cell equal."""
    import sqlite3

    holed = work / "holed.db"
    shutil.copy(py_db, holed)
    noon = JAN1 + 12 * 3_600_000
    c = sqlite3.connect(holed)
    c.execute("DELETE FROM market_data WHERE freq = '1m' AND timestamp = ?", (noon,))
    c.commit()
    c.close()
    out_py, out_md = work / "holed_py", work / "holed_md"
    shutil.rmtree(out_py, ignore_errors=True)
    shutil.rmtree(out_md, ignore_errors=True)
    db = MarketDB(holed)
    db.export_to_files(out_py, "2024-01-01", "2024-01-02", Freq.m1, SYMBOLS)
    db.close()
    run(args, "--db", str(holed), "-q", "export", "numpy", "--symbols", "all", "--timerange",
        "20240101-20240101", "--freq", "1m", "--out", str(out_md))
    day = "20240101"
    times = np.load(out_md / "1m" / "timestamp" / f"{day}.npy")
    problems = []
    col = np.flatnonzero(times == noon)
    if len(times) != 1440 or len(col) != 1:
        problems.append(f"marketdb grid: {len(times)} columns, 12:00 present {len(col) == 1}")
    for feat in ["cls", "vol", "tnum", "vwap"]:
        a = np.load(out_py / "1m" / day / feat / f"{day}.npy", allow_pickle=True).astype(float)
        b = np.load(out_md / "1m" / feat / f"{day}.npy")
        if problems:
            break
        if a.shape[1] != 1439:
            problems.append(f"{feat}: cryptoservice has {a.shape[1]} columns, expected 1439")
        elif not np.isnan(b[:, col[0]]).all():
            problems.append(f"{feat}: marketdb's 12:00 column is not NaN")
        elif not np.array_equal(np.delete(b, col[0], axis=1), a):
            problems.append(f"{feat}: the other 1439 columns differ")
    check("numpy exports with a bar missing for every symbol", problems,
          known="NumPy grid: cryptoservice drops the column, marketdb keeps it as NaN")


def csv_export(args, py_db):
    """cryptoservice 1.9.0 on PyPI ships no CSV exporter: marketdb's CSV of cryptoservice's
    file is compared with what cryptoservice reads from that file."""
    import csv
    import io

    db = MarketDB(py_db)
    want = py_klines(db, "1h", 3)
    db.close()
    text = run(args, "--db", str(py_db), "-q", "export", "csv", "--symbols", "all",
               "--timerange", "20240101-20240103", "--freq", "1h", "--out", "-")
    rows = list(csv.DictReader(io.StringIO(text)))
    got = {(r["symbol"], int(r["timestamp"])): tuple(float(r[s]) for s in SHORT) for r in rows}
    problems = []
    for r in rows[:1]:
        stamp = np.datetime64(int(r["timestamp"]), "ms").astype("datetime64[s]")
        if r["datetime"] != str(stamp) + "Z":
            problems.append(f"datetime {r['datetime']} for timestamp {r['timestamp']}")
    check("csv export of cryptoservice's file", problems)
    compare("csv export equals cryptoservice's read: 1h klines", want, got)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--marketdb", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--corrupt", action="store_true")
    args = p.parse_args()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    os.environ.pop("MARKETDB_DB", None)
    klines = gen_klines()
    funding, oi, lsr = gen_metrics()
    GENERATED.extend([klines, funding, oi, lsr])
    py_db = direction_python_writes(args, work, klines, funding, oi, lsr)
    md_db = direction_marketdb_writes(args, work, klines, funding, oi, lsr)
    dataset_after_python_writes(args, work, md_db, klines)
    exports(args, work, py_db)
    width = max(len(name) for name, _, _ in RESULTS)
    failed = 0
    lines = [f"{'check'.ljust(width)}  result", "-" * (width + 8)]
    for name, problems, known in RESULTS:
        ok = not problems
        failed += not ok
        result = ("known difference: " + known if known else "ok") if ok else "FAILED"
        lines.append(f"{name.ljust(width)}  {result}")
        for pr in problems:
            lines.append(f"    {pr}")
    lines.append(f"{len(RESULTS)} checks, {failed} failed")
    text = "\n".join(lines)
    print(text)
    (work / "report.txt").write_text(text + "\n")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
