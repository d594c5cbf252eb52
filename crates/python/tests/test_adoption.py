"""What a researcher adopting the package runs into first: process pools (fork, spawn,
forkserver), pickled handles, scripts that end without closing, large reads batch by batch,
polars, a migration check against cryptoservice 1.9.0 with its own end rule, warnings for
likely mistakes, and signatures that say the types."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import multiprocessing
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import marketdb
from conftest import MINUTE, START_MS, SYMBOLS, make_bars

from cryptoservice.data.storage_db import MarketDB as CsMarketDB  # noqa: E402
from cryptoservice.models.enums import Freq  # noqa: E402

HERE = Path(__file__).parent

# ---- process pools -------------------------------------------------------------------------

#: The handle a forked worker inherits from the test process (set before the pool starts).
INHERITED: marketdb.MarketDB | None = None


def _read_in_worker(db: marketdb.MarketDB | None) -> pd.DataFrame:
    """A pool worker's read: through the handle it was sent (pickled), or through the one
    it inherited by fork."""
    handle = db if db is not None else INHERITED
    assert handle is not None
    return handle.read_data("2024-01-01 06:00", "2024-01-02 06:00", "1m", SYMBOLS[:2])


def _async_read_in_worker(db: marketdb.AsyncMarketDB) -> pd.DataFrame:
    async def read() -> pd.DataFrame:
        return await db.read_data("2024-01-01 06:00", "2024-01-02 06:00", "1m", SYMBOLS[:2])

    return asyncio.run(read())


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_process_pools_of_every_start_method_return_equal_frames(bars, db_path, method):
    global INHERITED
    db = marketdb.MarketDB(db_path)
    db.store_data(bars, "1m")
    # The parent uses the handle (its runtime, pools and connections exist) before the
    # pool starts: a forked child inherits all of it, without the threads.
    want = _read_in_worker(db)
    assert len(want) == 2 * 1441
    INHERITED = db
    adb = marketdb.AsyncMarketDB(db_path)
    asyncio.run(adb.get_symbols_list())
    try:
        context = multiprocessing.get_context(method)
        pool = concurrent.futures.ProcessPoolExecutor(2, mp_context=context)
        finished = False
        try:
            jobs = [pool.submit(_read_in_worker, db) for _ in range(3)]
            jobs.append(pool.submit(_async_read_in_worker, adb))
            if method == "fork":
                jobs += [pool.submit(_read_in_worker, None) for _ in range(3)]
            for job in jobs:
                # A hang (the failure this guards against) fails here instead of blocking.
                pd.testing.assert_frame_equal(job.result(timeout=120), want)
            finished = True
        finally:
            if not finished:  # hung or failed workers would keep the pool from shutting down
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.kill()
            pool.shutdown(wait=True, cancel_futures=True)
        # The parent's handle still works after its children used theirs.
        pd.testing.assert_frame_equal(_read_in_worker(db), want)
    finally:
        INHERITED = None
        db.close()
        asyncio.run(adb.close())


def test_a_forked_child_writes_through_its_parents_handle(bars, db_path):
    """A child made by os.fork stores through the handle it inherited (its own connections,
    opened on first use), and the parent sees the rows; neither process is left waiting."""
    import os

    db = marketdb.MarketDB(db_path)
    db.store_data(bars[bars["symbol"] == "BTCUSDT"], "1m")
    pid = os.fork()
    if pid == 0:  # the child: exit without running the parent's test machinery
        code = 1
        try:
            code = 0 if db.store_data(bars[bars["symbol"] == "ETHUSDT"], "1m") == 2 * 1440 else 3
            db.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert db.get_symbols_list("1m") == ["BTCUSDT", "ETHUSDT"]
    db.close()


# ---- pickling ------------------------------------------------------------------------------


def test_handles_pickle_as_path_and_options_and_reopen(bars, db_path):
    with marketdb.MarketDB(db_path, pool="builtin", mmap_size=None, compat="1.9") as db:
        db.store_data(bars, "1m")
        copy = pickle.loads(pickle.dumps(db))
        try:
            assert copy is not db and copy.db_path == db.db_path
            assert copy.pool_kind == "builtin"
            pd.testing.assert_frame_equal(
                copy.read_data("2024-01-01", "2024-01-02", "1m", SYMBOLS),
                db.read_data("2024-01-01", "2024-01-02", "1m", SYMBOLS),
            )
        finally:
            copy.close()
    with pytest.raises(ValueError, match="is closed"):
        pickle.dumps(db)

    adb = marketdb.AsyncMarketDB(db_path, read_only=True)
    acopy = pickle.loads(pickle.dumps(adb))

    async def both() -> tuple[list[str], list[str]]:
        try:
            return await adb.get_symbols_list(), await acopy.get_symbols_list()
        finally:
            await adb.close()
            await acopy.close()

    assert asyncio.run(both()) == (SYMBOLS, SYMBOLS)


def test_a_handle_opened_by_a_relative_path_unpickles_in_another_folder(bars, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    with marketdb.MarketDB("rel.db") as db:
        db.store_data(bars, "1m")
        data = pickle.dumps(db)
    monkeypatch.chdir(tmp_path / "b")
    with pickle.loads(data) as copy:
        assert copy.get_symbols_list() == SYMBOLS
    assert not (tmp_path / "b" / "rel.db").exists()


# ---- scripts that end ----------------------------------------------------------------------

SCRIPT = """
import asyncio, sys, marketdb
path, kind, close = sys.argv[1], sys.argv[2], sys.argv[3] == "close"
if kind == "sync":
    db = marketdb.MarketDB(path)
    db.get_symbols_list()
    if close:
        db.close()
