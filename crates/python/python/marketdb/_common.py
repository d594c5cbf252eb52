"""Argument normalisation and pandas shaping shared by MarketDB and AsyncMarketDB.

The native module works on plain values (strings, epoch ms, NumPy buffers) and returns
Arrow; everything pandas-specific happens here, vectorised, so a million bars cost a few
array operations and no Python loop.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import logging
import os
import re
import sys
import time as _time
import warnings
from contextvars import ContextVar
import weakref
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from . import _native

logger = logging.getLogger("marketdb")

# The model's catalogue (features, the kline input order, ratio types), from the native
# module so that it is written once, in Rust.
_CATALOGUE = _native.Native.catalogue()

#: The eleven market columns of ``read_data`` (1.9's long names and order): the stored
#: kline features of the catalogue.
MARKET_COLUMNS = [long for _, long, stored in _CATALOGUE["features"] if stored]

SHORT_TO_LONG = {short: long for short, long, _ in _CATALOGUE["features"]}
LONG_TO_SHORT = {v: k for k, v in SHORT_TO_LONG.items()}

# Databases still open, closed at interpreter exit: ``close`` waits for the WAL checkpoint
# that follows a large store, so a script that never calls ``close`` still leaves a whole
# database file rather than rows in its ``-wal``.
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()


def track(db: Any) -> None:
    _OPEN.add(db)


@atexit.register
def _close_open_databases() -> None:
    for db in list(_OPEN):
        native = getattr(db, "_native", None)
        if native is not None and not native.closed:
            try:
                native.close(False)
            except Exception as e:  # at exit there is no caller to raise to
                logger.warning("closing %s at exit failed: %s", getattr(db, "db_path", "?"), e)
    # Joins every thread of the native runtime before the interpreter finalizes: a thread
    # that took the GIL of a finalizing interpreter would be ended by Python with
    # pthread_exit, which aborts a Rust thread (SIGABRT at exit).
    _native.Native.shutdown()


def _after_fork_in_child() -> None:
    # The native side opens the file again in the child on first use (its runtime, pools
    # and connections belong to the parent). An asyncio lock bound to the parent's event
    # loop cannot serve the child's.
    for db in list(_OPEN):
        if hasattr(db, "_opening"):
            db._opening = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def reopen(cls: type, db_path: str, options: dict[str, Any]) -> Any:
    """Unpickles a handle: the same class opened on the same file with the same options."""
    return cls(db_path, **options)


NO_DATA = "No data found for the specified criteria"

# The resolution pandas gives epoch milliseconds (``to_datetime(..., unit="ms")``, what 1.9's
# ``read_sql_query(parse_dates={"timestamp": "ms"})`` uses): ns on pandas 2, us on pandas 3.
_TS_DTYPE = pd.to_datetime(np.zeros(1, dtype=np.int64), unit="ms").dtype

# The column order ``store_klines`` takes (also that of a Binance kline row).
_RAW_ROW = list(_CATALOGUE["kline_input"])
# Accepted spellings of each kline input column in a frame, in that order.
_SPELLINGS = {
    "open_time": ("timestamp", "open_time"),
    "open": ("open_price", "open"),
    "high": ("high_price", "high"),
    "low": ("low_price", "low"),
    "close": ("close_price", "close"),
    "volume": ("volume",),
    "close_time": ("close_time",),
    "quote_volume": ("quote_volume", "quote_asset_volume"),
    "trades_count": ("trades_count", "count", "trades", "number_of_trades"),
    "taker_buy_volume": ("taker_buy_volume", "taker_buy_base_volume", "taker_buy_base_asset_volume"),
    "taker_buy_quote_volume": ("taker_buy_quote_volume", "taker_buy_quote_asset_volume"),
}
_INPUT_COLUMNS = [(name, _SPELLINGS[name]) for name in _RAW_ROW]
_INTEGER_INPUTS = {"open_time", "close_time", "trades_count"}


def open_args(db_path: Any, pool: Any, mmap_size: Any) -> tuple[str, str, int | None]:
    """Checks what the native open would refuse with a less helpful error."""
    path = os.fspath(db_path)
    if not isinstance(path, str):
        path = os.fsdecode(path)
    if "\x00" in path:
        raise ValueError(f"db_path {path!r} contains a NUL character")
    if not isinstance(pool, str):
        raise ValueError(f"pool {pool!r} is not one of auto, bb8, builtin")
    if mmap_size is not None and (isinstance(mmap_size, bool) or not isinstance(mmap_size, int) or mmap_size < 0):
        raise ValueError(f"mmap_size {mmap_size!r} is not a number of bytes (an int >= 0) or None")
    return path, pool, mmap_size


def freq_value(freq: Any) -> str:
    """`Freq.m1` (any enum with a string ``value``) or a string such as ``"1m"``."""
    value = getattr(freq, "value", freq)
    if not isinstance(value, str):
        raise ValueError(f"freq {freq!r} is not an interval such as '1m' or Freq.m1")
    return value


#: The time rule of the call being converted: None (marketdb's: a date-only end includes
#: its whole UTC day) or "1.9" (cryptoservice 1.9's: a date-only end is its midnight,
#: inclusive). Set from the handle's ``compat`` around each call.
COMPAT: ContextVar[str | None] = ContextVar("marketdb_compat", default=None)

COMPAT_MODES = (None, "1.9")

_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}|\d{8}")

#: 2009-01-03 (the first Bitcoin block) in epoch seconds: an int bound at or after it,
#: and not after tomorrow, reads as seconds, not milliseconds (1970-01-15 and on).
_EARLIEST_SECONDS = 1_230_940_800


def compat_mode(compat: Any) -> str | None:
    if compat not in COMPAT_MODES:
        raise ValueError(f"compat {compat!r} is not None (marketdb's rules) or '1.9' (cryptoservice 1.9's end rule)")
    return compat


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message: str) -> None:
    """A warning for the caller (Python ``warnings``, pointing at the caller's line, outside
    this package) and the same text through logging."""
    logger.warning(message)
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, UserWarning, stacklevel=level)


def _midnight_ms(day: str | _dt.date) -> int | None:
    try:
        ts = pd.Timestamp(day)
    except (ValueError, TypeError):
        return None  # the native side names the bad date
    return int(ts.value // 1_000_000)


def time_value(t: Any, name: str, end: bool = False) -> int | str:
    """A bound for the native side: epoch ms (int), or a string it parses itself.

    A ``datetime``/``pandas.Timestamp`` is an instant (naive means UTC); a ``date`` is a
    whole UTC day, like the string ``"YYYY-MM-DD"``, unless ``COMPAT`` is "1.9" and this
    is an ``end``: then it is the instant of its midnight, as 1.9 reads it.
    """
    if isinstance(t, bool):
        raise ValueError(f"{name} {t!r} is not a time")
    if isinstance(t, (int, np.integer)):
        value = int(t)
        if _EARLIEST_SECONDS <= value <= _time.time() + 86_400:
            iso = pd.Timestamp(value * 1000, unit="ms").strftime("%Y-%m-%dT%H:%M:%SZ")
            warn(
                f"{name} {value} looks like epoch seconds (x1000 = {iso}): "
                "times are epoch milliseconds"
            )
        return value
    if isinstance(t, str):
        if end and COMPAT.get() == "1.9" and _DATE_ONLY.fullmatch(t.strip()):
            midnight = _midnight_ms(t.strip())
            return t if midnight is None else midnight
        return t
    if isinstance(t, (pd.Timestamp, _dt.datetime, np.datetime64)):
        ts = pd.Timestamp(t)
        if ts is pd.NaT:
            raise ValueError(f"{name} is NaT")
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return int(ts.value // 1_000_000)
    if isinstance(t, _dt.date):
        if end and COMPAT.get() == "1.9":
            midnight = _midnight_ms(t)
            return t.isoformat() if midnight is None else midnight
        return t.isoformat()
    raise ValueError(f"{name} {t!r} is not a date string, epoch milliseconds or a datetime")


def symbol_list(symbols: Any, name: str = "symbols") -> list[str]:
    if symbols is None:
        return []
    if isinstance(symbols, str):
        return [symbols]
    try:
        out = list(symbols)
    except TypeError:
        raise ValueError(f"{name} {symbols!r} is not a list of symbols") from None
    for s in out:
        if not isinstance(s, str):
            raise ValueError(f"{name}: {s!r} is not a symbol string")
    return out


def one_symbol(symbol: Any, name: str = "symbol") -> str:
    if not isinstance(symbol, str):
        raise ValueError(f"{name} {symbol!r} is not a symbol string")
    return symbol


def feature_list(features: Any) -> list[str] | None:
    if features is None:
        return None
    if isinstance(features, str):
        features = [features]
    out: list[str] = []
    seen: set[str] = set()
    for f in features:
        if not isinstance(f, str):
            raise ValueError(f"features: {f!r} is not a feature name")
        # One feature may be spelled short or long, in any case: the first spelling wins.
        key = f.strip().lower()
        key = LONG_TO_SHORT.get(key, key)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def batch_reader(stream: Any) -> pa.RecordBatchReader:
    """A native scan ArrowStream as a pyarrow reader (batches read when taken)."""
    return pa.RecordBatchReader.from_stream(stream)


def arrow_table(stream: Any) -> pa.Table:
    """Takes a native ArrowStream through the Arrow PyCapsule interface (no copy)."""
    return pa.RecordBatchReader.from_stream(stream).read_all()


def _sorted_codes(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes into the sorted distinct values of ``ts`` (the levels ``set_index`` builds).

    Bars lie on a grid: when every value is the first one plus a multiple of the smallest
    step between neighbours, codes are arithmetic (no hashing, no sort); otherwise, or when
    the grid would be much larger than the data, ``pd.factorize(sort=True)``."""
    n = len(ts)
    if n > 1:
        lo = int(ts.min())
        steps = np.diff(ts)
        steps = steps[steps > 0]
        step = int(steps.min()) if len(steps) else 0
        if step > 0:
            span = (int(ts.max()) - lo) // step + 1
            offsets = ts - lo
            if span <= 4 * n and not (offsets % step).any():
                codes = offsets // step
                used = np.zeros(span, dtype=bool)
                used[codes] = True
                levels = lo + step * np.arange(span, dtype=np.int64)
                if not used.all():
                    codes = (np.cumsum(used) - 1)[codes]
                    levels = levels[used]
                return codes, levels
    return pd.factorize(ts, sort=True)


