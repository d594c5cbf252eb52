"""MarketDB: the blocking class, with cryptoservice 1.9's method names and arguments. Its
database methods are the operations of ``_ops`` (written once for both classes)."""

from __future__ import annotations

import os

from . import _common as c
from . import _ops
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
        c.track(self)

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


_ops.install(MarketDB, _ops.DATABASE + _ops.EXPORTS, _ops.blocking)
