#!/usr/bin/env bash
# Creates (once) the Python virtualenv the tests use to load exports with real NumPy, pandas
# pyarrow, duckdb and h5py, and moto's S3 server for the object-store tests: target/pyenv. Safe to run
# concurrently (flock) and repeatedly (no-op when ready).
# Prints the interpreter path on success.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pyenv"
mkdir -p "$root/target"
exec 9>"$root/target/pyenv.lock"
flock 9
if ! "$venv/bin/python" -c 'import numpy, pandas, pyarrow, duckdb, h5py, moto.server' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check numpy pandas pyarrow duckdb h5py 'moto[server]' >&2
fi
echo "$venv/bin/python"
