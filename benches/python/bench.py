"""marketdb's Python package against cryptoservice 1.9.0, in one run, on the same data.

    python benches/python/bench.py [--symbols 100] [--days 7] [--out target/bench-python]

W2 is 100 symbols x 7 days of 1m bars (1,008,000 rows). Each measured operation runs in a
fresh process (so imports are warm but no cache is), which prints one JSON line:
seconds, peak RSS (VmHWM), RSS before the operation, rows. Operations:

- store: the W2 rows as a pandas DataFrame, stored into an empty file.
  marketdb: ``MarketDB.store_data(frame, "1m")``. cryptoservice: its ``store_data`` takes
  tickers, so the frame is turned into ``PerpetualMarketTicker`` rows first, timed apart,
  and ``store_data(tickers, Freq.m1)`` is timed. The table gives the call alone, the
  DataFrame-to-stored time with that conversion, and the call followed by ``close()``:
  marketdb checkpoints the WAL of a large store in the background after the call returns
  and ``close`` waits for it (1.9 writes in rollback-journal mode, so its file is whole
  when the call returns).
- read: ``read_data`` of every bar and symbol from the file cryptoservice wrote, by both.
  1.9 reads an end date as its midnight, so it is given the day after the last.
- read_batches (marketdb only): the same bars through ``read_batches`` (65,536 rows a
  batch), every batch taken and dropped: throughput and peak memory of a streamed read.

The two frames are checked equal (``assert_frame_equal``) before any figure is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()


def status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def w2_frame(symbols: int, days: int):
    import numpy as np
    import pandas as pd

    minutes = days * 1440
    start = 1_704_067_200_000
    rng = np.random.default_rng(1)
    ts = start + np.arange(minutes, dtype=np.int64) * 60_000
    frames = []
    for k in range(symbols):
        open_ = np.round(100.0 + k + np.cumsum(rng.integers(-50, 51, minutes)) / 100.0, 2)
        close = np.round(open_ + rng.integers(-20, 21, minutes) / 100.0, 2)
        volume = rng.integers(1, 1000, minutes).astype(np.float64)
        buy = np.floor(volume / 2)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{k:03d}USDT",
                    "timestamp": ts,
                    "open_price": open_,
                    "high_price": np.maximum(open_, close) + 0.05,
                    "low_price": np.minimum(open_, close) - 0.05,
                    "close_price": close,
                    "volume": volume,
                    "close_time": ts + 59_999,
                    "quote_volume": np.round(volume * close, 2),
                    "trades_count": rng.integers(1, 500, minutes).astype(np.int64),
                    "taker_buy_volume": buy,
                    "taker_buy_quote_volume": np.round(buy * close, 2),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def op(args) -> None:
    """One measured operation in this process; prints its JSON line."""
    rows = None
    convert_secs = close_secs = 0.0
    if args.op == "store-marketdb":
        import marketdb

        frame = w2_frame(args.symbols, args.days)
        db = marketdb.MarketDB(args.db)
        before = status_kb("VmRSS")
        reset_peak()
        t = time.perf_counter()
        rows = db.store_data(frame, "1m")
        secs = time.perf_counter() - t
        db.close()
        close_secs = time.perf_counter() - t - secs
    elif args.op == "store-cryptoservice":
        from cryptoservice.data.storage_db import MarketDB
        from cryptoservice.models.enums import Freq
        from cryptoservice.models.market_ticker import PerpetualMarketTicker

        frame = w2_frame(args.symbols, args.days)
        cols = [
            "timestamp", "open_price", "high_price", "low_price", "close_price", "volume",
            "close_time", "quote_volume", "trades_count", "taker_buy_volume", "taker_buy_quote_volume",
        ]
        t = time.perf_counter()
        tickers = [
            PerpetualMarketTicker(r[0], int(r[1]), [str(x) for x in r[1:]] + ["0"])
            for r in frame[["symbol", *cols]].itertuples(index=False, name=None)
        ]
        convert_secs = time.perf_counter() - t
        db = MarketDB(args.db)
        before = status_kb("VmRSS")
        reset_peak()
        t = time.perf_counter()
        db.store_data(tickers, Freq.m1)
        secs = time.perf_counter() - t
        db.close()
        close_secs = time.perf_counter() - t - secs
        rows = len(tickers)
    else:
        symbols = [f"S{k:03d}USDT" for k in range(args.symbols)]
        end = f"2024-01-{1 + args.days:02d}"
        if args.op == "read-marketdb":
            import marketdb

            db = marketdb.MarketDB(args.db, read_only=True)
            read = lambda: db.read_data("2024-01-01", end, "1m", symbols)  # noqa: E731
        elif args.op == "read-batches-marketdb":
            import marketdb

            db = marketdb.MarketDB(args.db, read_only=True)

            class Counted:
                def __init__(self, n: int) -> None:
                    self.n = n

                def __len__(self) -> int:
                    return self.n

            def read():
                n = 0
                for batch in db.read_batches("2024-01-01", end, "1m", symbols, batch_rows=65_536):
                    n += batch.num_rows
                return Counted(n)
        else:
            from cryptoservice.data.storage_db import MarketDB
            from cryptoservice.models.enums import Freq

            db = MarketDB(args.db)
            read = lambda: db.read_data("2024-01-01", end, Freq.m1, symbols)  # noqa: E731
        before = status_kb("VmRSS")
        reset_peak()
        t = time.perf_counter()
        frame = read()
        secs = time.perf_counter() - t
        rows = len(frame)
    # The peaks are read before the (untimed) pickle that lets the driver compare frames.
    peak_kb, anon_kb = status_kb("VmHWM"), status_kb("RssAnon")
    if args.op.startswith("read") and args.pickle:
        frame.to_pickle(args.pickle)
    print(json.dumps({"op": args.op, "rows": rows, "secs": secs, "peak_kb": peak_kb, "before_kb": before, "anon_end_kb": anon_kb, "convert_secs": convert_secs, "close_secs": close_secs}))


def run_op(python: str, name: str, extra: list[str]) -> dict:
    out = subprocess.run(
        [python, str(HERE), "op", name, *extra], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["run", "op"])
    p.add_argument("op", nargs="?")
    p.add_argument("--symbols", type=int, default=100)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--db")
    p.add_argument("--pickle")
    p.add_argument("--out", default="target/bench-python")
    args = p.parse_args()
    if args.mode == "op":
        op(args)
        return

    import pandas as pd

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.glob("*.db*"):
        f.unlink()
    size = ["--symbols", str(args.symbols), "--days", str(args.days)]
    py = sys.executable
    results = {}
    results["store-marketdb"] = run_op(py, "store-marketdb", [*size, "--db", str(out / "marketdb.db")])
    results["store-cryptoservice"] = run_op(py, "store-cryptoservice", [*size, "--db", str(out / "cs.db")])
    results["read-marketdb"] = run_op(
        py, "read-marketdb", [*size, "--db", str(out / "cs.db"), "--pickle", str(out / "marketdb.pkl")]
    )
    results["read-cryptoservice"] = run_op(
        py, "read-cryptoservice", [*size, "--db", str(out / "cs.db"), "--pickle", str(out / "cs.pkl")]
    )
    results["read-batches-marketdb"] = run_op(py, "read-batches-marketdb", [*size, "--db", str(out / "cs.db")])
    pd.testing.assert_frame_equal(pd.read_pickle(out / "marketdb.pkl"), pd.read_pickle(out / "cs.pkl"))
    rows = args.symbols * args.days * 1440
    for r in results.values():
        assert r["rows"] == rows, r
    lines = [
        f"marketdb Python package vs cryptoservice 1.9.0, {args.symbols} symbols x {args.days} days of 1m ({rows} rows); frames equal",
        "| operation | marketdb s | cryptoservice s | speed-up | marketdb peak MiB (growth) | cryptoservice peak MiB (growth) | memory ratio (growth) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("store", "read"):
        m, c = results[f"{name}-marketdb"], results[f"{name}-cryptoservice"]
        mg, cg = (m["peak_kb"] - m["before_kb"]) / 1024, (c["peak_kb"] - c["before_kb"]) / 1024
        lines.append(
            f"| {name}_data | {m['secs']:.3f} | {c['secs']:.3f} | {c['secs'] / m['secs']:.1f}x "
            f"| {m['peak_kb'] / 1024:.0f} ({mg:.0f}) | {c['peak_kb'] / 1024:.0f} ({cg:.0f}) "
            f"| {m['peak_kb'] / c['peak_kb']:.2f} ({mg / cg if cg > 0 else float('nan'):.2f}) |"
        )
    m, c = results["store-marketdb"], results["store-cryptoservice"]
    lines.append(
        f"| store from the DataFrame (1.9 needs tickers: {c['convert_secs']:.3f} s to build them) "
        f"| {m['secs']:.3f} | {c['secs'] + c['convert_secs']:.3f} "
        f"| {(c['secs'] + c['convert_secs']) / m['secs']:.1f}x | | | |"
    )
    ms, cs = m["secs"] + m["close_secs"], c["secs"] + c["close_secs"]
    lines.append(
        f"| store_data, then close (marketdb folds the WAL after the call; close waits for it) "
        f"| {ms:.3f} | {cs:.3f} | {cs / ms:.1f}x | | | |"
    )
    b = results["read-batches-marketdb"]
    lines.append(
        f"| read_batches (65,536 rows a batch, each taken and dropped; {rows / b['secs'] / 1e6:.2f}M rows/s) "
        f"| {b['secs']:.3f} | | | {b['peak_kb'] / 1024:.0f} ({(b['peak_kb'] - b['before_kb']) / 1024:.0f}) | | |"
    )
    report = "\n".join(lines)
    print(report)
    (out / "report.md").write_text(report + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    for f in list(out.glob("*.db*")) + list(out.glob("*.pkl")):
        f.unlink()


if __name__ == "__main__":
    main()
