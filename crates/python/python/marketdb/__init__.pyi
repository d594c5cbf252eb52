"""Type stubs of the marketdb package (see docs/python.md)."""

import datetime
import enum
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pyarrow as pa

__version__: str

_Time = str | int | datetime.datetime | datetime.date | pd.Timestamp  # a date/time string or epoch ms
_Freq = str | enum.Enum  # "1m" or an enum whose .value is one (cryptoservice's Freq.m1)
_Symbols = Sequence[str] | str | None
_Path = str | os.PathLike[str]

class StorageError(OSError):
    """The database or an output file refused an operation (I/O, SQLite, a lock)."""

class MarketDB:
    db_path: str
    def __init__(
        self,
        db_path: _Path,
        use_pool: bool | None = None,
        max_connections: int | None = None,
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        compat: str | None = None,
    ) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> MarketDB: ...
    def __exit__(self, *exc: object) -> None: ...
    @property
    def pool_kind(self) -> str: ...
    @property
    def read_only(self) -> bool: ...
    def store_data(self, data: Any, freq: _Freq, batch_size: int | None = None) -> int: ...
    def read_data(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    def read_data_by_timestamp(
        self,
        start_ts: int | str,
        end_ts: int | str,
        freq: _Freq,
        symbols: _Symbols,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    def read_arrow(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
    ) -> pa.Table: ...
    def read_batches(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
        batch_rows: int = 65536,
    ) -> pa.RecordBatchReader: ...
    def read_polars(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
    ) -> Any: ...  # polars.DataFrame (polars is optional)
    def get_symbols_list(self, freq: _Freq | None = None) -> list[str]: ...
    def get_data_summary(self) -> dict[str, Any]: ...
    def get_latest_data(self, symbols: _Symbols, freq: _Freq, limit: int = 1) -> pd.DataFrame: ...
    def data_exists(self, symbol: str, start_time: _Time, end_time: _Time, freq: _Freq) -> bool: ...
    def get_available_dates(self, symbol: str, freq: _Freq) -> list[str]: ...
    def get_symbol_data_range(self, symbol: str, freq: _Freq | None = None) -> dict[str, Any]: ...
    def get_aggregated_data(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        agg_period: str = "1D",
        agg_functions: dict[str, Any] | None = None,
    ) -> pd.DataFrame: ...
    def get_data_statistics(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        features: list[str] | None = None,
    ) -> pd.DataFrame: ...
    def store_funding_rate(self, data: list[Any]) -> int: ...
    def store_open_interest(self, data: list[Any]) -> int: ...
    def store_long_short_ratio(self, data: list[Any]) -> int: ...
    def read_funding_rate(
        self, start_time: _Time, end_time: _Time, symbols: _Symbols, raise_on_empty: bool = True
    ) -> pd.DataFrame: ...
    def read_open_interest(
        self,
        start_time: _Time,
        end_time: _Time,
        symbols: _Symbols,
        interval: _Freq = "5m",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    def read_long_short_ratio(
        self,
        start_time: _Time,
        end_time: _Time,
        symbols: _Symbols,
        period: _Freq = "5m",
        ratio_type: str = "account",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    def check_completeness(
        self, start_time: _Time, end_time: _Time, freq: _Freq, symbols: _Symbols = None
    ) -> dict[str, Any]: ...
    def download(
        self,
        market: str,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq | None = None,
        *,
        kind: str = "klines",
        source: str = "auto",
        base_url: str | None = None,
        rest_url: str | None = None,
        jobs: int = 4,
        retries: int = 4,
        keep: str | os.PathLike[str] | None = None,
        recheck_days: int = 3,
        reverify: bool = False,
        quote: str | None = None,
        include_delisted: bool = False,
    ) -> dict[str, Any]: ...
    def catalog(
        self,
        market: str | None = None,
        kind: str | None = None,
        freq: _Freq | None = None,
        symbols: _Symbols | None = None,
        delisted: bool = False,
    ) -> pd.DataFrame: ...
    def resample(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        target_freq: _Freq,
        symbols: _Symbols = None,
        *,
        drop_incomplete: bool = False,
        store: bool = False,
    ) -> pd.DataFrame: ...
    def get_combined_data(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        include_funding_rate: bool = False,
        include_open_interest: bool = False,
        include_long_short_ratio: bool = False,
        oi_interval: _Freq = "5m",
        lsr_period: _Freq = "5m",
        lsr_ratio_type: str = "account",
    ) -> pd.DataFrame: ...
    def export_to_files(
        self,
        output_path: _Path,
        start_date: _Time,
        end_date: _Time,
        freq: _Freq,
        symbols: _Symbols,
        target_freq: _Freq | None = None,
        chunk_days: int = 30,
    ) -> dict[str, Any]: ...
    def export_to_files_by_timestamp(
        self,
        output_path: _Path,
        start_ts: int,
        end_ts: int,
        freq: _Freq,
        symbols: _Symbols,
        target_freq: _Freq | None = None,
        chunk_days: int = 30,
    ) -> dict[str, Any]: ...
    def export_to_numpy(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        chunk_size: int | None = None,
        *,
        target_freq: _Freq | None = None,
        fill: str = "none",
    ) -> dict[str, Any]: ...
    def export_to_csv(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        chunk_size: int | None = None,
        *,
        target_freq: _Freq | None = None,
    ) -> dict[str, Any]: ...
    def export_to_parquet(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        compression: str = "zstd",
        *,
        target_freq: _Freq | None = None,
    ) -> dict[str, Any]: ...
    def export_dataset(
        self,
        output_path: _Path,
        freq: _Freq,
        symbols: _Symbols = None,
        start_time: _Time | None = None,
        end_time: _Time | None = None,
        compression: str = "zstd",
    ) -> dict[str, Any]: ...

class AsyncMarketDB:
    db_path: str
    def __init__(
        self,
        db_path: _Path,
        max_connections: int | None = None,
        enable_wal: bool | None = None,
        enable_optimizations: bool | None = None,
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        compat: str | None = None,
    ) -> None: ...
    async def initialize(self) -> None: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> AsyncMarketDB: ...
    async def __aexit__(self, *exc: object) -> None: ...
    @property
    def pool_kind(self) -> str | None: ...
    async def store_data(self, data: Any, freq: _Freq, batch_size: int | None = None) -> int: ...
    async def read_data(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    async def read_data_by_timestamp(
        self,
        start_ts: int | str,
        end_ts: int | str,
        freq: _Freq,
        symbols: _Symbols,
        features: list[str] | None = None,
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    async def read_arrow(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
    ) -> pa.Table: ...
    async def read_batches(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
        batch_rows: int = 65536,
    ) -> pa.RecordBatchReader: ...
    async def read_polars(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        symbols: _Symbols = None,
        features: list[str] | None = None,
    ) -> Any: ...  # polars.DataFrame (polars is optional)
    async def get_symbols_list(self, freq: _Freq | None = None) -> list[str]: ...
    async def get_data_summary(self) -> dict[str, Any]: ...
    async def get_latest_data(self, symbols: _Symbols, freq: _Freq, limit: int = 1) -> pd.DataFrame: ...
    async def data_exists(self, symbol: str, start_time: _Time, end_time: _Time, freq: _Freq) -> bool: ...
    async def get_available_dates(self, symbol: str, freq: _Freq) -> list[str]: ...
    async def get_symbol_data_range(self, symbol: str, freq: _Freq | None = None) -> dict[str, Any]: ...
    async def get_aggregated_data(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        agg_period: str = "1D",
        agg_functions: dict[str, Any] | None = None,
    ) -> pd.DataFrame: ...
    async def get_data_statistics(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        features: list[str] | None = None,
    ) -> pd.DataFrame: ...
    async def store_funding_rate(self, data: list[Any]) -> int: ...
    async def store_open_interest(self, data: list[Any]) -> int: ...
    async def store_long_short_ratio(self, data: list[Any]) -> int: ...
    async def read_funding_rate(
        self, start_time: _Time, end_time: _Time, symbols: _Symbols, raise_on_empty: bool = True
    ) -> pd.DataFrame: ...
    async def read_open_interest(
        self,
        start_time: _Time,
        end_time: _Time,
        symbols: _Symbols,
        interval: _Freq = "5m",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    async def read_long_short_ratio(
        self,
        start_time: _Time,
        end_time: _Time,
        symbols: _Symbols,
        period: _Freq = "5m",
        ratio_type: str = "account",
        raise_on_empty: bool = True,
    ) -> pd.DataFrame: ...
    async def check_completeness(
        self, start_time: _Time, end_time: _Time, freq: _Freq, symbols: _Symbols = None
    ) -> dict[str, Any]: ...
    async def download(
        self,
        market: str,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq | None = None,
        *,
        kind: str = "klines",
        source: str = "auto",
        base_url: str | None = None,
        rest_url: str | None = None,
        jobs: int = 4,
        retries: int = 4,
        keep: str | os.PathLike[str] | None = None,
        recheck_days: int = 3,
        reverify: bool = False,
        quote: str | None = None,
        include_delisted: bool = False,
    ) -> dict[str, Any]: ...
    async def catalog(
        self,
        market: str | None = None,
        kind: str | None = None,
        freq: _Freq | None = None,
        symbols: _Symbols | None = None,
        delisted: bool = False,
    ) -> pd.DataFrame: ...
    async def resample(
        self,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        target_freq: _Freq,
        symbols: _Symbols = None,
        *,
        drop_incomplete: bool = False,
        store: bool = False,
    ) -> pd.DataFrame: ...
    async def get_combined_data(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        include_funding_rate: bool = False,
        include_open_interest: bool = False,
        include_long_short_ratio: bool = False,
        oi_interval: _Freq = "5m",
        lsr_period: _Freq = "5m",
        lsr_ratio_type: str = "account",
    ) -> pd.DataFrame: ...
    async def export_to_files(
        self,
        output_path: _Path,
        start_date: _Time,
        end_date: _Time,
        freq: _Freq,
        symbols: _Symbols,
        target_freq: _Freq | None = None,
        chunk_days: int = 30,
    ) -> dict[str, Any]: ...
    async def export_to_files_by_timestamp(
        self,
        output_path: _Path,
        start_ts: int,
        end_ts: int,
        freq: _Freq,
        symbols: _Symbols,
        target_freq: _Freq | None = None,
        chunk_days: int = 30,
    ) -> dict[str, Any]: ...

class AsyncDataExporter:
    db: AsyncMarketDB
    def __init__(self, db: AsyncMarketDB) -> None: ...
    async def export_to_numpy(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        chunk_size: int | None = None,
        *,
        target_freq: _Freq | None = None,
        fill: str = "none",
    ) -> dict[str, Any]: ...
    async def export_to_csv(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        chunk_size: int | None = None,
        *,
        target_freq: _Freq | None = None,
    ) -> dict[str, Any]: ...
    async def export_to_parquet(
        self,
        symbols: _Symbols,
        start_time: _Time,
        end_time: _Time,
        freq: _Freq,
        output_path: _Path,
        features: list[str] | None = None,
        compression: str = "zstd",
        *,
        target_freq: _Freq | None = None,
    ) -> dict[str, Any]: ...
    async def export_dataset(
        self,
        output_path: _Path,
        freq: _Freq,
        symbols: _Symbols = None,
        start_time: _Time | None = None,
        end_time: _Time | None = None,
        compression: str = "zstd",
    ) -> dict[str, Any]: ...
