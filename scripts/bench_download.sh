#!/usr/bin/env bash
# Download against ingest on the same files: a demo database of SYMBOLS x DAYS of 1m bars
# (default 20 x 30) written as a Binance Vision tree (scripts/vision_tree.py), served on
# loopback by Python's http.server; then, REPS times each, `marketdb download` of every
# file from that server into a new database and `marketdb ingest` of the same zips from
# disk into another. Prints the wall-clock seconds of each run. Uses the release binary
# (built first); needs only python3.
#   scripts/bench_download.sh [SYMBOLS] [DAYS] [REPS]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
symbols="${1:-20}" days="${2:-30}" reps="${3:-3}"
cargo build --release -p marketdb --quiet --manifest-path "$root/Cargo.toml"
bin="$root/target/release/marketdb"
work="$(mktemp -d "$root/target/bench-download.XXXXXX")"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
"$bin" demo --db "$work/src.db" --symbols "$symbols" --days "$days" --out "$work/demo" -q >/dev/null
python3 "$root/scripts/vision_tree.py" "$work/src.db" "$work/tree"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/tree" >/dev/null 2>&1 &
server=$!
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.1
done
list=$(python3 -c "print(','.join(f'SYN{i:03d}USDT' for i in range($symbols)))")
last=$(python3 -c "import datetime; print(datetime.date(2024, 1, 1) + datetime.timedelta(days=$days - 1))")
files=$(find "$work/tree" -name '*.zip' | wc -l)
echo "$files files, $symbols symbols x $days days of 1m"
timed() {
  local start end
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  python3 -c "print(f'{$end - $start:.2f}')"
}
for rep in $(seq "$reps"); do
  rm -f "$work"/dl.db* "$work"/ing.db*
  d=$(timed "$bin" download --market spot --symbols "$list" --freq 1m --start 2024-01-01 \
    --end "$last" --source vision --base-url "http://127.0.0.1:$port" --db "$work/dl.db" -q)
  i=$(timed "$bin" ingest "$work/tree" --db "$work/ing.db" -q)
  echo "run $rep: download $d s, ingest $i s, ratio $(python3 -c "print(f'{$d / $i:.2f}')")"
done
# Both runs must have stored the same bars, or the times compare nothing.
python3 - "$work/dl.db" "$work/ing.db" <<'PY'
import sqlite3, sys
counts = [sqlite3.connect(p).execute("SELECT count(*) FROM market_data").fetchone()[0] for p in sys.argv[1:]]
print(f"bars stored: download {counts[0]}, ingest {counts[1]}")
sys.exit(0 if counts[0] == counts[1] > 0 else "the two databases differ")
PY