else:
    async def main():
        db = marketdb.AsyncMarketDB(path)
        await db.get_symbols_list()
        if close:
            await db.close()
    asyncio.run(main())
"""


def test_two_hundred_short_scripts_all_exit_0(db_path):
    """Interpreter exit never aborts: the exit hook closes what is open and joins every
    native thread before Python finalizes. 50 scripts of each kind, four at a time."""
    marketdb.MarketDB(db_path).close()
    kinds = [(kind, close) for kind in ("sync", "async") for close in ("close", "keep")] * 50

    def run(kind_close: tuple[str, str]) -> tuple[str, str, int, str]:
        kind, close = kind_close
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(db_path), kind, close], capture_output=True, text=True, timeout=120
        )
        return kind, close, done.returncode, done.stderr[-500:]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, kinds))
    assert len(results) == 200
    failed = [r for r in results if r[2] != 0]
    assert failed == [], failed[:5]


# ---- batches and polars --------------------------------------------------------------------


def test_read_batches_streams_bounded_batches_equal_to_read_arrow(bars, db_path):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        whole = db.read_arrow("2024-01-01", "2024-01-02", "1m", SYMBOLS, ["cls", "vol", "tnum"])
        reader = db.read_batches("2024-01-01", "2024-01-02", "1m", SYMBOLS, ["cls", "vol", "tnum"], batch_rows=1000)
        assert isinstance(reader, pa.RecordBatchReader)
        assert reader.schema.equals(whole.schema)
        sizes = []
        batches = []
        for batch in reader:
            sizes.append(batch.num_rows)
            batches.append(batch)
        assert max(sizes) <= 1000 and sum(sizes) == len(bars) == whole.num_rows
        streamed = pa.Table.from_batches(batches, schema=reader.schema)
        assert streamed.cast(pa.schema([f.with_type(pa.string()) if f.name == "symbol" else f for f in streamed.schema])).equals(
            whole.cast(pa.schema([f.with_type(pa.string()) if f.name == "symbol" else f for f in whole.schema]))
        )
        # An empty range is an empty reader with the same schema; a bad request raises at
        # the call, not at the first batch.
        empty = db.read_batches("2030-01-01", "2030-01-01", "1m", features=["cls", "vol", "tnum"])
        assert empty.schema.equals(whole.schema) and empty.read_all().num_rows == 0
        with pytest.raises(ValueError, match="batch_rows"):
            db.read_batches("2024-01-01", "2024-01-02", "1m", batch_rows=0)
        with pytest.raises(ValueError):
            db.read_batches("2024-01-01", "2024-01-02", "1m", features=["fr"])


def test_a_reader_outliving_its_database_fails_clearly_and_abandoned_readers_stop(bars, db_path):
    import os
    import gc
    import time

    db = marketdb.MarketDB(db_path)
    db.store_data(bars, "1m")
    reader = db.read_batches("2024-01-01", "2024-01-02", "1m", batch_rows=100)
    assert reader.read_next_batch().num_rows == 100
    db.close()
    with pytest.raises(pa.ArrowInvalid, match="closed"):
        reader.read_all()
    # Readers dropped half-way leave no producer thread behind.
    with marketdb.MarketDB(db_path, read_only=True) as db:
        db.read_batches("2024-01-01", "2024-01-02", "1m", batch_rows=100).read_next_batch()
        gc.collect()
        time.sleep(0.2)
        threads = len(os.listdir("/proc/self/task"))
        for _ in range(30):
            db.read_batches("2024-01-01", "2024-01-02", "1m", batch_rows=100).read_next_batch()
        gc.collect()
        time.sleep(0.5)
        assert len(os.listdir("/proc/self/task")) <= threads + 2


def test_polars_takes_batches_and_read_polars(bars, db_path):
    import polars
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        frame = db.read_polars("2024-01-01", "2024-01-01", "1m", ["ETHUSDT"], ["cls"])
        assert isinstance(frame, polars.DataFrame)
        assert frame.columns == ["symbol", "timestamp", "cls"] and frame.height == 1440
        streamed = polars.from_arrow(db.read_batches("2024-01-01", "2024-01-01", "1m", ["ETHUSDT"], ["cls"], batch_rows=100))
        assert streamed.equals(frame)


MEMORY_SCRIPT = """
import sys, marketdb

