"""The Python package against its promises: 1.9's method names and frames (checked against
the real cryptoservice 1.9.0 on the same file), every input form, bad input, Arrow without
copies, asyncio, threads."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import marketdb
from conftest import MINUTE, START_MS, SYMBOLS, make_bars, raw_row

from cryptoservice.data.storage_db import MarketDB as CsMarketDB  # noqa: E402
from cryptoservice.models.enums import Freq  # noqa: E402
from cryptoservice.models.market_ticker import PerpetualMarketTicker  # noqa: E402

LONG = [
    "open_price",
    "high_price",
    "low_price",
    "close_price",
    "volume",
    "quote_volume",
    "trades_count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "taker_sell_volume",
    "taker_sell_quote_volume",
]


def tickers(frame: pd.DataFrame) -> list:
    return [PerpetualMarketTicker(r.symbol, int(r.timestamp), raw_row(r)) for r in frame.itertuples()]


def stored(path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT COUNT(*) FROM market_data").fetchone()[0]


# ---- frames equal to cryptoservice 1.9.0 ------------------------------------------------


@pytest.mark.parametrize("writer", ["cryptoservice", "marketdb"])
def test_read_data_equals_cryptoservice_on_the_same_file(bars, db_path, writer):
    if writer == "cryptoservice":
        CsMarketDB(str(db_path)).store_data(tickers(bars), Freq.m1)
    else:
        with marketdb.MarketDB(db_path) as db:
            assert db.store_data(bars, Freq.m1) == len(bars)
    cs = CsMarketDB(str(db_path))
    with marketdb.MarketDB(db_path) as db:
        cases = [
            # 1.9 reads an end date as its midnight; marketdb reads the whole day, so the
            # same bars are asked of 1.9 with the last instant of the day.
            (("2024-01-01", "2024-01-02"), ("2024-01-01", "2024-01-02 23:59:00"), None),
            (("2024-01-01 06:00", "2024-01-01 07:30"), ("2024-01-01 06:00", "2024-01-01 07:30"), None),
            (("2024-01-02", "2024-01-02"), ("2024-01-02", "2024-01-02 23:59:59"), ["close_price", "volume"]),
            (("2024-01-01", "2024-01-01"), ("2024-01-01", "2024-01-01 23:59:59"), ["trades_count", "open_price"]),
        ]
        for ours, theirs, features in cases:
            mine = db.read_data(*ours, Freq.m1, SYMBOLS, features=features)
            want = cs.read_data(*theirs, Freq.m1, SYMBOLS, features=features)
            assert len(mine) > 0
            pd.testing.assert_frame_equal(mine, want)
        # by timestamp: the same inclusive integer bounds for both
        lo, hi = START_MS + 90 * MINUTE, START_MS + 2000 * MINUTE
        pd.testing.assert_frame_equal(
            db.read_data_by_timestamp(lo, hi, Freq.m1, ["ETHUSDT", "BTCUSDT"]),
            cs.read_data_by_timestamp(lo, hi, Freq.m1, ["ETHUSDT", "BTCUSDT"]),
        )
        # the empty result without raising keeps 1.9's shape
        pd.testing.assert_frame_equal(
            db.read_data("2030-01-01", "2030-01-01", "1m", SYMBOLS, raise_on_empty=False),
            cs.read_data("2030-01-01", "2030-01-01", Freq.m1, SYMBOLS, raise_on_empty=False),
        )
        with pytest.raises(ValueError, match="No data found for the specified criteria"):
            db.read_data("2030-01-01", "2030-01-01", "1m", SYMBOLS)


def test_date_only_end_covers_the_whole_day_unlike_1_9(bars, db_path):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        frame = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"])
    assert len(frame) == 1440
    assert frame.index.get_level_values("timestamp")[-1] == pd.Timestamp("2024-01-01 23:59")
    assert len(CsMarketDB(str(db_path)).read_data("2024-01-01", "2024-01-01", Freq.m1, ["BTCUSDT"])) == 1


def test_cryptoservice_reads_what_every_input_form_stored(bars, tmp_path):
    sample = bars[bars["timestamp"] < START_MS + 30 * MINUTE].reset_index(drop=True)
    ticks = tickers(sample)
    forms = {
        "dataframe": sample,
        "dataframe_binance_names": sample.rename(
            columns={"timestamp": "open_time", "open_price": "open", "trades_count": "count"}
        ).drop(columns=["close_time"]),
        "indexed_frame": sample.set_index(["symbol", "timestamp"]),
        "datetime_column": sample.assign(timestamp=pd.to_datetime(sample["timestamp"], unit="ms", utc=True)),
        "pyarrow": pa.Table.from_pandas(sample, preserve_index=False),
        "tickers": ticks,
        "nested_tickers": [[t for t in ticks if t.symbol == s] for s in SYMBOLS],
        "dicts": sample.to_dict("records"),
        "pairs": [(t.symbol, t.raw_data) for t in ticks],
    }
    reference = None
    for name, data in forms.items():
        path = tmp_path / f"{name}.db"
        with marketdb.MarketDB(path) as db:
            assert db.store_data(data, "1m") == len(sample), name
        frame = CsMarketDB(str(path)).read_data("2024-01-01", "2024-01-01 00:29", Freq.m1, SYMBOLS)
        if reference is None:
            reference = frame
            assert len(frame) == len(sample)
            assert frame.loc[("BTCUSDT", pd.Timestamp("2024-01-01 00:00")), "open_price"] == sample.loc[0, "open_price"]
        else:
            pd.testing.assert_frame_equal(frame, reference, obj=name)


def test_summary_symbols_and_metrics(bars, db_path):
    funding = [
        {"symbol": "BTCUSDT", "funding_time": START_MS + h * 8 * 3_600_000, "funding_rate": 0.0001 * (h + 1),
         "mark_price": 100.5, "index_price": None}
        for h in range(6)
    ]
    oi = [{"symbol": "BTCUSDT", "time": START_MS + i * 300_000, "open_interest": 1000.0 + i,
           "open_interest_value": 5.0 * i} for i in range(24)]
    lsr = [{"symbol": "ETHUSDT", "timestamp": START_MS + i * 300_000, "ratio_type": "account",
            "long_short_ratio": 1.5, "long_account": 0.6, "short_account": 0.4} for i in range(12)]
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        assert db.store_funding_rate(funding) == 6
        assert db.store_open_interest(oi) == 24
        assert db.store_long_short_ratio(lsr) == 12
        summary = db.get_data_summary()
        assert summary["market_data"][0]["freq"] == "1m"
        assert summary["market_data"][0]["record_count"] == len(bars)
        assert summary["market_data"][0]["unique_symbols"] == 3
        assert summary["funding_rate"]["record_count"] == 6
        assert db.get_symbols_list("1m") == sorted(SYMBOLS)
        fr = db.read_funding_rate("2024-01-01", "2024-01-02", ["BTCUSDT"])
        assert list(fr.columns) == ["funding_rate", "funding_time", "mark_price", "index_price"]
        assert fr["funding_rate"].tolist() == pytest.approx([0.0001 * (h + 1) for h in range(6)])
        assert fr["index_price"].isna().all()
        o = db.read_open_interest("2024-01-01", "2024-01-01", ["BTCUSDT"], interval="5m")
        assert list(o.columns) == ["interval", "open_interest", "open_interest_value"]
        assert len(o) == 24 and o["open_interest"].iloc[-1] == 1023.0
        r = db.read_long_short_ratio("2024-01-01", "2024-01-01", ["ETHUSDT"], period="5m", ratio_type="account")
        assert len(r) == 12 and (r["long_short_ratio"] == 1.5).all()
        with pytest.raises(ValueError, match="No funding rate data"):
            db.read_funding_rate("2024-01-01", "2024-01-02", ["SOLUSDT"])
    # 1.9 reads the funding rates marketdb stored
    theirs = CsMarketDB(str(db_path)).read_funding_rate("2024-01-01", "2024-01-03", ["BTCUSDT"])
    assert theirs["funding_rate"].tolist() == pytest.approx(fr["funding_rate"].tolist())


def test_completeness_resample_and_combined(db_path):
    hole = START_MS + 61 * MINUTE
    data = make_bars(symbols=["BTCUSDT"], minutes=240, skip=(hole,))
    with marketdb.MarketDB(db_path) as db:
        db.store_data(data, "1m")
        report = db.check_completeness("2024-01-01 00:00", "2024-01-01 03:59", "1m", ["BTCUSDT"])
        (btc,) = report["symbols"]
        assert (btc["expected"], btc["present"]) == (240, 239), json.dumps(btc)[:400]
        assert [(r["start"], r["count"]) for r in btc["missing"]] == [(hole, 1)]
        hourly = db.resample("2024-01-01", "2024-01-01 03:59", "1m", "1h", ["BTCUSDT"])
        assert len(hourly) == 4 and hourly.attrs["incomplete"] == 1
        first = data[data["timestamp"] < START_MS + 60 * MINUTE]
        row = hourly.loc[("BTCUSDT", pd.Timestamp("2024-01-01 00:00"))]
        assert row["open_price"] == first["open_price"].iloc[0]
        assert row["high_price"] == first["high_price"].max()
        assert row["low_price"] == first["low_price"].min()
        assert row["close_price"] == first["close_price"].iloc[-1]
        assert row["volume"] == pytest.approx(first["volume"].sum())
        assert row["trades_count"] == first["trades_count"].sum()
        db.store_funding_rate([{"symbol": "BTCUSDT", "funding_time": START_MS, "funding_rate": 0.0003}])
        combined = db.get_combined_data(["BTCUSDT"], "2024-01-01", "2024-01-01 00:09", "1m", include_funding_rate=True)
        assert list(combined.columns) == LONG + ["funding_rate"]
        # as of each bar's close: the 00:00 funding is known on every later bar, not only at 00:00
        assert (combined["funding_rate"] == 0.0003).all() and len(combined) == 10


def test_exports_load(bars, tmp_path):
    path = tmp_path / "m.db"
    with marketdb.MarketDB(path) as db:
        db.store_data(bars, "1m")
        rep = db.export_to_numpy(SYMBOLS, "2024-01-01", "2024-01-01", "1m", tmp_path / "npy", features=["cls", "vol"])
        files = sorted((tmp_path / "npy").rglob("*.npy"))
        assert files, rep
        matrix = np.load(next(f for f in files if "cls" in str(f)))
        assert matrix.shape == (3, 1440)
        btc = bars[bars["symbol"] == "BTCUSDT"]["close_price"].to_numpy()[:1440]
        np.testing.assert_array_equal(matrix[0], btc)
        db.export_to_csv(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", tmp_path / "out.csv")
        csv = pd.read_csv(tmp_path / "out.csv")
        assert len(csv) == 1440
        db.export_to_parquet(SYMBOLS, "2024-01-01", "2024-01-02", "1m", tmp_path / "out.parquet", compression="snappy")
        assert pq.read_table(tmp_path / "out.parquet").num_rows == len(bars)
        db.export_dataset(tmp_path / "ds", "1m")
        assert len(list((tmp_path / "ds").rglob("*.parquet"))) >= 2
        db.export_to_files(tmp_path / "files", "2024-01-01", "2024-01-02", "1m", SYMBOLS)
        assert len(list((tmp_path / "files").rglob("*.npy"))) > 0


def test_read_arrow_is_a_pyarrow_table_through_the_capsule(bars, db_path):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        table = db.read_arrow("2024-01-01", "2024-01-02", "1m")
        assert isinstance(table, pa.Table) and table.num_rows == len(bars)
        assert table.schema.field("timestamp").type == pa.timestamp("ms", tz="UTC")
        assert table.column("cls").to_numpy().tolist() == bars["close_price"].tolist()
        # the native stream speaks the PyCapsule protocol and can be taken once
        stream = db._native.read("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"], ["cls"], False, False)
        assert stream.num_rows == 1440
        assert pa.table(stream).num_rows == 1440
        with pytest.raises(ValueError, match="already consumed"):
            stream.__arrow_c_stream__()


# ---- bad input --------------------------------------------------------------------------


def test_bad_input_raises_and_stores_nothing(bars, db_path, tmp_path):
    sample = bars.head(100).copy()
    with marketdb.MarketDB(db_path) as db:
        bad = sample.copy()
        bad.loc[50, "high_price"] = bad.loc[50, "low_price"] - 1
        with pytest.raises(ValueError, match="BTCUSDT"):
            db.store_data(bad, "1m")
        assert stored(db_path) == 0
        with pytest.raises(ValueError, match="freq|interval"):
            db.store_data(sample, "7m")
        with pytest.raises(ValueError, match="column open_price"):
            db.store_data(sample.assign(open_price="abc"), "1m")
        with pytest.raises(ValueError, match="close_price"):
            db.store_data(sample.drop(columns=["close_price"]), "1m")
        with pytest.raises(ValueError):
            db.store_data(sample.assign(symbol="BTC/USDT; DROP TABLE"), "1m")
        with pytest.raises(ValueError, match="epoch seconds|epoch milliseconds"):
            db.store_data(sample.assign(timestamp=sample["timestamp"] // 1000), "1m")
        with pytest.raises(ValueError):
            db.store_data(sample.assign(volume=np.nan), "1m")
        with pytest.raises(TypeError):
            db.store_data(42, "1m")
        with pytest.raises(TypeError):
            db.store_data([1, 2, 3], "1m")
        assert db.store_data([], "1m") == 0
        assert stored(db_path) == 0
        with pytest.raises(ValueError):
            db.read_data("2024-01-02", "2024-01-01", "1m", ["BTCUSDT"])
        with pytest.raises(ValueError):
            db.read_data("yesterday", "2024-01-01", "1m", ["BTCUSDT"])
        with pytest.raises(ValueError):
            db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"], features=["nope"])
        with pytest.raises(ValueError):
            db.read_data_by_timestamp("abc", 5, "1m", ["BTCUSDT"])
        with pytest.raises(ValueError):
            db.read_data("2024-01-01", "2024-01-01", 5, ["BTCUSDT"])
        with pytest.raises(ValueError):
            db.read_data("2024-01-01", "2024-01-01", "1m", [3])
        with pytest.raises(ValueError):
            db.export_to_csv(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", tmp_path / "x.csv", chunk_size=0)
        with pytest.raises(ValueError, match="pool"):
            marketdb.MarketDB(tmp_path / "other.db", pool="fast")
    with pytest.raises(ValueError, match="closed"):
        db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"])
    db.close()  # twice is allowed


def test_storage_errors_are_oserrors(bars, tmp_path):
    path = tmp_path / "m.db"
    with marketdb.MarketDB(path) as db:
        db.store_data(bars.head(10), "1m")
    with marketdb.MarketDB(path, read_only=True) as ro:
        assert ro.read_only
        assert len(ro.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"])) == 10
        with pytest.raises(OSError) as err:
            ro.store_data(bars.head(10), "1m")
        assert isinstance(err.value, marketdb.StorageError)
    with pytest.raises(OSError):
        marketdb.MarketDB(tmp_path / "missing.db", read_only=True)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        marketdb.MarketDB(blocker / "sub" / "m.db")
    not_sqlite = tmp_path / "junk.db"
    not_sqlite.write_bytes(b"x" * 4096)
    with pytest.raises(OSError):
        marketdb.MarketDB(not_sqlite)
    # an export never replaces the database it reads
    with marketdb.MarketDB(path) as db, pytest.raises(ValueError, match="is the open database"):
        db.export_to_parquet(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", path)
    assert stored(path) == 10


# ---- asyncio and threads ----------------------------------------------------------------


def test_async_api(bars, tmp_path):
    path = tmp_path / "a.db"

    async def main():
        async with marketdb.AsyncMarketDB(path) as db:
            assert await db.store_data(bars, Freq.m1) == len(bars)
            frames = await asyncio.gather(
                *[db.read_data("2024-01-01", "2024-01-02", "1m", [s]) for s in SYMBOLS]
            )
            summary = await db.get_data_summary()
            table = await db.read_arrow("2024-01-01", "2024-01-01", "1m", ["ETHUSDT"])
            exporter = marketdb.AsyncDataExporter(db)
            await exporter.export_to_parquet(SYMBOLS, "2024-01-01", "2024-01-01", "1m", tmp_path / "a.parquet")
            await exporter.export_to_numpy(SYMBOLS, "2024-01-01", "2024-01-01", "1m", tmp_path / "npy")
            await exporter.export_to_csv(SYMBOLS, "2024-01-01", "2024-01-01", "1m", tmp_path / "a.csv")
            with pytest.raises(ValueError, match="No data found"):
                await db.read_data("2030-01-01", "2030-01-01", "1m", SYMBOLS)
            report = await db.check_completeness("2024-01-01", "2024-01-02", "1m", SYMBOLS)
            return frames, summary, table, report

    frames, summary, table, report = asyncio.run(main())
    assert [len(f) for f in frames] == [2 * 1440] * 3
    with marketdb.MarketDB(path) as db:
        pd.testing.assert_frame_equal(frames[1], db.read_data("2024-01-01", "2024-01-02", "1m", ["ETHUSDT"]))
    assert summary["market_data"][0]["record_count"] == len(bars)
    assert table.num_rows == 1440
    assert pq.read_table(tmp_path / "a.parquet").num_rows == 3 * 1440
    assert report["symbols"]


def test_async_calls_leave_the_event_loop_free(bars, tmp_path):
    path = tmp_path / "loop.db"
    with marketdb.MarketDB(path) as db:
        db.store_data(make_bars(minutes=20 * 1440), "1m")

    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        async with marketdb.AsyncMarketDB(path) as db:
            t = asyncio.create_task(ticker())
            frame = await db.read_data("2024-01-01", "2024-01-20", "1m", SYMBOLS)
            done = True
            await t
        return len(frame), ticks

    rows, ticks = asyncio.run(main())
    assert rows == 3 * 20 * 1440
    # a blocking call would have kept the ticker from running at all
    assert ticks > 1


def test_two_readers_while_one_writes(tmp_path):
    path = tmp_path / "t.db"
    days = 12  # 3 symbols x 12 days of 1m: above the split read's 50,000 bars
    data = make_bars(minutes=days * 1440)
    errors: list[BaseException] = []
    seen: list[int] = []
    with marketdb.MarketDB(path) as db:
        db.store_data(data[data["timestamp"] < START_MS + 1440 * MINUTE], "1m")
        stop = threading.Event()

        def writer():
            try:
                for d in range(1, days):
                    lo, hi = START_MS + d * 1440 * MINUTE, START_MS + (d + 1) * 1440 * MINUTE
                    db.store_data(data[(data["timestamp"] >= lo) & (data["timestamp"] < hi)], "1m")
            except BaseException as e:  # noqa: BLE001
                errors.append(e)
            finally:
                stop.set()

        def reader():
            try:
                while not stop.is_set():
                    frame = db.read_data("2024-01-01", "2024-01-12", "1m", SYMBOLS)
                    # a write is one transaction: a reader sees whole days, never half of one
                    assert len(frame) % (3 * 1440) == 0, len(frame)
                    seen.append(len(frame))
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        assert len(db.read_data("2024-01-01", "2024-01-12", "1m", SYMBOLS)) == len(data)
    assert seen and min(seen) >= 3 * 1440


def test_stubs_name_every_public_method_with_its_parameters():
    import ast
    import inspect

    stub = ast.parse((Path(marketdb.__file__).parent / "__init__.pyi").read_text())
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    for cls in (marketdb.MarketDB, marketdb.AsyncMarketDB, marketdb.AsyncDataExporter):
        stubs = {
            f.name: f for f in classes[cls.__name__].body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for name in dir(cls):
            if not name.startswith("_") or name in ("__init__", "__enter__", "__exit__", "__aenter__", "__aexit__"):
                member = getattr(cls, name)
                if isinstance(member, property):
                    assert name in stubs, f"{cls.__name__}.{name} has no stub"
                elif callable(member) and name in vars(cls):
                    assert name in stubs, f"{cls.__name__}.{name} has no stub"
                    f = stubs[name]
                    assert isinstance(f, ast.AsyncFunctionDef) == inspect.iscoroutinefunction(member), name
                    a = f.args
                    stubbed = [
                        (p.arg, kind)
                        for params, kind in ((a.args, "positional"), (a.kwonlyargs, "keyword"))
                        for p in params
                    ]
                    real = [
                        (p.name, "keyword" if p.kind is inspect.Parameter.KEYWORD_ONLY else "positional")
                        for p in inspect.signature(member).parameters.values()
                        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
                    ]
                    assert stubbed == real, f"{cls.__name__}.{name}: stub {stubbed} != {real}"


def test_index_levels_are_sorted_as_1_9_builds_them(db_path):
    # ETH starts earlier than BTC: levels in order of appearance would not be sorted.
    late = make_bars(symbols=["BTCUSDT"], minutes=60, start_ms=START_MS + 30 * MINUTE)
    early = make_bars(symbols=["ETHUSDT"], minutes=60)
    with marketdb.MarketDB(db_path) as db:
        db.store_data(pd.concat([late, early]), "1m")
        mine = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT", "ETHUSDT"])
    theirs = CsMarketDB(str(db_path)).read_data("2024-01-01", "2024-01-01 23:59", Freq.m1, ["BTCUSDT", "ETHUSDT"])
    pd.testing.assert_frame_equal(mine, theirs)
    for a, b in zip(mine.index.levels, theirs.index.levels):
        pd.testing.assert_index_equal(a, b)
    assert mine.index.levels[1].is_monotonic_increasing


def test_every_async_method_matches_the_blocking_one(bars, tmp_path):
    path = tmp_path / "both.db"
    funding = [{"symbol": "BTCUSDT", "funding_time": START_MS, "funding_rate": 0.0002}]
    oi = [{"symbol": "BTCUSDT", "time": START_MS + i * 300_000, "open_interest": 10.0 + i} for i in range(6)]
    lsr = [{"symbol": "BTCUSDT", "timestamp": START_MS, "ratio_type": "account", "long_short_ratio": 1.1}]
    lo, hi = START_MS + 100 * MINUTE, START_MS + 200 * MINUTE

    async def main():
        async with marketdb.AsyncMarketDB(path) as db:
            await db.store_data(bars, "1m")
            assert await db.store_funding_rate(funding) == 1
            assert await db.store_open_interest(oi) == 6
            assert await db.store_long_short_ratio(lsr) == 1
            out = {
                "by_ts": await db.read_data_by_timestamp(lo, hi, "1m", SYMBOLS),
                "fr": await db.read_funding_rate("2024-01-01", "2024-01-01", ["BTCUSDT"]),
                "oi": await db.read_open_interest("2024-01-01", "2024-01-01", ["BTCUSDT"]),
                "lsr": await db.read_long_short_ratio("2024-01-01", "2024-01-01", ["BTCUSDT"]),
                "hourly": await db.resample("2024-01-01", "2024-01-01", "1m", "1h", SYMBOLS),
                "combined": await db.get_combined_data(
                    ["BTCUSDT"], "2024-01-01", "2024-01-01 02:00", "1m",
                    include_funding_rate=True, include_open_interest=True,
                ),
                "symbols": await db.get_symbols_list(),
            }
            await db.export_to_files(tmp_path / "files_async", "2024-01-01", "2024-01-01", "1m", SYMBOLS)
            await db.export_to_files_by_timestamp(tmp_path / "ts_async", lo, hi, "1m", SYMBOLS)
            await marketdb.AsyncDataExporter(db).export_dataset(tmp_path / "ds_async", "1m")
        with pytest.raises(ValueError, match="closed"):
            await db.read_data("2024-01-01", "2024-01-01", "1m", SYMBOLS)
        return out

    got = asyncio.run(main())
    with marketdb.MarketDB(path, read_only=True) as db:
        want = {
            "by_ts": db.read_data_by_timestamp(lo, hi, "1m", SYMBOLS),
            "fr": db.read_funding_rate("2024-01-01", "2024-01-01", ["BTCUSDT"]),
            "oi": db.read_open_interest("2024-01-01", "2024-01-01", ["BTCUSDT"]),
            "lsr": db.read_long_short_ratio("2024-01-01", "2024-01-01", ["BTCUSDT"]),
            "hourly": db.resample("2024-01-01", "2024-01-01", "1m", "1h", SYMBOLS),
            "combined": db.get_combined_data(
                ["BTCUSDT"], "2024-01-01", "2024-01-01 02:00", "1m",
                include_funding_rate=True, include_open_interest=True,
            ),
        }
    assert got["symbols"] == sorted(SYMBOLS)
    assert len(got["by_ts"]) == 3 * 101 and len(got["hourly"]) == 3 * 24 and len(got["combined"]) == 121
    assert got["combined"]["open_interest"].iloc[-1] == 15.0
    for key, frame in want.items():
        pd.testing.assert_frame_equal(got[key], frame, obj=key)
    assert list((tmp_path / "files_async").rglob("*.npy")) and list((tmp_path / "ts_async").rglob("*.npy"))
    assert list((tmp_path / "ds_async").rglob("*.parquet"))
    # the timestamp export holds exactly the bars of [lo, hi], on the day's full grid
    with marketdb.MarketDB(path, read_only=True) as db:
        report = db.export_to_files_by_timestamp(tmp_path / "ts_sync", lo, hi, "1m", SYMBOLS)
    assert report["bars"] == 3 * 101
    cls = np.load(tmp_path / "ts_sync" / "1m" / "cls" / "20240101.npy")
    assert cls.shape == (3, 1440)
    assert np.isfinite(cls).sum() == 3 * 101 and np.isfinite(cls[:, 100:201]).all()


def test_returned_frames_are_writable_and_one_feature_spelled_twice_is_one_column(bars, db_path):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars.head(100), "1m")
        frame = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"])
        frame.iloc[0, 0] = 7.0
        frame.loc[frame.index[1], "close_price"] = np.nan
        frame["trades_count"] += 1
        assert frame.iloc[0, 0] == 7.0 and np.isnan(frame["close_price"].iloc[1])
        twice = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"], features=["close_price", "CLS", "vol"])
        assert list(twice.columns) == ["close_price", "vol"]
        hourly = db.resample("2024-01-01", "2024-01-01", "1m", "1h", ["BTCUSDT"])
        hourly.iloc[0, 0] = 1.0
        # an untouched read is unchanged by edits to an earlier frame
        again = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT"])
        assert again.iloc[0, 0] == bars.loc[0, "open_price"]


def test_long_short_ratios_read_as_1_9_reads_them(db_path):
    rows = [
        {"symbol": "BTCUSDT", "timestamp": START_MS + i * 300_000, "ratio_type": "account",
         "long_short_ratio": 1.25, "long_account": 0.55, "short_account": 0.45}
        for i in range(4)
    ]
    with marketdb.MarketDB(db_path) as db:
        db.store_long_short_ratio(rows)
        mine = db.read_long_short_ratio("2024-01-01", "2024-01-01 01:00", ["BTCUSDT"], ratio_type="account")
    theirs = CsMarketDB(str(db_path)).read_long_short_ratio(
        "2024-01-01", "2024-01-01 01:00", ["BTCUSDT"], period="5m", ratio_type="account"
    )
    assert (mine["ratio_type"] == "account").all()
    pd.testing.assert_frame_equal(mine, theirs)


def test_first_use_from_many_tasks_or_threads_opens_once(tmp_path):
    path = tmp_path / "new" / "a.db"

    async def main():
        db = marketdb.AsyncMarketDB(path)
        sample = make_bars(symbols=["BTCUSDT"], minutes=10)
        counts = await asyncio.gather(
            db.store_data(sample, "1m"), db.get_symbols_list(), db.get_data_summary(), db.get_symbols_list()
        )
        await db.close()
        return counts

    assert asyncio.run(main())[0] == 10
    path2 = tmp_path / "new2" / "b.db"
    errors: list[BaseException] = []

    def open_one():
        try:
            with marketdb.MarketDB(path2) as db:
                db.get_data_summary()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert sorted(p.name for p in path2.parent.iterdir() if not p.name.startswith("b.db-")) == ["b.db"]


def test_more_bad_arguments_are_value_errors(bars, tmp_path):
    with pytest.raises(ValueError, match="mmap_size"):
        marketdb.MarketDB(tmp_path / "m.db", mmap_size=-1)
    with pytest.raises(ValueError, match="NUL"):
        marketdb.MarketDB(str(tmp_path / "a\x00b.db"))
    with marketdb.MarketDB(tmp_path / "m.db") as db:
        db.store_data(bars.head(10), "1m")
        with pytest.raises(ValueError):
            db.read_data_by_timestamp(START_MS + MINUTE, START_MS, "1m", ["BTCUSDT"])
        assert len(db.read_data_by_timestamp(START_MS, START_MS, "1m", ["BTCUSDT"])) == 1
        row = raw_row(next(bars.head(1).itertuples()))
        assert db.store_data([["BTCUSDT", row]], "1m") == 1
        out = tmp_path / "x"
        with pytest.raises(ValueError, match="bfill"):
            db.export_to_numpy(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", out, fill="bfill")
        with pytest.raises(ValueError, match="brotli"):
            db.export_to_parquet(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", out, compression="brotli")
        with pytest.raises(ValueError, match="chunk_size"):
            db.export_to_csv(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", out, chunk_size=True)
        assert not out.exists()
        # The accepted spellings of the export crate: "pad" is forward fill.
        report = db.export_to_numpy(["BTCUSDT"], "2024-01-01", "2024-01-01", "1m", out, fill="pad")
        assert report and out.exists()


def test_timestamp_codes_equal_a_sorted_factorize():
    from marketdb._common import _sorted_codes

    rng = np.random.default_rng(3)
    cases = [
        np.array([5], dtype=np.int64),
        np.array([7, 7, 7], dtype=np.int64),
        START_MS + MINUTE * np.array([3, 0, 1, 3, 9, 0], dtype=np.int64),  # gaps and repeats
        START_MS + np.array([0, 60_000, 90_000, 150_000], dtype=np.int64),  # off the smallest step
        np.array([0, 10**12], dtype=np.int64),  # a grid far larger than the data
    ]
    for _ in range(50):
        step = int(rng.choice([1000, 60_000, 3_600_000]))
        cases.append(START_MS + step * rng.integers(0, 500, rng.integers(1, 300)))
    for ts in cases:
        codes, levels = _sorted_codes(ts)
        want_codes, want_levels = pd.factorize(ts, sort=True)
        np.testing.assert_array_equal(np.asarray(levels), np.asarray(want_levels))
        np.testing.assert_array_equal(np.asarray(codes), want_codes)


def test_1_9_inspection_helpers_equal_cryptoservice_and_async_equals_blocking(bars, db_path):
    theirs = CsMarketDB(str(db_path))
    theirs.store_data(tickers(bars), Freq.m1)
    order = ["SOLUSDT", "BTCUSDT"]  # not sorted: 1.9 keeps the caller's order
    with marketdb.MarketDB(db_path, read_only=True) as mine:
        latest = mine.get_latest_data(SYMBOLS, "1m", limit=3)
        pd.testing.assert_frame_equal(latest, theirs.get_latest_data(SYMBOLS, Freq.m1, 3))
        assert len(latest) == 9 and latest.loc["BTCUSDT"].index.is_monotonic_decreasing
        assert mine.get_latest_data(SYMBOLS, "1m", limit=0).empty and theirs.get_latest_data(SYMBOLS, Freq.m1, 0).empty
        assert mine.get_latest_data(["XRPUSDT"], "1m").empty
        for lo, hi, expected in (("2024-01-01", "2024-01-02", True), ("2024-02-01", "2024-02-02", False)):
            assert mine.data_exists("BTCUSDT", lo, hi, "1m") is expected
            assert theirs.data_exists("BTCUSDT", lo, hi, Freq.m1) is expected
        assert mine.get_available_dates("BTCUSDT", "1m") == theirs.get_available_dates("BTCUSDT", Freq.m1)
        assert mine.get_available_dates("BTCUSDT", "1m") == ["2024-01-01", "2024-01-02"]
        for freq in (None, Freq.m1, Freq.h1):
            assert mine.get_symbol_data_range("BTCUSDT", freq) == theirs.get_symbol_data_range("BTCUSDT", freq)
        with pytest.raises(ValueError, match="banana"):
            mine.get_symbol_data_range("BTCUSDT", "banana")
        # 1.9 reads a date-only end as its midnight; marketdb as the whole day. The day after
        # the last bar gives both the same bars.
        args = (order, "2024-01-01", "2024-01-03")
        aggregated = mine.get_aggregated_data(*args, "1m", agg_period="4h")
        pd.testing.assert_frame_equal(aggregated, theirs.get_aggregated_data(*args, Freq.m1, agg_period="4h"))
        assert list(aggregated.index.get_level_values("symbol").unique()) == order and len(aggregated) == 2 * 12
        custom = {"close_price": "last", "volume": "max"}
        pd.testing.assert_frame_equal(
            mine.get_aggregated_data(*args, "1m", "1D", custom),
            theirs.get_aggregated_data(*args, Freq.m1, "1D", custom),
        )
        stats = mine.get_data_statistics(*args, "1m", features=["close_price", "volume"])
        pd.testing.assert_frame_equal(stats, theirs.get_data_statistics(*args, Freq.m1, ["close_price", "volume"]))
        assert stats.loc[("SOLUSDT", "count"), "volume"] == 2 * 1440
        assert mine.get_aggregated_data(["XRPUSDT"], "2024-01-01", "2024-01-02", "1m").empty
        with pytest.raises(ValueError, match="limit"):
            mine.get_latest_data(SYMBOLS, "1m", limit=-1)
        with pytest.raises(ValueError, match="symbol"):
            mine.get_available_dates(["BTCUSDT"], "1m")
        want = {
            "latest": latest,
            "exists": mine.data_exists("ETHUSDT", "2024-01-02", "2024-01-02", "1m"),
            "dates": mine.get_available_dates("SOLUSDT", "1m"),
            "range": mine.get_symbol_data_range("SOLUSDT"),
            "aggregated": aggregated,
            "stats": stats,
        }

    async def main():
        async with marketdb.AsyncMarketDB(db_path, read_only=True) as db:
            return {
                "latest": await db.get_latest_data(SYMBOLS, "1m", limit=3),
                "exists": await db.data_exists("ETHUSDT", "2024-01-02", "2024-01-02", "1m"),
                "dates": await db.get_available_dates("SOLUSDT", "1m"),
                "range": await db.get_symbol_data_range("SOLUSDT"),
                "aggregated": await db.get_aggregated_data(*args, "1m", agg_period="4h"),
                "stats": await db.get_data_statistics(*args, "1m", features=["close_price", "volume"]),
            }

    got = asyncio.run(main())
    for key, value in want.items():
        if isinstance(value, pd.DataFrame):
            pd.testing.assert_frame_equal(got[key], value, obj=key)
        else:
            assert got[key] == value, key


def test_hourly_spellings_find_the_same_range(bars, db_path):
    hourly = bars[bars["timestamp"] % 3_600_000 == 0].drop(columns=["close_time"])
    with marketdb.MarketDB(db_path) as db:
        assert db.store_data(hourly, "1h") == len(hourly)
        upper = db.get_symbol_data_range("BTCUSDT", "1H")
        assert upper == db.get_symbol_data_range("BTCUSDT", "1h")
        assert upper["frequency"] == "1h" and upper["record_count"] == 48


@pytest.mark.parametrize("kind", ["blocking", "asyncio"])
def test_a_script_that_never_closes_leaves_a_whole_database_file(tmp_path, kind):
    """A large store's WAL checkpoint runs after the call; at interpreter exit the package
    closes what is still open, so the database file alone holds every row."""
    import subprocess
    import sys

    path = tmp_path / "m.db"
    script = f"""
