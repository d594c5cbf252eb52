"""The Python original's side of the benchmark: cryptoservice 1.9.0 on the harness's data.

Run by the benchmark harness (`cargo xtask bench --python`) with the Python of the
virtualenv `cargo xtask compat` uses, one process per measured operation:

    python scripts/bench_python.py store --vision DIR --db FILE --start 2024-01-01 --days 1
    python scripts/bench_python.py read --db FILE --start 2024-01-01 --days 1
    python scripts/bench_python.py numpy --db FILE --out DIR --start 2024-01-01 --days 1

Operations, written as a user of the v1.9 `MarketDB` would:
- store: for each Binance Vision daily kline CSV (sorted), read it with the csv module, build
  one `PerpetualMarketTicker(symbol, open_time, raw_data)` per line (the form the downloader
  builds and `store_data` reads) and call `store_data(tickers, Freq.m1)`: one call per file;
- read: `read_data(start, day after the last, Freq.m1, symbols)`, every stored symbol (1.9
  treats the end date as midnight, inclusive; the data has no bar there);
- numpy: `export_to_files(out, start, day after the last, Freq.m1, symbols,
  chunk_days=days + 1)`. With the default chunk_days=30 a 30-day range is cut into chunks
  whose last day keeps only its midnight bar (the 1.9 end-date bug), so W3 would lose data.

Opening the database, the imports and the symbol list are not timed; the row count is
checked afterwards (untimed) from the database or the exported arrays, so a fast wrong
answer shows. Prints one JSON line: op, rows, secs, the memory of the operation (peak RSS
from VmHWM after resetting it through /proc/self/clear_refs, else getrusage's ru_maxrss;
the anonymous and file-backed peaks sampled every 10 ms), CPU seconds and a detail.
"""

import argparse
import csv
import json
import resource
import sqlite3
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from cryptoservice.data.storage_db import MarketDB
from cryptoservice.models.enums import Freq
from cryptoservice.models.market_ticker import PerpetualMarketTicker

SAMPLE_EVERY = 0.01


def proc_status():
    """{key: kB} of the memory lines of /proc/self/status ({} off Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Probe:
    """The same measurement as the harness's Rust probe (benches/rss.rs)."""

    def __init__(self):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset = True
        except OSError:
            self.reset = False
        now = proc_status()
        self.base = now.get("VmRSS", 0)
        self.anon = now.get("RssAnon", 0)
        self.file = now.get("RssFile", 0)
        self.cpu = cpu_seconds()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    def sample(self):
        while not self.stop.wait(SAMPLE_EVERY):
            s = proc_status()
            self.anon = max(self.anon, s.get("RssAnon", 0))
            self.file = max(self.file, s.get("RssFile", 0))

    def finish(self):
        end = proc_status()
        cpu = cpu_seconds() - self.cpu
        self.stop.set()
        self.thread.join()
        self.anon = max(self.anon, end.get("RssAnon", 0))
        self.file = max(self.file, end.get("RssFile", 0))
        # ru_maxrss is in KiB on Linux: the process's peak since it started.
        peak = end.get("VmHWM", 0) if self.reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {
            "base_mib": self.base / 1024,
            "peak_mib": peak / 1024,
            "anon_peak_mib": self.anon / 1024,
            "file_peak_mib": self.file / 1024,
            "reset": self.reset,
            "cpu_secs": cpu,
        }


def day_after(start, days):
    return (date.fromisoformat(start) + timedelta(days=days)).isoformat()


def count_bars(db_path):
    with sqlite3.connect(db_path) as conn:
        return conn.execute("SELECT COUNT(*) FROM market_data WHERE freq = '1m'").fetchone()[0]


def stored_symbols(db_path):
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT DISTINCT symbol FROM market_data ORDER BY symbol")
        return [r[0] for r in rows]


