"""Shared data for the marketdb Python tests: a small deterministic market of 1m bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

START_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MINUTE = 60_000
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def make_bars(symbols=SYMBOLS, minutes=2 * 1440, seed=7, start_ms=START_MS, skip=(), base=100.0):
    """Bars with two-decimal prices (exact as decimal strings) and integer volumes, so both
    libraries parse the same text to the same float."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, symbol in enumerate(symbols):
        ts = start_ms + np.arange(minutes, dtype=np.int64) * MINUTE
        walk = base * (k + 1) + np.cumsum(rng.integers(-50, 51, minutes)) / 100.0
        open_ = np.round(walk, 2)
        close = np.round(open_ + rng.integers(-20, 21, minutes) / 100.0, 2)
        high = np.round(np.maximum(open_, close) + rng.integers(0, 10, minutes) / 100.0, 2)
        low = np.round(np.minimum(open_, close) - rng.integers(0, 10, minutes) / 100.0, 2)
        volume = rng.integers(1, 1000, minutes).astype(np.float64)
        buy = np.floor(volume / 2)
        frame = pd.DataFrame(
            {
                "symbol": symbol,
                "timestamp": ts,
                "open_price": open_,
                "high_price": high,
                "low_price": low,
                "close_price": close,
                "volume": volume,
                "close_time": ts + MINUTE - 1,
                "quote_volume": np.round(volume * close, 2),
                "trades_count": rng.integers(1, 500, minutes).astype(np.int64),
                "taker_buy_volume": buy,
                "taker_buy_quote_volume": np.round(buy * close, 2),
            }
        )
        if skip:
            frame = frame[~frame["timestamp"].isin(list(skip))]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def raw_row(r) -> list:
    """One Binance kline row (strings, as the REST API sends them)."""
    return [
        int(r.timestamp),
        f"{r.open_price:.2f}",
        f"{r.high_price:.2f}",
        f"{r.low_price:.2f}",
        f"{r.close_price:.2f}",
        f"{r.volume:.0f}",
        int(r.close_time),
        f"{r.quote_volume:.2f}",
        int(r.trades_count),
        f"{r.taker_buy_volume:.0f}",
        f"{r.taker_buy_quote_volume:.2f}",
        "0",
    ]


@pytest.fixture(scope="session")
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "market.db"
