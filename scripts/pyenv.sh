#!/usr/bin/env bash
# Creates (once) the Python virtualenv the tests use to load exports with real NumPy, pandas,
# pyarrow, duckdb, h5py and pyspark (a local Spark, on the machine's Java), and moto's S3
# server for the object-store tests (pinned: 5.2.6 honours If-None-Match, which the dataset
# lock relies on): target/pyenv. Safe to run concurrently (flock) and repeatedly (no-op when
# ready).
# Prints the interpreter path on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pyenv"
mkdir -p "$root/target"
exec 9>"$root/target/pyenv.lock"
flock 9
if ! "$venv/bin/python" -c 'import numpy, pandas, pyarrow, duckdb, h5py, pyspark, moto.server, importlib.metadata as m; assert m.version("moto") == "5.2.6"' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy pandas pyarrow duckdb h5py pyspark 'moto[server]==5.2.6' >&2
fi
echo "$venv/bin/python"
