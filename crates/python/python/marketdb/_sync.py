"""MarketDB: the blocking class, with cryptoservice 1.9's method names and arguments."""

from __future__ import annotations

import json
import os
from typing import Any

import pandas as pd
import pyarrow as pa

from . import _common as c
from ._native import Native


class MarketDB:
    """A marketdb SQLite database (created unless ``read_only``), with the API of
    cryptoservice 1.9's ``MarketDB``.

    ``pool`` picks the connection pool: ``"auto"`` (bb8, falling back to the built-in pool),
    ``"bb8"`` or ``"builtin"``. ``mmap_size`` is SQLite's memory map in bytes: 0 (the
    default here) reads through SQLite's page cache, so a large read does not map the file
    into the process; ``None`` keeps marketdb's default (256 MiB). Every call releases the GIL while the database works, so
    threads may share one instance. ``use_pool`` and ``max_connections`` of 1.9 are accepted
    and ignored (the pool is always on and sized by marketdb).
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        use_pool: bool | None = None,
        max_connections: int | None = None,
    ) -> None:
        del use_pool, max_connections
        path, pool, mmap_size = c.open_args(db_path, pool, mmap_size)
        self._native = Native.open(path, pool, bool(read_only), mmap_size, False)
        self.db_path = self._native.path

    # ---- lifecycle -------------------------------------------------------------------

    def close(self) -> None:
        """Closes the database; later calls raise ``ValueError``. Closing twice is allowed."""
        self._native.close(False)

    def __enter__(self) -> MarketDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pool_kind(self) -> str:
        """The pool in use: ``"bb8"`` or ``"builtin"``."""
        return self._native.pool_kind

    @property
    def read_only(self) -> bool:
        return self._native.read_only

    # ---- klines ----------------------------------------------------------------------

    def store_data(self, data: Any, freq: Any) -> int:
        """Stores klines; returns the rows stored. ``data`` is a DataFrame or pyarrow Table
        (columns ``symbol``, ``timestamp``/``open_time``, ``open_price``/``open``, ...), or a
        list (flat or nested) of 1.9 tickers, dicts or ``(symbol, binance_row)`` pairs. Every
        row is validated first; one bad row stores nothing."""
        cols = c.kline_columns(data)
        if cols is None:
            c.logger.warning("no kline rows to store")
            return 0
        names, codes, columns = cols
        return self._native.store_klines(c.freq_value(freq), names, codes, columns, False)

    def read_data(
        self,
        start_time: Any,
        end_time: Any,
        freq: Any,
        symbols: Any,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame:
        """Bars of ``symbols`` from ``start_time`` to ``end_time`` (a date-only end includes
        its whole day; an instant end is inclusive) as a frame indexed by (symbol,
        timestamp) with the long column names of 1.9."""
        features = c.feature_list(features)
        columns = self._native.read_columns(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            c.output_names(features),
            False,
            False,
        )
        return c.read_result(columns, features, raise_on_empty)

    def read_data_by_timestamp(
        self,
        start_ts: int | str,
        end_ts: int | str,
        freq: Any,
        symbols: Any,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame:
        """``read_data`` with inclusive epoch-millisecond bounds."""
        features = c.feature_list(features)
        columns = self._native.read_columns(
            c.time_value(start_ts, "start_ts"),
            c.time_value(end_ts, "end_ts"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            c.output_names(features),
            True,
            False,
        )
        return c.read_result(columns, features, raise_on_empty)

    def read_arrow(
        self,
        start_time: Any,
        end_time: Any,
        freq: Any,
        symbols: Any = None,
        features: list[str] | None = None,
    ) -> pa.Table:
        """Bars as a ``pyarrow.Table`` taken through the Arrow PyCapsule interface (no copy):
        ``symbol`` (dictionary), ``timestamp`` (ms, UTC), then the features by short name
        (the Parquet export's schema). All symbols when ``symbols`` is None."""
        stream = self._native.read(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            c.feature_list(features),
            False,
            False,
        )
        return c.arrow_table(stream)

    def get_symbols_list(self, freq: Any = None) -> list[str]:
        return self._native.symbols(None if freq is None else c.freq_value(freq), False)

    def get_data_summary(self) -> dict[str, Any]:
        """Row counts and ranges per table and interval (1.9's key names)."""
        return json.loads(self._native.summary(False))

    # ---- metrics ---------------------------------------------------------------------

    def store_funding_rate(self, data: list[Any]) -> int:
        return self._native.store_metrics("funding_rate", c.metric_records("funding_rate", data), False)

    def store_open_interest(self, data: list[Any]) -> int:
        return self._native.store_metrics("open_interest", c.metric_records("open_interest", data), False)

    def store_long_short_ratio(self, data: list[Any]) -> int:
        return self._native.store_metrics(
            "long_short_ratio", c.metric_records("long_short_ratio", data), False
        )

    def read_funding_rate(
        self, start_time: Any, end_time: Any, symbols: Any, raise_on_empty: bool = True
    ) -> pd.DataFrame:
        text = self._native.read_metrics(
            "funding_rate",
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.symbol_list(symbols),
            "5m",
            "account",
            False,
        )
        return c.metric_frame("funding_rate", text, raise_on_empty)

    def read_open_interest(
        self,
        start_time: Any,
        end_time: Any,
        symbols: Any,
        interval: Any = "5m",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame:
        text = self._native.read_metrics(
            "open_interest",
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.symbol_list(symbols),
            c.freq_value(interval),
            "account",
            False,
        )
        return c.metric_frame("open_interest", text, raise_on_empty)

    def read_long_short_ratio(
        self,
        start_time: Any,
        end_time: Any,
        symbols: Any,
        period: Any = "5m",
        ratio_type: str = "account",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame:
        text = self._native.read_metrics(
            "long_short_ratio",
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.symbol_list(symbols),
            c.freq_value(period),
            str(ratio_type),
            False,
        )
        return c.metric_frame("long_short_ratio", text, raise_on_empty)

    # ---- checks, resampling, combined ------------------------------------------------

    def check_completeness(self, start_time: Any, end_time: Any, freq: Any, symbols: Any = None) -> dict[str, Any]:
        """Every missing bar per symbol on the interval's half-open grid (a dict)."""
        text = self._native.check_completeness(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            False,
        )
        return json.loads(text)

    def resample(
        self,
        start_time: Any,
        end_time: Any,
        freq: Any,
        target_freq: Any,
        symbols: Any = None,
        *,
        drop_incomplete: bool = False,
        store: bool = False,
    ) -> pd.DataFrame:
        """Bars of ``freq`` aggregated to ``target_freq`` (labelled at the bucket open);
        ``store=True`` also writes them. The counts are in ``frame.attrs``."""
        stream, counts = self._native.resample(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.freq_value(target_freq),
            c.symbol_list(symbols),
            bool(drop_incomplete),
            bool(store),
            False,
        )
        frame = c.resample_frame(stream)
        frame.attrs.update(json.loads(counts))
        return frame

    def get_combined_data(
        self,
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
    ) -> pd.DataFrame:
        """Bars with the metrics known at each bar's close (as-of, no look-ahead), unlike
        1.9's exact-time join. ``oi_interval`` and ``lsr_period`` must agree (one metric
        period)."""
        native, names = c.combined_features(
            include_funding_rate, include_open_interest, include_long_short_ratio, lsr_ratio_type
        )
        period = combined_period(oi_interval, lsr_period, include_open_interest, include_long_short_ratio)
        stream = self._native.combined(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            native,
            period,
            False,
        )
        table = c.arrow_table(stream)
        if table.num_rows == 0:
            return pd.DataFrame()
        return c.bars_frame(table, names)

    # ---- exports ---------------------------------------------------------------------

    def _export(self, kind: str, output: Any, start: Any, end: Any, freq: Any, symbols: Any, **kw: Any) -> dict:
        text = self._native.export(*export_args(kind, output, start, end, freq, symbols, **kw), False)
        return json.loads(text)

    def export_to_files(
        self,
        output_path: Any,
        start_date: Any,
        end_date: Any,
        freq: Any,
        symbols: Any,
        target_freq: Any = None,
        chunk_days: int = 30,
    ) -> dict:
        """NumPy matrices per day and feature (marketdb's layout, docs/formats.md); a
        date-only end includes its whole day. ``chunk_days`` is accepted and ignored:
        memory is bounded per day, not per chunk."""
        del chunk_days
        return self._export("files", output_path, start_date, end_date, freq, symbols, target_freq=target_freq)

    def export_to_files_by_timestamp(
        self,
        output_path: Any,
        start_ts: int,
        end_ts: int,
        freq: Any,
        symbols: Any,
        target_freq: Any = None,
        chunk_days: int = 30,
    ) -> dict:
        del chunk_days
        return self._export(
            "files", output_path, int(start_ts), int(end_ts), freq, symbols, target_freq=target_freq
        )

    def export_to_numpy(self, symbols, start_time, end_time, freq, output_path, features=None, **kw) -> dict:
        return self._export("numpy", output_path, start_time, end_time, freq, symbols, features=features, **kw)

    def export_to_csv(self, symbols, start_time, end_time, freq, output_path, features=None, chunk_size=None, **kw) -> dict:
        return self._export(
            "csv", output_path, start_time, end_time, freq, symbols, features=features, csv_part_rows=chunk_size, **kw
        )

    def export_to_parquet(
        self, symbols, start_time, end_time, freq, output_path, features=None, compression="zstd", **kw
    ) -> dict:
        return self._export(
            "parquet", output_path, start_time, end_time, freq, symbols, features=features, compression=compression, **kw
        )

    def export_dataset(self, output_path, freq, symbols=None, start_time=None, end_time=None, compression="zstd") -> dict:
        """A Hive-partitioned Parquet dataset (docs/formats.md); incremental on re-export."""
        return self._export("dataset", output_path, start_time, end_time, freq, symbols, compression=compression)


def combined_period(oi_interval: Any, lsr_period: Any, with_oi: bool, with_lsr: bool) -> str:
    oi, lsr = c.freq_value(oi_interval), c.freq_value(lsr_period)
    if with_oi and with_lsr and oi != lsr:
        raise ValueError(f"oi_interval {oi!r} and lsr_period {lsr!r} differ; marketdb aligns one metric period")
    return lsr if with_lsr else oi


def export_args(
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
) -> tuple:
    if csv_part_rows is not None and (not isinstance(csv_part_rows, int) or csv_part_rows <= 0):
        raise ValueError(f"chunk_size {csv_part_rows!r} is not a positive number of rows")
    return (
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