def _index(table: pa.Table, datetime_index: bool) -> pd.MultiIndex:
    sym = table.column("symbol").combine_chunks()
    if isinstance(sym, pa.DictionaryArray):
        codes = sym.indices.to_numpy(zero_copy_only=False)
        names = sym.dictionary.to_pylist()
    else:
        codes, names = pd.factorize(sym.to_numpy(zero_copy_only=False))
        names = list(names)
    ts = table.column("timestamp").cast(pa.int64()).to_numpy()
    ts_codes, ts_levels = _sorted_codes(ts)
    if datetime_index:
        ts_level = pd.DatetimeIndex(np.asarray(ts_levels, dtype="datetime64[ms]").astype(_TS_DTYPE))
    else:
        ts_level = pd.Index(np.asarray(ts_levels, dtype=np.int64))
    return pd.MultiIndex(
        levels=[pd.Index(names), ts_level],
        codes=[codes, ts_codes],
        names=["symbol", "timestamp"],
        verify_integrity=False,
    )


def bars_frame(
    table: pa.Table,
    names: Sequence[str],
    *,
    datetime_index: bool = True,
) -> pd.DataFrame:
    """A frame shaped like cryptoservice 1.9's ``read_data``: index (symbol, timestamp),
    one column per requested feature named as requested."""
    index = _index(table, datetime_index)
    n = table.num_rows
    floats = [i for i in range(len(names)) if pa.types.is_floating(table.schema.field(2 + i).type)]
    # The float columns are copied into one writable 2-D block, as pandas itself would lay
    # them out (Arrow's buffers are read-only); the frame wraps the block without a copy.
    block = np.empty((len(floats), n), dtype=np.float64)
    for j, i in enumerate(floats):
        block[j] = table.column(2 + i).to_numpy(zero_copy_only=False)
    frame = pd.DataFrame(block.T, index=index, columns=[names[i] for i in floats], copy=False)
    for i in range(len(names)):
        if i not in floats:
            arr = np.array(table.column(2 + i).to_numpy(zero_copy_only=False), copy=True)
            frame.insert(i, names[i], arr)
    return frame