import asyncio, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import marketdb
from conftest import make_bars
bars = make_bars(symbols=["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "ADAUSDT"], minutes=100 * 1440)
if {kind!r} == "blocking":
    db = marketdb.MarketDB({str(path)!r})
    print(db.store_data(bars, "1m"))
else:
    async def main():
        db = marketdb.AsyncMarketDB({str(path)!r})
        print(await db.store_data(bars, "1m"))
        return db
    db = asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(6 * 100 * 1440)]
    wal = Path(str(path) + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0, "the rows were left in the WAL"
    copy = tmp_path / "copy.db"
    copy.write_bytes(path.read_bytes())
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT COUNT(*) FROM market_data").fetchone()[0] == 6 * 100 * 1440


def _vision_server(files: dict[str, bytes]):
    """A loopback HTTP server answering the paths of ``files`` (404 otherwise); returns
    its base URL, its request log and the server (to shut down)."""
    import http.server

    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (the http.server name)
            log.append(self.path)
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", log, server


def test_download_from_a_loopback_vision_server_and_read_the_bars(tmp_path):
    import hashlib
    import io
    import zipfile

    bars = make_bars(symbols=["BTCUSDT"], minutes=2 * 1440)
    files: dict[str, bytes] = {}
    for day, frame in bars.groupby(bars["timestamp"] // 86_400_000):
        date = pd.Timestamp(int(day) * 86_400_000, unit="ms").strftime("%Y-%m-%d")
        name = f"BTCUSDT-1m-{date}"
        csv = "".join(",".join(str(v) for v in raw_row(r)) + "\n" for r in frame.itertuples())
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"{name}.csv", csv)
        body = buf.getvalue()
        path = f"/data/spot/daily/klines/BTCUSDT/1m/{name}.zip"
        files[path] = body
        files[path + ".CHECKSUM"] = f"{hashlib.sha256(body).hexdigest()}  {name}.zip\n".encode()
    base, log, server = _vision_server(files)
    try:
        with marketdb.MarketDB(tmp_path / "dl.db") as db:
            report = db.download(
                "spot", ["BTCUSDT"], "2024-01-01", "2024-01-03", "1m", source="vision", base_url=base
            )
            assert report["fetched"] == 2, report
            assert report["rows"] == 2 * 1440
            # Vision has no file for 3 January: recorded, with the answer that shows it.
            assert report["gap_kinds"] == {"not_published": 1}, report
            assert report["requests"] == len(log)
            got = db.read_data("2024-01-01", "2024-01-02", "1m", ["BTCUSDT"])
            assert len(got) == 2 * 1440
            want = bars.set_index(["symbol", "timestamp"])["close_price"].to_numpy()
            np.testing.assert_array_equal(got["close_price"].to_numpy(), want)
            with pytest.raises(ValueError, match="market"):
                db.download("moon", ["BTCUSDT"], "2024-01-01", "2024-01-03", "1m", base_url=base)
        # The async API runs the same download (nothing left to fetch).
        async def again():
            async with marketdb.AsyncMarketDB(tmp_path / "dl.db") as adb:
                return await adb.download(
                    "spot", ["BTCUSDT"], "2024-01-01", "2024-01-03", "1m", source="vision", base_url=base
                )

        second = asyncio.run(again())
        assert second["fetched"] == 0 and second["skipped"] == 1, second
    finally:
        server.shutdown()


def test_catalog_is_a_frame_and_sets_need_it(tmp_path):
    path = tmp_path / "cat.db"
    with marketdb.MarketDB(path) as db:
        empty = db.catalog()
        assert list(empty.columns) == marketdb._ops.CATALOG_COLUMNS
        assert len(empty) == 0
        # A set without a catalog is refused, naming what to run.
        with pytest.raises(ValueError, match="catalog refresh"):
            db.download("spot", "*USDT", "2024-01-01", "2024-01-03", "1h", source="vision")
    # What a refresh stores (listed on 1 February 2024): BTCUSDT's last file is 31
    # January (still listed), OLDUSDT's 10 January (delisted).
    listed_at = int(pd.Timestamp("2024-02-01", tz="UTC").timestamp() * 1000)
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO archive_catalog VALUES ('spot', 'klines', ?, '1h', 'daily', ?, ?, ?, '', ?)",
            [
                ("BTCUSDT", "2024-01-05", "2024-01-31", 27, listed_at),
                ("OLDUSDT", "2023-12-01", "2024-01-10", 41, listed_at),
                ("ETHBTC", "2024-01-01", "2024-01-31", 31, listed_at),
            ],
        )
    with marketdb.MarketDB(path) as db:
        frame = db.catalog(symbols="*USDT")
        assert frame["symbol"].tolist() == ["BTCUSDT", "OLDUSDT"]
        assert frame["delisted"].tolist() == [False, True]
        assert frame["files"].tolist() == [27, 41]
        assert frame["first_day"].tolist() == [
            pd.Timestamp("2024-01-05", tz="UTC"),
            pd.Timestamp("2023-12-01", tz="UTC"),
        ]
        assert frame["last_day"].iloc[1] == pd.Timestamp("2024-01-10", tz="UTC")
        gone = db.catalog(market="spot", kind="klines", freq="1h", delisted=True)
        assert gone["symbol"].tolist() == ["OLDUSDT"]
        with pytest.raises(ValueError, match="re:"):
            db.catalog(symbols="re:(")

    # A set downloads the catalogued live symbols inside their lives: BTCUSDT from 5
    # January (its first file), not OLDUSDT (delisted), not ETHBTC (not USDT).
    import hashlib
    import io
    import zipfile

    files: dict[str, bytes] = {}
    for day in ("2024-01-05", "2024-01-06"):
        start = int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)
        name = f"BTCUSDT-1h-{day}"
        rows = []
        for h in range(24):
            t = start + h * 3_600_000
            rows.append(f"{t},100,101,99,100.5,10,{t + 3_599_999},1000,7,4,400,0\n")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(f"{name}.csv", "".join(rows))
        body = buf.getvalue()
        url_path = f"/data/spot/daily/klines/BTCUSDT/1h/{name}.zip"
        files[url_path] = body
        files[url_path + ".CHECKSUM"] = f"{hashlib.sha256(body).hexdigest()}  {name}.zip\n".encode()
    base, log, server = _vision_server(files)
    try:
        with marketdb.MarketDB(path) as db:
            report = db.download(
                "spot", "*USDT", "2024-01-01", "2024-01-06", "1h", source="vision", base_url=base
            )
            assert report["fetched"] == 2, report
            assert report["rows"] == 48, report
            assert report["not_listed_days"] == 4, report
            asked = sorted(p for p in log if p.endswith(".zip"))
            assert asked == sorted(p for p in files if p.endswith(".zip")), log
            with pytest.raises(ValueError, match="quote"):
                db.download("spot", "all", "2024-01-01", "2024-01-06", "1h", quote="", base_url=base)
    finally:
        server.shutdown()
