#!/usr/bin/env bash
# The Python package (crates/python): builds and installs it with pip, as a user would, into
# the virtualenv target/pymarketdb beside cryptoservice 1.9.0 (the reference its tests and
# benchmark compare against) and pytest, then runs
#   scripts/python.sh test          the pytest suite (crates/python/tests)
#   scripts/python.sh bench [ARGS]  benches/python/bench.py run ARGS (W2 by default)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pymarketdb"
mkdir -p "$root/target"
exec 9>"$root/target/pymarketdb.lock"
flock 9
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("cryptoservice") == "1.9.0"; import pytest, pyarrow' >/dev/null 2>&1; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cryptoservice==1.9.0 pytest pyarrow
fi
# pip builds the wheel with maturin (release profile) and reinstalls it. Skipped when the
# sources it was built from are unchanged (their digest is kept in the virtualenv), so the
# test step and the benchmark of one CI run install it once.
# The digest covers the sources, cargo's configuration and the toolchain's version.
digest="$(cd "$root" && {
  find Cargo.toml Cargo.lock .cargo crates -type f \
    -not -name '*.so' -not -name '*.pyc' -not -path '*/__pycache__/*' -not -path '*/.pytest_cache/*' -print0 |
    sort -z | xargs -0 sha256sum
  rustc --version
  echo "${RUSTFLAGS:-}"
} | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/marketdb-sources" 2>/dev/null)" != "$digest" ] ||
  ! (cd / && "$venv/bin/python" -c 'import marketdb') >/dev/null 2>&1; then
  rm -f "$venv/marketdb-sources"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$root/crates/python"
  echo "$digest" >"$venv/marketdb-sources"
fi
cd "$root"
case "${1:-test}" in
  test) "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/python/tests ;;
  bench) shift; "$venv/bin/python" benches/python/bench.py run "$@" ;;
  *) echo "usage: scripts/python.sh test | bench [--symbols N] [--days D] [--out DIR]" >&2; exit 2 ;;
esac