def empty_bars_frame(names: Sequence[str]) -> pd.DataFrame:
    """cryptoservice 1.9's empty result with ``raise_on_empty=False``: the index names and
    columns kept, no rows."""
    return pd.DataFrame(columns=["symbol", "timestamp", *names]).set_index(["symbol", "timestamp"])


def output_names(features: list[str] | None) -> list[str]:
    return list(MARKET_COLUMNS) if features is None else list(features)


def read_result(columns: Any, features: list[str] | None, raise_on_empty: bool) -> pd.DataFrame:
    """The frame of ``Native.read_columns``: NumPy arrays that own the Rust vectors, so the
    frame is built without copying the data and is writable."""
    names = output_names(features)
    symbols, runs, ts, arrays = columns
    if len(ts) == 0:
        if raise_on_empty:
            raise ValueError(NO_DATA)
        return empty_bars_frame(names)
    codes = np.repeat(np.arange(len(symbols), dtype=np.int64), runs)
    ts_codes, ts_levels = _sorted_codes(ts)
    level = pd.DatetimeIndex(np.asarray(ts_levels, dtype="datetime64[ms]").astype(_TS_DTYPE))
    index = pd.MultiIndex(
        levels=[pd.Index(symbols), level],
        codes=[codes, ts_codes],
        names=["symbol", "timestamp"],
        verify_integrity=False,
    )
    return pd.DataFrame(dict(zip(names, arrays)), index=index, copy=False)


