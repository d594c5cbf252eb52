"""Writes the 1m bars of a marketdb database as a Binance Vision tree: one daily zip per
symbol and day, with its .CHECKSUM, under ROOT/data/spot/daily/klines/SYMBOL/1m/, the
layout `marketdb download` asks a Vision server for. Standard library only.

usage: python3 scripts/vision_tree.py DATABASE ROOT
"""

import datetime
import hashlib
import io
import os
import sqlite3
import sys
import zipfile


def main(db: str, root: str) -> None:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    current, buf = None, None

    def flush() -> None:
        if current is None:
            return
        symbol, day = current
        name = f"{symbol}-1m-{day}"
        folder = os.path.join(root, "data/spot/daily/klines", symbol, "1m")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name + ".zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name + ".csv", buf.getvalue())
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        with open(path + ".CHECKSUM", "w") as f:
            f.write(f"{digest}  {name}.zip\n")

    rows = conn.execute(
        "SELECT symbol, timestamp, open_price, high_price, low_price, close_price, volume, "
        "quote_volume, trades_count, taker_buy_volume, taker_buy_quote_volume "
        "FROM market_data WHERE freq = '1m' ORDER BY symbol, timestamp"
    )
    for s, ts, o, hi, lo, cl, v, qv, n, tbv, tbq in rows:
        day = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc).strftime("%Y-%m-%d")
        if (s, day) != current:
            flush()
            current, buf = (s, day), io.StringIO()
        buf.write(f"{ts},{o!r},{hi!r},{lo!r},{cl!r},{v!r},{ts + 59999},{qv!r},{n},{tbv!r},{tbq!r},0\n")
    flush()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
