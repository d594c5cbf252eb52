"""AsyncMarketDB and AsyncDataExporter: awaitable versions for asyncio.

The database work runs on marketdb's tokio runtime; awaiting a call suspends only the
calling coroutine, so the event loop keeps running while SQLite reads or writes.
"""

from __future__ import annotations

import asyncio
import os

from . import _common as c
from . import _ops
from ._native import Native


class AsyncMarketDB:
    """The awaitable MarketDB (cryptoservice 1.9's ``AsyncMarketDB`` names). Use
    ``async with AsyncMarketDB(path) as db`` or ``await db.initialize()``; every method also
    opens the database on first use. Frames are shaped as ``MarketDB``'s (timestamp as a
    naive UTC datetime), unlike 1.9's async class, which never worked. ``compat``, pickling
    and ``fork`` work as in ``MarketDB``."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        max_connections: int | None = None,
        enable_wal: bool | None = None,
        enable_optimizations: bool | None = None,
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        compat: str | None = None,
    ) -> None:
        del max_connections, enable_wal, enable_optimizations
        self.db_path, self._pool, mmap_size = c.open_args(db_path, pool, mmap_size)
        self._read_only = bool(read_only)
        self._mmap_size = mmap_size
        self._compat = c.compat_mode(compat)
        self._options = {"pool": self._pool, "read_only": self._read_only, "mmap_size": mmap_size, "compat": self._compat}
        self._native: Native | None = None
        self._closed = False
        # Created on first use, inside the event loop: concurrent first calls open once.
        self._opening: asyncio.Lock | None = None
        c.track(self)

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

    def __reduce__(self) -> tuple:
        if self._closed:
            raise ValueError(f"the database {self.db_path} is closed: a closed handle is not pickled")
        # An absolute path: the receiving process may run in another folder.
        return (c.reopen, (type(self), os.path.abspath(self.db_path), self._options))

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


_ops.install(AsyncMarketDB, _ops.DATABASE, _ops.awaitable)


class AsyncDataExporter:
    """cryptoservice 1.9's ``AsyncDataExporter(db)``: NumPy, CSV, Parquet and dataset
    exports of an ``AsyncMarketDB``. Returns each export's report (a dict)."""

    def __init__(self, db: AsyncMarketDB) -> None:
        if not isinstance(db, AsyncMarketDB):
            raise ValueError(f"AsyncDataExporter takes an AsyncMarketDB, not {type(db).__name__}")
        self.db = db


def _on_db(op):
    return _ops.awaitable(op, owner=lambda exporter: exporter.db)


_ops.install(AsyncDataExporter, _ops.EXPORTS, _on_db)