def op_store(args):
    files = sorted(Path(args.vision).glob("*.csv"))
    if not files:
        raise SystemExit(f"no .csv files in {args.vision}")
    db = MarketDB(args.db)
    probe = Probe()
    t = time.perf_counter()
    for path in files:
        # Binance Vision names: SYMBOL-1m-YYYY-MM-DD.csv
        symbol = path.name.split("-", 1)[0]
        with open(path, newline="") as f:
            tickers = [
                PerpetualMarketTicker(symbol=symbol, open_time=int(row[0]), raw_data=row)
                for row in csv.reader(f)
            ]
        db.store_data(tickers, Freq.m1)
    secs = time.perf_counter() - t
    mem = probe.finish()
    db.close()
    return count_bars(args.db), secs, mem, f"{len(files)} files, {len(files)} store_data calls"


def op_read(args):
    symbols = stored_symbols(args.db)
    db = MarketDB(args.db)
    probe = Probe()
    t = time.perf_counter()
    df = db.read_data(args.start, day_after(args.start, args.days), Freq.m1, symbols)
    secs = time.perf_counter() - t
    mem = probe.finish()
    rows = len(df)
    db.close()
    return rows, secs, mem, f"{len(symbols)} symbols, one DataFrame"


def op_numpy(args):
    symbols = stored_symbols(args.db)
    db = MarketDB(args.db)
    probe = Probe()
    t = time.perf_counter()
    db.export_to_files(
        args.out, args.start, day_after(args.start, args.days), Freq.m1, symbols,
        chunk_days=args.days + 1,
    )
    secs = time.perf_counter() - t
    mem = probe.finish()
    db.close()
    # Every bar is one cell of each day's close matrix.
    files = sorted(Path(args.out).glob("1m/*/cls/*.npy"))
    rows = sum(int(np.count_nonzero(~np.isnan(np.load(f).astype(float)))) for f in files)
    written = sum(1 for p in Path(args.out).rglob("*") if p.is_file())
    return rows, secs, mem, f"{written} files"


def op_duckdb(args):
    """DuckDB loading the same daily files into a table of its own file: what a data
    engineer would reach for instead of marketdb ingest."""
    import duckdb

    files = sorted(Path(args.vision).glob("*.csv"))
    if not files:
        raise SystemExit(f"no .csv files in {args.vision}")
    con = duckdb.connect(args.db)
    columns = (
        "{'open_time': 'BIGINT', 'open': 'DOUBLE', 'high': 'DOUBLE', 'low': 'DOUBLE', "
        "'close': 'DOUBLE', 'volume': 'DOUBLE', 'close_time': 'BIGINT', "
        "'quote_volume': 'DOUBLE', 'count': 'BIGINT', 'taker_buy_volume': 'DOUBLE', "
        "'taker_buy_quote_volume': 'DOUBLE', 'ignore': 'VARCHAR'}"
    )
    probe = Probe()
    t = time.perf_counter()
    con.execute(
        "CREATE TABLE klines AS SELECT * FROM read_csv(?, header = false, filename = true, "
        f"columns = {columns})",
        [str(Path(args.vision) / "*.csv")],
    )
    con.execute("CHECKPOINT")
    secs = time.perf_counter() - t
    mem = probe.finish()
    rows = con.execute("SELECT COUNT(*) FROM klines").fetchone()[0]
    con.close()
    return rows, secs, mem, f"{len(files)} files, duckdb {duckdb.__version__}"


OPS = {"store": op_store, "read": op_read, "numpy": op_numpy, "duckdb": op_duckdb}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("op", choices=sorted(OPS))
    p.add_argument("--db", required=True)
    p.add_argument("--vision", help="folder of daily kline CSV files (store)")
    p.add_argument("--out", help="export folder (numpy)")
    p.add_argument("--start", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--days", type=int, required=True)
    args = p.parse_args()
    rows, secs, mem, detail = OPS[args.op](args)
    versions = f"pandas {pd.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}"
    line = {"op": args.op, "rows": rows, "secs": secs, "mem": mem, "detail": f"{detail}; {versions}"}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
