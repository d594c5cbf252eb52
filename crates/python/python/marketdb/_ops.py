"""Every database method, written once for ``MarketDB`` and ``AsyncMarketDB``.

An operation takes the public arguments, checks and converts them, and returns a ``Call``:
which native method to run with which arguments, and how its answer becomes the return
value. ``blocking`` and ``awaitable`` turn an operation into a method of the blocking or the
asyncio class; the two differ only in how the native call is run (``is_async``).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import _common as c


class Call:
    """One native call: ``native.<method>(*args, is_async)``, then ``finish(answer)``. A
    ``method`` of None makes no call (``finish(None)`` is the result)."""

    __slots__ = ("method", "args", "finish")

    def __init__(self, method: str | None, args: tuple, finish: Callable[[Any], Any] = lambda x: x) -> None:
        self.method, self.args, self.finish = method, args, finish


def _signature_with_self(op: Callable[..., Call]) -> inspect.Signature:
    sig = inspect.signature(op)
    this = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sig.replace(parameters=[this, *sig.parameters.values()], return_annotation=inspect.Signature.empty)


def blocking(op: Callable[..., Call]) -> Callable[..., Any]:
    """``op`` as a method of a class holding its native database in ``self._native``."""

    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _converted(self, op, args, kwargs)
        if call.method is None:
            return call.finish(None)
        return call.finish(getattr(self._native, call.method)(*call.args, False))

    return _named(method, op)


def awaitable(op: Callable[..., Call], owner: Callable[[Any], Any] = lambda self: self) -> Callable[..., Any]:
    """``op`` as a coroutine method of a class whose database object is ``owner(self)``: its
    ``await _db()`` opens the database on first use (after the arguments are checked)."""

    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = _converted(owner(self), op, args, kwargs)
        if call.method is None:
            return call.finish(None)
        native = await owner(self)._db()
        return call.finish(await getattr(native, call.method)(*call.args, True))

    return _named(method, op)


def _converted(db: Any, op: Callable[..., Call], args: tuple, kwargs: dict) -> Call:
    """``op``'s call, its times converted under the handle's ``compat`` rule."""
    token = c.COMPAT.set(getattr(db, "_compat", None))
    try:
        return op(*args, **kwargs)
    finally:
        c.COMPAT.reset(token)


def _named(method: Callable[..., Any], op: Callable[..., Call]) -> Callable[..., Any]:
    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    method.__signature__ = _signature_with_self(op)  # type: ignore[attr-defined]
    return method


def _range(start: Any, end: Any, names: tuple[str, str] = ("start_time", "end_time")) -> tuple[Any, Any]:
    return c.time_value(start, names[0]), c.time_value(end, names[1], end=True)


def _warn_missing(wanted: list[str], present: Any, freq: str) -> None:
    """Warns about asked symbols that have no bar in the answer (unknown, or no data in the
    range), as the command line does; silent when every symbol was asked (``wanted`` empty)."""
    if not wanted:
        return
    have = {str(s) for s in present}
    missing = [s for s in dict.fromkeys(w.upper() for w in wanted) if s not in have]
    if missing:
        c.warn(f"no {freq} bars of {', '.join(missing)} in the range (unknown symbol, or no data there)")


# ---- klines --------------------------------------------------------------------------------


def store_data(data: Any, freq: Any, batch_size: int | None = None) -> Call:
    """Stores klines; returns the rows stored. ``data`` is a DataFrame or pyarrow Table
    (columns ``symbol``, ``timestamp``/``open_time``, ``open_price``/``open``, ...), or a
    list (flat or nested) of 1.9 tickers, dicts or ``(symbol, binance_row)`` pairs. Every
    row is validated first; one bad row stores nothing. ``batch_size`` is accepted and
    ignored (one transaction per call). A call of more than 100,000 rows returns once they
    are committed; the WAL is checkpointed after it in the background (``close`` waits)."""
    del batch_size
    value = c.freq_value(freq)
    cols = c.kline_columns(data)
    if cols is None:
        c.logger.warning("no kline rows to store")
        return Call(None, (), lambda _: 0)
    names, codes, columns = cols
    return Call("store_klines", (value, names, codes, columns))


def _read(start: Any, end: Any, names: tuple[str, str], freq, symbols, features, by_timestamp, raise_on_empty) -> Call:
    features = c.feature_list(features)
    wanted, value = c.symbol_list(symbols), c.freq_value(freq)
    args = (*_range(start, end, names), value, wanted, c.output_names(features))

    def finish(columns: Any) -> pd.DataFrame:
        _warn_missing(wanted, columns[0], value)
        return c.read_result(columns, features, raise_on_empty)

    return Call("read_columns", (*args, by_timestamp), finish)


def read_data(
    start_time: Any,
    end_time: Any,
    freq: Any,
    symbols: Any,
    features: list[str] | None = None,
    raise_on_empty: bool = True,
) -> Call:
    """Bars of ``symbols`` from ``start_time`` to ``end_time`` (a date-only end includes
    its whole day; an instant end is inclusive) as a frame indexed by (symbol,
    timestamp) with the long column names of 1.9."""
    return _read(start_time, end_time, ("start_time", "end_time"), freq, symbols, features, False, raise_on_empty)


def read_data_by_timestamp(
    start_ts: int | str,
    end_ts: int | str,
    freq: Any,
    symbols: Any,
    features: list[str] | None = None,
    raise_on_empty: bool = True,
) -> Call:
    """``read_data`` with inclusive epoch-millisecond bounds."""
    return _read(start_ts, end_ts, ("start_ts", "end_ts"), freq, symbols, features, True, raise_on_empty)


def read_arrow(
    start_time: Any,
    end_time: Any,
    freq: Any,
    symbols: Any = None,
    features: list[str] | None = None,
) -> Call:
    """Bars as a ``pyarrow.Table`` taken through the Arrow PyCapsule interface (no copy):
    ``symbol`` (dictionary), ``timestamp`` (ms, UTC), then the features by short name
    (the Parquet export's schema). All symbols when ``symbols`` is None."""
    wanted, value = c.symbol_list(symbols), c.freq_value(freq)
    args = (*_range(start_time, end_time), value, wanted, c.feature_list(features))

    def finish(stream: Any) -> Any:
        table = c.arrow_table(stream)
        _warn_missing(wanted, table.column("symbol").unique().to_pylist() if wanted else (), value)
        return table

    return Call("read", (*args, False), finish)


def read_batches(
    start_time: Any,
    end_time: Any,
    freq: Any,
    symbols: Any = None,
    features: list[str] | None = None,
    batch_rows: int = 65_536,
) -> Call:
    """Bars as a ``pyarrow.RecordBatchReader`` of at most ``batch_rows`` rows per batch
    (``read_arrow``'s schema), each batch read from the database when taken: memory stays
    bounded whatever the range. It is also an Arrow PyCapsule stream
    (``__arrow_c_stream__``), so ``polars.from_arrow`` and DuckDB take it directly. A bad
    request raises here; the reader can be consumed once."""
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows {batch_rows!r} is not a number of rows (an int >= 1)")
    args = (*_range(start_time, end_time), c.freq_value(freq), c.symbol_list(symbols), c.feature_list(features))
    return Call("read_batches", (*args, batch_rows), c.batch_reader)


def read_polars(
    start_time: Any,
    end_time: Any,
    freq: Any,
    symbols: Any = None,
    features: list[str] | None = None,
) -> Call:
    """Bars as a ``polars.DataFrame`` (``read_arrow``'s columns, taken without copying).
    Needs polars (``pip install polars``); marketdb does not depend on it."""
    try:
        import polars
    except ImportError:
        raise ImportError("read_polars needs polars: pip install polars") from None
    read = read_arrow(start_time, end_time, freq, symbols, features)
    return Call(read.method, read.args, lambda stream: polars.from_arrow(read.finish(stream)))


def get_symbols_list(freq: Any = None) -> Call:
    """The symbols stored (of ``freq`` when given), sorted."""
    return Call("symbols", (None if freq is None else c.freq_value(freq),))


def get_data_summary() -> Call:
    """Row counts and ranges per table and interval (1.9's key names)."""
    return Call("summary", (), json.loads)


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise ValueError(f"limit {limit!r} is not a number of bars (an int >= 0)")
    return limit


def _newest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Bars ascending by (symbol, timestamp) reordered as 1.9's query orders them: by
    symbol, newest first."""
    codes = frame.index.codes[0]
    # Within each run of one symbol, reverse the rows (the runs stay in symbol order).
    order = np.lexsort((-np.arange(len(frame)), codes))
    return frame.iloc[order]


def get_latest_data(symbols: Any, freq: Any, limit: int = 1) -> Call:
    """The latest ``limit`` bars of each symbol (all symbols when empty), indexed by
    (symbol, timestamp), newest first within a symbol, the eleven market columns; an empty
    ``pd.DataFrame()`` when there are none (as 1.9)."""
    limit, value, names = _limit(limit), c.freq_value(freq), c.symbol_list(symbols)
    if limit == 0:
        return Call(None, (), lambda _: pd.DataFrame())

    def finish(columns: Any) -> pd.DataFrame:
        frame = c.read_result(columns, None, False)
        return pd.DataFrame() if frame.empty else _newest_first(frame)

    return Call("latest", (names, value, limit), finish)


def data_exists(symbol: str, start_time: Any, end_time: Any, freq: Any) -> Call:
    """Whether ``symbol`` has a bar of ``freq`` from ``start_time`` to ``end_time`` (a
    date-only end includes its whole day, as in ``read_data``)."""
    return Call("data_exists", (c.one_symbol(symbol), *_range(start_time, end_time), c.freq_value(freq)))


def get_available_dates(symbol: str, freq: Any) -> Call:
    """The UTC dates (``YYYY-MM-DD``) with at least one bar of ``symbol`` at ``freq``,
    ascending."""
    return Call("available_dates", (c.one_symbol(symbol), c.freq_value(freq)))


def _utc_date(ms: int | None) -> str | None:
    return None if ms is None else pd.Timestamp(ms, unit="ms").strftime("%Y-%m-%d")


def _range_entry(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_count": r["record_count"],
        "earliest_timestamp": r["earliest_timestamp"],
        "latest_timestamp": r["latest_timestamp"],
        "earliest_date": _utc_date(r["earliest_timestamp"]),
        "latest_date": _utc_date(r["latest_timestamp"]),
    }


def get_symbol_data_range(symbol: str, freq: Any = None) -> Call:
    """1.9's dict: without ``freq``, ``{"symbol", "frequencies": [{"freq", "record_count",
    "earliest_timestamp", "latest_timestamp", "earliest_date", "latest_date"}]}``; with it,
    ``{"symbol", "frequency", "record_count", ...}`` (a count of 0 and None bounds when it
    has no bars)."""
    name = c.one_symbol(symbol)
    value = None if freq is None else c.freq_value(freq)

    def finish(text: str) -> dict[str, Any]:
        answer = json.loads(text)
        ranges = answer["ranges"]
        if value is None:
            return {"symbol": name, "frequencies": [{"freq": r["freq"], **_range_entry(r)} for r in ranges]}
        empty = {"record_count": 0, "earliest_timestamp": None, "latest_timestamp": None}
        return {"symbol": name, "frequency": answer["frequency"], **_range_entry(ranges[0] if ranges else empty)}

    return Call("symbol_ranges", (name, value), finish)


def _per_symbol(
    read: Call, symbols: Any, compute: Callable[[pd.DataFrame], pd.DataFrame], level: str
) -> Call:
    """``read`` (a bar read that does not raise when empty), then ``compute`` on the bars of
    each symbol (in the order of ``symbols``, as 1.9; all symbols when empty), the results
    stacked under a (symbol, ``level``) index; an empty ``pd.DataFrame()`` when no symbol
    has bars (as 1.9)."""
    wanted = c.symbol_list(symbols)

    def finish(answer: Any) -> pd.DataFrame:
        frame = read.finish(answer)
        present = frame.index.get_level_values("symbol").unique()
        # The store upper-cases symbols, so the frame holds them upper-cased.
        order = [s for s in dict.fromkeys(w.upper() for w in wanted) if s in present] if wanted else list(present)
        parts = []
        for symbol in order:
            part = compute(frame.xs(symbol, level="symbol"))
            part.index = pd.MultiIndex.from_product([[symbol], list(part.index)], names=["symbol", level])
            parts.append(part)
        return pd.concat(parts) if parts else pd.DataFrame()

    return Call(read.method, read.args, finish)


#: 1.9's default aggregation of ``get_aggregated_data``.
DEFAULT_AGGREGATION = {
    "open_price": "first",
    "high_price": "max",
    "low_price": "min",
    "close_price": "last",
    "volume": "sum",
    "quote_volume": "sum",
    "trades_count": "sum",
}


def get_aggregated_data(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    agg_period: str = "1D",
    agg_functions: Any = None,
) -> Call:
    """``read_data`` of the range, then per symbol pandas' ``resample(agg_period).agg(...)``
    (1.9's default: OHLC, and the sums of volume, quote volume and trades), indexed by
    (symbol, timestamp). For bars aggregated on marketdb's own grid, see ``resample``."""
    how = dict(DEFAULT_AGGREGATION if agg_functions is None else agg_functions)
    read = _read(start_time, end_time, ("start_time", "end_time"), freq, symbols, None, False, False)
    return _per_symbol(read, symbols, lambda bars: bars.resample(agg_period).agg(how), "timestamp")


def get_data_statistics(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    features: list[str] | None = None,
) -> Call:
    """``read_data`` of the range, then per symbol pandas' ``describe()``, indexed by
    (symbol, statistic)."""
    read = _read(start_time, end_time, ("start_time", "end_time"), freq, symbols, features, False, False)
    return _per_symbol(read, symbols, lambda bars: bars.describe(), "statistic")


# ---- metrics -------------------------------------------------------------------------------


def _store_metrics(kind: str, data: list[Any]) -> Call:
    return Call("store_metrics", (kind, c.metric_records(kind, data)))


def store_funding_rate(data: list[Any]) -> Call:
    """Stores funding rates (1.9 models or dicts); returns the rows stored."""
    return _store_metrics("funding_rate", data)


def store_open_interest(data: list[Any]) -> Call:
    """Stores open interest (1.9 models or dicts); returns the rows stored."""
    return _store_metrics("open_interest", data)


def store_long_short_ratio(data: list[Any]) -> Call:
    """Stores long/short ratios (1.9 models or dicts); returns the rows stored."""
    return _store_metrics("long_short_ratio", data)


def _read_metrics(kind: str, start: Any, end: Any, symbols: Any, period: Any, ratio_type: Any, raise_on_empty: bool) -> Call:
    args = (kind, *_range(start, end), c.symbol_list(symbols), c.freq_value(period), str(ratio_type))
    return Call("read_metrics", args, lambda text: c.metric_frame(kind, text, raise_on_empty))


def read_funding_rate(start_time: Any, end_time: Any, symbols: Any, raise_on_empty: bool = True) -> Call:
    """Funding rates indexed by (symbol, timestamp), 1.9's columns."""
    return _read_metrics("funding_rate", start_time, end_time, symbols, "5m", "account", raise_on_empty)


def read_open_interest(
    start_time: Any,
    end_time: Any,
    symbols: Any,
    interval: Any = "5m",
    raise_on_empty: bool = True,
) -> Call:
    """Open interest of ``interval`` indexed by (symbol, timestamp), 1.9's columns."""
    return _read_metrics("open_interest", start_time, end_time, symbols, interval, "account", raise_on_empty)


def read_long_short_ratio(
    start_time: Any,
    end_time: Any,
    symbols: Any,
    period: Any = "5m",
    ratio_type: str = "account",
    raise_on_empty: bool = True,
) -> Call:
    """Long/short ratios of ``period`` and ``ratio_type`` (either spelling) indexed by
    (symbol, timestamp), 1.9's columns and ratio type spellings."""
    return _read_metrics("long_short_ratio", start_time, end_time, symbols, period, ratio_type, raise_on_empty)


# ---- checks, resampling, combined ----------------------------------------------------------


def check_completeness(start_time: Any, end_time: Any, freq: Any, symbols: Any = None) -> Call:
    """Every missing bar per symbol on the interval's half-open grid (a dict)."""
    args = (*_range(start_time, end_time), c.freq_value(freq), c.symbol_list(symbols))
    return Call("check_completeness", args, json.loads)


def download(
    market: str,
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any = None,
    *,
    kind: str = "klines",
    source: str = "auto",
    base_url: str | None = None,
    rest_url: str | None = None,
    jobs: int = 4,
    retries: int = 4,
    keep: Any = None,
    recheck_days: int = 3,
    reverify: bool = False,
    quote: str | None = None,
    include_delisted: bool = False,
) -> Call:
    """Downloads Binance Vision files and REST bars into this database, as ``marketdb
    download`` does (same options, same source record); returns the report as a dict.
    ``symbols`` takes names and, with a catalog (``marketdb catalog refresh``), sets:
    ``"all"``, globs (``"*USDT"``) and ``"re:REGEX"``, narrowed by ``quote``; delisted
    symbols only with ``include_delisted``."""
    args = (
        str(market),
        str(kind),
        c.symbol_list(symbols),
        None if freq is None else c.freq_value(freq),
        *_range(start_time, end_time),
        str(source),
        base_url,
        rest_url,
        int(jobs),
        int(retries),
        None if keep is None else str(keep),
        int(recheck_days),
        bool(reverify),
        None if quote is None else str(quote),
        bool(include_delisted),
    )
    return Call("download", args, json.loads)


CATALOG_COLUMNS = [
    "market",
    "kind",
    "symbol",
    "interval",
    "first_day",
    "last_day",
    "files",
    "delisted",
    "renamed_to",
    "listed_at",
]


def _catalog_frame(text: str) -> pd.DataFrame:
    frame = pd.DataFrame(json.loads(text), columns=CATALOG_COLUMNS)
    for col in ("first_day", "last_day", "listed_at"):
        frame[col] = pd.to_datetime(frame[col], utc=True)
    frame["files"] = frame["files"].astype("int64")
    frame["delisted"] = frame["delisted"].astype(bool)
    return frame


def catalog(
    market: str | None = None,
    kind: str | None = None,
    freq: Any = None,
    symbols: Any = None,
    delisted: bool = False,
) -> Call:
    """The archive catalog (``marketdb catalog``) as a DataFrame: one row per market,
    kind, symbol and interval with its first and last day, file count, whether it is
    delisted and the name a user linked it to; empty before ``marketdb catalog refresh``."""
    args = (
        None if market is None else str(market),
        None if kind is None else str(kind),
        None if freq is None else c.freq_value(freq),
        c.symbol_list(symbols),
        bool(delisted),
    )
    return Call("catalog", args, _catalog_frame)


def _resampled(answer: tuple[Any, str]) -> pd.DataFrame:
    stream, counts = answer
    frame = c.resample_frame(stream)
    frame.attrs.update(json.loads(counts))
    return frame


def resample(
    start_time: Any,
    end_time: Any,
    freq: Any,
    target_freq: Any,
    symbols: Any = None,
    *,
    drop_incomplete: bool = False,
    store: bool = False,
) -> Call:
    """Bars of ``freq`` aggregated to ``target_freq`` (labelled at the bucket open);
    ``store=True`` also writes them. The counts are in ``frame.attrs``."""
    args = (
        *_range(start_time, end_time),
        c.freq_value(freq),
        c.freq_value(target_freq),
        c.symbol_list(symbols),
        bool(drop_incomplete),
        bool(store),
    )
    return Call("resample", args, _resampled)


def _combined_period(oi_interval: Any, lsr_period: Any, with_oi: bool, with_lsr: bool) -> str:
    oi, lsr = c.freq_value(oi_interval), c.freq_value(lsr_period)
    if with_oi and with_lsr and oi != lsr:
        raise ValueError(f"oi_interval {oi!r} and lsr_period {lsr!r} differ; marketdb aligns one metric period")
    return lsr if with_lsr else oi


def get_combined_data(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    include_funding_rate: bool = False,
    include_open_interest: bool = False,
    include_long_short_ratio: bool = False,
    oi_interval: Any = "5m",
    lsr_period: Any = "5m",
    lsr_ratio_type: str = "account",
) -> Call:
    """Bars with the metrics known at each bar's close (as-of, no look-ahead), unlike
    1.9's exact-time join. ``oi_interval`` and ``lsr_period`` must agree (one metric
    period)."""
    native, names = c.combined_features(
        include_funding_rate, include_open_interest, include_long_short_ratio, lsr_ratio_type
    )
    period = _combined_period(oi_interval, lsr_period, include_open_interest, include_long_short_ratio)
    args = (*_range(start_time, end_time), c.freq_value(freq), c.symbol_list(symbols), native, period)

    def finish(stream: Any) -> pd.DataFrame:
        table = c.arrow_table(stream)
        return pd.DataFrame() if table.num_rows == 0 else c.bars_frame(table, names)

    return Call("combined", args, finish)


# ---- exports -------------------------------------------------------------------------------


def _export(
    kind: str,
    output: Any,
    start: Any,
    end: Any,
    freq: Any,
    symbols: Any,
    *,
    features: Any = None,
    target_freq: Any = None,
    fill: str = "none",
    compression: str | None = None,
    csv_part_rows: int | None = None,
) -> Call:
    if csv_part_rows is not None and (
        isinstance(csv_part_rows, bool) or not isinstance(csv_part_rows, int) or csv_part_rows <= 0
    ):
        raise ValueError(f"chunk_size {csv_part_rows!r} is not a positive number of rows")
    args = (
        kind,
        os.fspath(output),
        None if start is None else c.time_value(start, "start_time"),
        None if end is None else c.time_value(end, "end_time"),
        c.freq_value(freq),
        c.symbol_list(symbols),
        c.feature_list(features),
        None if target_freq is None else c.freq_value(target_freq),
        str(fill),
        None if compression is None else str(compression),
        csv_part_rows,
    )
    return Call("export", args, json.loads)


def export_to_files(
    output_path: Any,
    start_date: Any,
    end_date: Any,
    freq: Any,
    symbols: Any,
    target_freq: Any = None,
    chunk_days: int = 30,
) -> Call:
    """NumPy matrices per day and feature (marketdb's layout, docs/formats.md); a
    date-only end includes its whole day. ``chunk_days`` is accepted and ignored:
    memory is bounded per day, not per chunk."""
    del chunk_days
    return _export("files", output_path, start_date, end_date, freq, symbols, target_freq=target_freq)


def export_to_files_by_timestamp(
    output_path: Any,
    start_ts: int,
    end_ts: int,
    freq: Any,
    symbols: Any,
    target_freq: Any = None,
    chunk_days: int = 30,
) -> Call:
    """``export_to_files`` with inclusive epoch-millisecond bounds."""
    del chunk_days
    return _export("files", output_path, int(start_ts), int(end_ts), freq, symbols, target_freq=target_freq)


def export_to_numpy(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    output_path: Any,
    features: list[str] | None = None,
    chunk_size: int | None = None,
    *,
    target_freq: Any = None,
    fill: str = "none",
) -> Call:
    """The NumPy export (docs/formats.md); ``fill`` is ``none`` or ``ffill``.
    ``chunk_size`` is accepted and ignored (memory is bounded per day)."""
    del chunk_size
    options = {"features": features, "target_freq": target_freq, "fill": fill}
    return _export("numpy", output_path, start_time, end_time, freq, symbols, **options)


def export_to_csv(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    output_path: Any,
    features: list[str] | None = None,
    chunk_size: int | None = None,
    *,
    target_freq: Any = None,
) -> Call:
    """The CSV export; ``chunk_size`` rows per part file when given."""
    options = {"features": features, "target_freq": target_freq, "csv_part_rows": chunk_size}
    return _export("csv", output_path, start_time, end_time, freq, symbols, **options)


def export_to_parquet(
    symbols: Any,
    start_time: Any,
    end_time: Any,
    freq: Any,
    output_path: Any,
    features: list[str] | None = None,
    compression: str = "zstd",
    *,
    target_freq: Any = None,
) -> Call:
    """The Parquet export (``compression``: zstd, snappy, gzip, lz4 or none)."""
    options = {"features": features, "target_freq": target_freq, "compression": compression}
    return _export("parquet", output_path, start_time, end_time, freq, symbols, **options)


def export_dataset(
    output_path: Any,
    freq: Any,
    symbols: Any = None,
    start_time: Any = None,
    end_time: Any = None,
    compression: str = "zstd",
) -> Call:
    """A Hive-partitioned Parquet dataset (docs/formats.md); incremental on re-export."""
    return _export("dataset", output_path, start_time, end_time, freq, symbols, compression=compression)


#: The methods of both database classes, in the order the stubs list them.
DATABASE = (
    store_data,
    read_data,
    read_data_by_timestamp,
    read_arrow,
    read_batches,
    read_polars,
    get_symbols_list,
    get_data_summary,
    get_latest_data,
    data_exists,
    get_available_dates,
    get_symbol_data_range,
    get_aggregated_data,
    get_data_statistics,
    store_funding_rate,
    store_open_interest,
    store_long_short_ratio,
    read_funding_rate,
    read_open_interest,
    read_long_short_ratio,
    check_completeness,
    download,
    catalog,
    resample,
    get_combined_data,
    export_to_files,
    export_to_files_by_timestamp,
)

#: The exports ``MarketDB`` has itself and ``AsyncDataExporter`` holds for ``AsyncMarketDB``
#: (1.9 kept them on its exporter class).
EXPORTS = (export_to_numpy, export_to_csv, export_to_parquet, export_dataset)


def install(cls: type, ops: tuple[Callable[..., Call], ...], make: Callable[[Callable[..., Call]], Any]) -> None:
    """Adds each operation of ``ops`` to ``cls`` as a method made by ``make``."""
    for op in ops:
        setattr(cls, op.__name__, make(op))


