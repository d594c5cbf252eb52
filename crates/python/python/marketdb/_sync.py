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
    into the process; ``None`` keeps marketdb's default (256 MiB). Every call releases the
    GIL while the database works, so threads may share one instance. ``use_pool`` and
    ``max_connections`` of 1.9 (also positional, as in 1.9) are accepted and ignored (the
    pool is always on and sized by marketdb).

    ``compat="1.9"`` reads a date-only end as 1.9 does (its midnight, inclusive) instead of
    the whole end day, so that a migration can compare frames with 1.9's.

    A handle pickles as its path and options and opens the file again where it is
    unpickled (a process pool's worker, joblib). A child made by ``fork`` may keep using
    its parent's handle: the child opens the file again on its first call.
    """

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        use_pool: bool | None = None,
        max_connections: int | None = None,
        *,
        pool: str = "auto",
        read_only: bool = False,
        mmap_size: int | None = 0,
        compat: str | None = None,
    ) -> None:
        del use_pool, max_connections
        path, pool, mmap_size = c.open_args(db_path, pool, mmap_size)
        self._compat = c.compat_mode(compat)
        self._options = {"pool": pool, "read_only": bool(read_only), "mmap_size": mmap_size, "compat": self._compat}
        self._native = Native.open(path, pool, bool(read_only), mmap_size, False)
        self.db_path = self._native.path
        c.track(self)

    def __reduce__(self) -> tuple:
        if self._native.closed:
            raise ValueError(f"the database {self.db_path} is closed: a closed handle is not pickled")
        # An absolute path: the receiving process may run in another folder.
        return (c.reopen, (type(self), os.path.abspath(self.db_path), self._options))

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