# ---- kline input -----------------------------------------------------------------------


def _flatten(data: list) -> list:
    """A list of per-symbol lists (1.9's nested form) becomes one list; a list of
    ``[symbol, binance_row]`` pairs stays as it is."""
    nested = all(isinstance(x, list) for x in data) and not any(x and isinstance(x[0], str) for x in data)
    if data and nested:
        return [item for group in data for item in group]
    return data


def _rows_frame(rows: list) -> pd.DataFrame:
    """Tickers (``.symbol`` and ``.raw_data``), dicts, or ``(symbol, binance_row)`` pairs."""
    first = rows[0]
    if hasattr(first, "raw_data") and hasattr(first, "symbol"):
        symbols = [r.symbol for r in rows]
        raw = [list(r.raw_data)[:11] for r in rows]
        frame = pd.DataFrame(raw, columns=_RAW_ROW[: len(raw[0])])
        frame.insert(0, "symbol", symbols)
        return frame
    if isinstance(first, dict):
        return pd.DataFrame(rows)
    if isinstance(first, (tuple, list)) and len(first) == 2 and isinstance(first[0], str):
        symbols = [r[0] for r in rows]
        raw = [list(r[1])[:11] for r in rows]
        frame = pd.DataFrame(raw, columns=_RAW_ROW[: len(raw[0])])
        frame.insert(0, "symbol", symbols)
        return frame
    raise TypeError(
        "store_data takes a DataFrame, a pyarrow Table, or a list of tickers "
        f"(.symbol, .raw_data), dicts or (symbol, binance_row) pairs, not a list of {type(first).__name__}"
    )


