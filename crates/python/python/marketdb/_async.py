"""AsyncMarketDB and AsyncDataExporter: awaitable versions for asyncio.

The database work runs on marketdb's tokio runtime; awaiting a call suspends only the
calling coroutine, so the event loop keeps running while SQLite reads or writes.
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import pandas as pd
import pyarrow as pa

from . import _common as c
from ._native import Native
from ._sync import combined_period, export_args


class AsyncMarketDB:
    """The awaitable MarketDB (cryptoservice 1.9's ``AsyncMarketDB`` names). Use
    ``async with AsyncMarketDB(path) as db`` or ``await db.initialize()``; every method also
    opens the database on first use. Frames are shaped as ``MarketDB``'s (timestamp as a
    naive UTC datetime), unlike 1.9's async class, which never worked."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        max_connections: int | None = None,
        enable_wal: bool | None = None,
        enable_optimizations: bool | None = None,
    ) -> None:
        del max_connections, enable_wal, enable_optimizations
        self.db_path, self._pool, mmap_size = c.open_args(db_path, pool, mmap_size)
        self._read_only = bool(read_only)
        self._mmap_size = mmap_size
        self._native: Native | None = None
        self._closed = False
        # Created on first use, inside the event loop: concurrent first calls open once.
        self._opening: asyncio.Lock | None = None

    async def initialize(self) -> None:
        if self._closed:
            raise ValueError(f"the database {self.db_path} is closed")
        if self._native is not None:
            return
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._native is None and not self._closed:
                self._native = await Native.open(self.db_path, self._pool, self._read_only, self._mmap_size, True)
        if self._closed:
            raise ValueError(f"the database {self.db_path} is closed")

    async def _db(self) -> Native:
        await self.initialize()
        assert self._native is not None
        return self._native

    async def close(self) -> None:
        self._closed = True
        if self._native is not None:
            await self._native.close(True)

    async def __aenter__(self) -> AsyncMarketDB:
        await self.initialize()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def pool_kind(self) -> str | None:
        return None if self._native is None else self._native.pool_kind

    async def store_data(self, data: Any, freq: Any, batch_size: int | None = None) -> int:
        """As ``MarketDB.store_data``; ``batch_size`` is accepted and ignored (one
        transaction per call)."""
        del batch_size
        db = await self._db()
        cols = c.kline_columns(data)
        if cols is None:
            c.logger.warning("no kline rows to store")
            return 0
        names, codes, columns = cols
        return await db.store_klines(c.freq_value(freq), names, codes, columns, True)

    async def _read(self, start, end, freq, symbols, features, by_timestamp, raise_on_empty):
        db = await self._db()
        features = c.feature_list(features)
        columns = await db.read_columns(
            c.time_value(start, "start_time"),
            c.time_value(end, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            c.output_names(features),
            by_timestamp,
            True,
        )
        return c.read_result(columns, features, raise_on_empty)

    async def read_data(self, start_time, end_time, freq, symbols, features=None, raise_on_empty=True) -> pd.DataFrame:
        return await self._read(start_time, end_time, freq, symbols, features, False, raise_on_empty)

    async def read_data_by_timestamp(
        self, start_ts, end_ts, freq, symbols, features=None, raise_on_empty=True
    ) -> pd.DataFrame:
        return await self._read(start_ts, end_ts, freq, symbols, features, True, raise_on_empty)

    async def read_arrow(self, start_time, end_time, freq, symbols=None, features=None) -> pa.Table:
        db = await self._db()
        stream = await db.read(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            c.feature_list(features),
            False,
            True,
        )
        return c.arrow_table(stream)

    async def get_symbols_list(self, freq: Any = None) -> list[str]:
        db = await self._db()
        return await db.symbols(None if freq is None else c.freq_value(freq), True)

    async def get_data_summary(self) -> dict[str, Any]:
        db = await self._db()
        return json.loads(await db.summary(True))

    async def _store_metrics(self, kind: str, data: list[Any]) -> int:
        db = await self._db()
        return await db.store_metrics(kind, c.metric_records(kind, data), True)

    async def store_funding_rate(self, data: list[Any]) -> int:
        return await self._store_metrics("funding_rate", data)

    async def store_open_interest(self, data: list[Any]) -> int:
        return await self._store_metrics("open_interest", data)

    async def store_long_short_ratio(self, data: list[Any]) -> int:
        return await self._store_metrics("long_short_ratio", data)

    async def _read_metrics(self, kind, start, end, symbols, period, ratio_type, raise_on_empty):
        db = await self._db()
        text = await db.read_metrics(
            kind,
            c.time_value(start, "start_time"),
            c.time_value(end, "end_time"),
            c.symbol_list(symbols),
            c.freq_value(period),
            str(ratio_type),
            True,
        )
        return c.metric_frame(kind, text, raise_on_empty)

    async def read_funding_rate(self, start_time, end_time, symbols, raise_on_empty=True) -> pd.DataFrame:
        return await self._read_metrics("funding_rate", start_time, end_time, symbols, "5m", "account", raise_on_empty)

    async def read_open_interest(self, start_time, end_time, symbols, interval="5m", raise_on_empty=True):
        return await self._read_metrics("open_interest", start_time, end_time, symbols, interval, "account", raise_on_empty)

    async def read_long_short_ratio(
        self, start_time, end_time, symbols, period="5m", ratio_type="account", raise_on_empty=True
    ) -> pd.DataFrame:
        return await self._read_metrics(
            "long_short_ratio", start_time, end_time, symbols, period, ratio_type, raise_on_empty
        )

    async def check_completeness(self, start_time, end_time, freq, symbols=None) -> dict[str, Any]:
        db = await self._db()
        text = await db.check_completeness(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            True,
        )
        return json.loads(text)

    async def resample(
        self, start_time, end_time, freq, target_freq, symbols=None, *, drop_incomplete=False, store=False
    ) -> pd.DataFrame:
        db = await self._db()
        stream, counts = await db.resample(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.freq_value(target_freq),
            c.symbol_list(symbols),
            bool(drop_incomplete),
            bool(store),
            True,
        )
        frame = c.resample_frame(stream)
        frame.attrs.update(json.loads(counts))
        return frame

    async def get_combined_data(
        self,
        symbols,
        start_time,
        end_time,
        freq,
        include_funding_rate=False,
        include_open_interest=False,
        include_long_short_ratio=False,
        oi_interval="5m",
        lsr_period="5m",
        lsr_ratio_type="account",
    ) -> pd.DataFrame:
        db = await self._db()
        native, names = c.combined_features(
            include_funding_rate, include_open_interest, include_long_short_ratio, lsr_ratio_type
        )
        period = combined_period(oi_interval, lsr_period, include_open_interest, include_long_short_ratio)
        stream = await db.combined(
            c.time_value(start_time, "start_time"),
            c.time_value(end_time, "end_time"),
            c.freq_value(freq),
            c.symbol_list(symbols),
            native,
            period,
            True,
        )
        table = c.arrow_table(stream)
        if table.num_rows == 0:
            return pd.DataFrame()
        return c.bars_frame(table, names)

    async def _export(self, kind, output, start, end, freq, symbols, **kw) -> dict:
        db = await self._db()
        text = await db.export(*export_args(kind, output, start, end, freq, symbols, **kw), True)
        return json.loads(text)

    async def export_to_files(
        self, output_path, start_date, end_date, freq, symbols, target_freq=None, chunk_days=30
    ) -> dict:
        del chunk_days
        return await self._export("files", output_path, start_date, end_date, freq, symbols, target_freq=target_freq)

    async def export_to_files_by_timestamp(
        self, output_path, start_ts, end_ts, freq, symbols, target_freq=None, chunk_days=30
    ) -> dict:
        del chunk_days
        return await self._export(
            "files", output_path, int(start_ts), int(end_ts), freq, symbols, target_freq=target_freq
        )


class AsyncDataExporter:
    """cryptoservice 1.9's ``AsyncDataExporter(db)``: NumPy, CSV, Parquet and dataset
    exports of an ``AsyncMarketDB``. Returns each export's report (a dict)."""

    def __init__(self, db: AsyncMarketDB) -> None:
        if not isinstance(db, AsyncMarketDB):
            raise ValueError(f"AsyncDataExporter takes an AsyncMarketDB, not {type(db).__name__}")
        self.db = db

    async def export_to_numpy(
        self, symbols, start_time, end_time, freq, output_path, features=None, chunk_size=None, *, fill="none"
    ) -> dict:
        del chunk_size
        return await self.db._export(
            "numpy", output_path, start_time, end_time, freq, symbols, features=features, fill=fill
        )

    async def export_to_csv(
        self, symbols, start_time, end_time, freq, output_path, features=None, chunk_size=None
    ) -> dict:
        return await self.db._export(
            "csv", output_path, start_time, end_time, freq, symbols, features=features, csv_part_rows=chunk_size
        )

    async def export_to_parquet(
        self, symbols, start_time, end_time, freq, output_path, features=None, compression="zstd"
    ) -> dict:
        return await self.db._export(
            "parquet", output_path, start_time, end_time, freq, symbols, features=features, compression=compression
        )

    async def export_dataset(self, output_path, freq, symbols=None, start_time=None, end_time=None, compression="zstd"):
        return await self.db._export("dataset", output_path, start_time, end_time, freq, symbols, compression=compression)