def high_water_mib():
    # VmHWM: this process's peak (ru_maxrss would carry the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024

path, how = sys.argv[1], sys.argv[2]
db = marketdb.MarketDB(path, read_only=True)
before = high_water_mib()
rows = 0
if how == "batches":
    for batch in db.read_batches("2024-01-01", "2024-12-31", "1m", batch_rows=65536):
        rows += batch.num_rows
else:
    rows = len(db.read_data("2024-01-01", "2024-12-31", "1m", None))
print(rows, before, high_water_mib())
"""


def test_read_batches_of_a_million_rows_stays_small_where_read_data_does_not(tmp_path):
    """W2's size (1,008,000 bars: 20 symbols x 35 days of 1m) read in a fresh process each
    way: batch by batch the peak stays under 150 MiB, the whole frame needs more."""
    path = tmp_path / "w2.db"
    symbols = [f"SYM{k:02d}USDT" for k in range(20)]
    with marketdb.MarketDB(path) as db:
        for k in range(0, 20, 5):
            # base: a random walk of 35 days from 100 could cross zero
            db.store_data(make_bars(symbols=symbols[k : k + 5], minutes=35 * 1440, seed=k, base=1000.0), "1m")

    def peak(how: str) -> tuple[int, int, int]:
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(path), how], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        rows, before, peak_mib = (int(x) for x in done.stdout.split())
        return rows, before, peak_mib

    rows, _, streamed = peak("batches")
    assert rows == 1_008_000
    rows, _, whole = peak("frame")
    assert rows == 1_008_000
    print(f"peak RSS (VmHWM): read_batches {streamed} MiB, read_data {whole} MiB")
    assert streamed < 150, streamed
    assert whole > streamed, (whole, streamed)


# ---- migration -----------------------------------------------------------------------------


def test_compat_1_9_reads_date_only_ends_as_1_9_does(bars, db_path):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
    cs = CsMarketDB(str(db_path))
    with marketdb.MarketDB(db_path, compat="1.9") as db:
        for start, end in [("2024-01-01", "2024-01-02"), ("2024-01-02", "2024-01-02"), ("20240101", "20240102")]:
            mine = db.read_data(start, end, Freq.m1, SYMBOLS)
            theirs = cs.read_data(start, end, Freq.m1, SYMBOLS)
            pd.testing.assert_frame_equal(mine, theirs)
            assert len(mine) == len(SYMBOLS) * (1 + 1440 * (int(end[-1]) - int(start[-1])))
    with marketdb.MarketDB(db_path) as db:
        assert len(db.read_data("2024-01-02", "2024-01-02", "1m", ["BTCUSDT"])) == 1440
    with pytest.raises(ValueError, match="compat"):
        marketdb.MarketDB(db_path, compat="1.8")


def test_1_9_positional_arguments_are_accepted(db_path):
    with marketdb.MarketDB(db_path, True, 5) as db:
        assert db.get_symbols_list() == []
    adb = marketdb.AsyncMarketDB(db_path, 10, True, True)
    assert asyncio.run(adb.get_symbols_list()) == []
    asyncio.run(adb.close())


# ---- warnings ------------------------------------------------------------------------------


def test_epoch_seconds_and_unknown_symbols_warn(bars, db_path, caplog):
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        seconds = START_MS // 1000
        with pytest.warns(UserWarning, match=r"start_ts 1704067200 looks like epoch seconds \(x1000 = 2024-01-01T00:00:00Z\)") as record:
            frame = db.read_data_by_timestamp(seconds, seconds + 3600, "1m", ["BTCUSDT"], raise_on_empty=False)
        assert frame.empty
        # The warning points at the caller's line, not inside the package.
        assert record[0].filename == __file__
        assert "looks like epoch seconds" in caplog.text
        with pytest.warns(UserWarning, match="no 1m bars of NOSUCHUSDT in the range"):
            frame = db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT", "nosuchusdt"])
        assert set(frame.index.get_level_values("symbol")) == {"BTCUSDT"}
        with pytest.warns(UserWarning, match="no 1m bars of NOSUCHUSDT"):
            db.read_arrow("2024-01-01", "2024-01-01", "1m", ["BTCUSDT", "NOSUCHUSDT"])
        # Milliseconds and known symbols say nothing.
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            db.read_data_by_timestamp(START_MS, START_MS + 3_600_000, "1m", ["BTCUSDT"])
            db.read_data("2024-01-01", "2024-01-01", "1m", ["BTCUSDT", "ETHUSDT"])


# ---- signatures ----------------------------------------------------------------------------


def test_help_shows_the_types_of_the_stubs():
    sig = inspect.signature(marketdb.MarketDB.read_data)
    assert "datetime.datetime" in str(sig.parameters["start_time"].annotation)
    assert str(sig.parameters["symbols"].annotation) == "Sequence[str] | str | None"
    assert str(sig.return_annotation) == "pd.DataFrame"
    assert str(inspect.signature(marketdb.AsyncMarketDB.read_batches).return_annotation) == "pa.RecordBatchReader"
    init = inspect.signature(marketdb.MarketDB)
    assert list(init.parameters)[:3] == ["db_path", "use_pool", "max_connections"]
    assert str(init.parameters["compat"].annotation) == "str | None"
    text = pydoc_text(marketdb.MarketDB)
    assert "start_time: str | int | datetime.datetime" in text
    assert ": Any" not in text.split("read_data(")[1].split(")")[0]


def pydoc_text(obj: object) -> str:
    import pydoc

    return pydoc.render_doc(obj, renderer=pydoc.plaintext)


def test_timestamps_of_reads_are_bounded_as_documented(bars, db_path):
    """read_batches and read_arrow take the same bounds: an instant end is inclusive."""
    with marketdb.MarketDB(db_path) as db:
        db.store_data(bars, "1m")
        end = START_MS + 10 * MINUTE
        t = db.read_batches(START_MS, end, "1m", ["BTCUSDT"], ["cls"]).read_all()
        assert t.num_rows == 11
        assert t.column("timestamp").to_numpy()[-1] == np.datetime64(end, "ms")