def _as_frame(data: Any) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, (pa.Table, pa.RecordBatch)) or hasattr(data, "__arrow_c_stream__"):
        frame = pa.table(data).to_pandas()
    elif isinstance(data, (list, tuple)):
        rows = _flatten(list(data))
        if not rows:
            return pd.DataFrame()
        frame = _rows_frame(rows)
    else:
        raise TypeError(
            f"store_data takes a DataFrame, a pyarrow Table or a list of rows, not {type(data).__name__}"
        )
    names = [n for n in frame.index.names if n is not None]
    if "symbol" in names or "timestamp" in names:
        frame = frame.reset_index()
    return frame


def _numeric(frame: pd.DataFrame, column: str, canonical: str) -> np.ndarray:
    values = frame[column]
    if canonical in ("open_time", "close_time") and pd.api.types.is_datetime64_any_dtype(values):
        v = values
        if getattr(v.dt, "tz", None) is not None:
            v = v.dt.tz_convert("UTC").dt.tz_localize(None)
        return v.to_numpy(dtype="datetime64[ms]").astype(np.int64)
    dtype = np.int64 if canonical in _INTEGER_INPUTS else np.float64
    try:
        arr = values.to_numpy()
        if arr.dtype == object or arr.dtype.kind in "US":
            arr = pd.to_numeric(values, errors="raise").to_numpy()
        if dtype is np.int64 and arr.dtype.kind == "f":
            if np.isnan(arr).any():
                raise ValueError("it holds a missing value")
            if (arr != np.floor(arr)).any():
                raise ValueError("it holds a non-integer value")
        return np.ascontiguousarray(arr, dtype=dtype)
    except (ValueError, TypeError, OverflowError) as e:
        raise ValueError(f"column {column}: {e}") from None


def kline_columns(data: Any) -> tuple[list[str], np.ndarray, list[np.ndarray | None]] | None:
    """(symbol names, int64 codes, the 11 columns in native order) or None when empty."""
    frame = _as_frame(data)
    if len(frame) == 0:
        return None
    if "symbol" not in frame.columns:
        raise ValueError(f"the kline rows have no symbol column (columns: {list(frame.columns)})")
    codes, uniques = pd.factorize(frame["symbol"])
    names = []
    for s in uniques:
        if not isinstance(s, str):
            raise ValueError(f"symbol {s!r} is not a string")
        names.append(s)
    columns: list[np.ndarray | None] = []
    for canonical, spellings in _INPUT_COLUMNS:
        found = next((c for c in spellings if c in frame.columns), None)
        if found is None:
            if canonical == "close_time":
                columns.append(None)
                continue
            raise ValueError(f"the kline rows have no {canonical} column (accepted names: {', '.join(spellings)})")
        columns.append(_numeric(frame, found, canonical))
    return names, np.ascontiguousarray(codes, dtype=np.int64), columns


# ---- metrics -----------------------------------------------------------------------------


def _get(record: Any, *names: str, default: Any = None) -> Any:
    for n in names:
        if isinstance(record, dict):
            if n in record:
                return record[n]
        elif hasattr(record, n):
            return getattr(record, n)
    return default


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


def _ratio_type(v: Any) -> str:
    return str(getattr(v, "value", v))


