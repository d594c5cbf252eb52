"""marketdb: crypto market data in SQLite behind cryptoservice 1.9's API, on a Rust engine.

``MarketDB`` (blocking) and ``AsyncMarketDB`` (asyncio) keep 1.9's method names and
arguments and return pandas frames shaped like 1.9's; ``read_arrow`` returns a
``pyarrow.Table`` without copying. Bad input raises ``ValueError`` (or ``TypeError`` for an
unsupported container), a refused file or lock raises ``StorageError`` (an ``OSError``).
See docs/python.md for the call-by-call migration table.
"""

from ._async import AsyncDataExporter, AsyncMarketDB
from ._native import StorageError, __version__
from ._sync import MarketDB
from ._signatures import apply as _apply_signatures

_apply_signatures(MarketDB, AsyncMarketDB, AsyncDataExporter)

__all__ = ["AsyncDataExporter", "AsyncMarketDB", "MarketDB", "StorageError", "__version__"]