def metric_records(kind: str, data: Iterable[Any]) -> str:
    out = []
    for r in data:
        symbol = _get(r, "symbol")
        if kind == "funding_rate":
            out.append(
                {
                    "symbol": symbol,
                    "funding_time": int(_get(r, "funding_time", "timestamp")),
                    "funding_rate": float(_get(r, "funding_rate")),
                    "mark_price": _num(_get(r, "mark_price")),
                    "index_price": _num(_get(r, "index_price")),
                }
            )
        elif kind == "open_interest":
            out.append(
                {
                    "symbol": symbol,
                    "time": int(_get(r, "time", "timestamp")),
                    "interval": str(_get(r, "interval", default="5m")),
                    "open_interest": float(_get(r, "open_interest")),
                    "open_interest_value": _num(_get(r, "open_interest_value")),
                }
            )
        else:
            out.append(
                {
                    "symbol": symbol,
                    "timestamp": int(_get(r, "timestamp")),
                    "period": str(_get(r, "period", default="5m")),
                    "ratio_type": _ratio_type(_get(r, "ratio_type", default="account")),
                    "long_short_ratio": float(_get(r, "long_short_ratio")),
                    "long_account": _num(_get(r, "long_account")),
                    "short_account": _num(_get(r, "short_account")),
                }
            )
    return json.dumps(out)


_METRIC_COLUMNS = {
    "funding_rate": ("funding_time", ["funding_rate", "funding_time", "mark_price", "index_price"]),
    "open_interest": ("time", ["interval", "open_interest", "open_interest_value"]),
    "long_short_ratio": (
        "timestamp",
        ["period", "ratio_type", "long_short_ratio", "long_account", "short_account"],
    ),
}
# marketdb's ratio type names, spelled as 1.9 stores and reads them.
_V19_RATIO_TYPE = {name: legacy for name, legacy, _ in _CATALOGUE["ratio_types"]}
_METRIC_EMPTY = {
    "funding_rate": "No funding rate data found for the specified criteria",
    "open_interest": "No open interest data found for the specified criteria",
    "long_short_ratio": "No long short ratio data found for the specified criteria",
}


def metric_frame(kind: str, text: str, raise_on_empty: bool) -> pd.DataFrame:
    time_key, columns = _METRIC_COLUMNS[kind]
    records = json.loads(text)
    if not records:
        if raise_on_empty:
            raise ValueError(_METRIC_EMPTY[kind])
        return pd.DataFrame(columns=["symbol", "timestamp", *columns]).set_index(["symbol", "timestamp"])
    frame = pd.DataFrame.from_records(records)
    if kind == "long_short_ratio":
        frame["ratio_type"] = frame["ratio_type"].map(lambda t: _V19_RATIO_TYPE.get(t, t))
    frame["timestamp"] = pd.to_datetime(frame[time_key], unit="ms")
    if kind == "funding_rate":
        frame["funding_time"] = frame["funding_time"].astype(np.int64)
    return frame.set_index(["symbol", "timestamp"])[columns]


# ---- combined ----------------------------------------------------------------------------

# The long/short ratio feature of each ratio type, by either spelling.
_LSR_FEATURE = {
    spelling: feature
    for name, legacy, feature in _CATALOGUE["ratio_types"]
    for spelling in (legacy, name)
}


def combined_features(
    include_funding_rate: bool,
    include_open_interest: bool,
    include_long_short_ratio: bool,
    lsr_ratio_type: Any,
) -> tuple[list[str], list[str]]:
    """(native feature names, output column names) of ``get_combined_data``."""
    native = list(MARKET_COLUMNS)
    names = list(MARKET_COLUMNS)
    if include_funding_rate:
        native.append("fr")
        names.append("funding_rate")
    if include_open_interest:
        native += ["oi", "oiv"]
        names += ["open_interest", "open_interest_value"]
    if include_long_short_ratio:
        kind = _ratio_type(lsr_ratio_type)
        if kind not in _LSR_FEATURE:
            raise ValueError(f"lsr_ratio_type {kind!r} is not one of {', '.join(_LSR_FEATURE)}")
        native.append(_LSR_FEATURE[kind])
        names.append("long_short_ratio")
    return native, names


def resample_frame(stream: Any) -> pd.DataFrame:
    table = arrow_table(stream)
    names = [SHORT_TO_LONG.get(n, n) for n in table.column_names[2:]]
    if table.num_rows == 0:
        return empty_bars_frame(names)
    return bars_frame(table, names)
