#!/usr/bin/env bash
# The Python package (crates/python) and the Python original it is compared with, in one
# virtualenv, target/pymarketdb: cryptoservice 1.9.0 (the reference of the package's tests,
# its benchmark, `cargo xtask compat` and `cargo xtask bench --python`), pytest, pyarrow and
# maturin. Commands:
#   scripts/python.sh env           prepare the virtualenv (without the package); print its python
#   scripts/python.sh wheel [--out DIR]
#                                   build the wheel into target/wheels (maturin, release profile,
#                                   the workspace's target folder, so the CLI's release build
#                                   and the extension share their compiled dependencies): one
#                                   abi3 wheel for CPython 3.10 and later; --out copies it to DIR
#   scripts/python.sh install       build and install the wheel (when the sources changed);
#                                   print the virtualenv's python
#   scripts/python.sh test          build the wheel, install it into a new virtualenv
#                                   (target/pywheel) without cargo on PATH, print its sizes, install
#                                   time and manylinux tag, run the pytest suite against it
#   scripts/python.sh bench [ARGS]  build and install the wheel, run benches/python/bench.py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pymarketdb"
wheels="$root/target/wheels"
mkdir -p "$root/target"
exec 9>"$root/target/pymarketdb.lock"
flock 9
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("cryptoservice") == "1.9.0"; import pytest, pyarrow, maturin, polars, duckdb' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cryptoservice==1.9.0 pytest pyarrow polars duckdb 'maturin>=1.9,<2' >&2
fi
if [ "${1:-test}" = env ]; then
  echo "$venv/bin/python"
  exit 0
fi

# The digest of what the wheel is built from: the sources (not the tests), cargo's
# configuration and the toolchain's version.
sources_digest() {
  (cd "$root" && {
    find Cargo.toml Cargo.lock .cargo crates -type f \
      -not -name '*.so' -not -name '*.pyc' -not -path '*/__pycache__/*' -not -path '*/.pytest_cache/*' \
      -not -path '*/tests/*' -print0 |
      sort -z | xargs -0 sha256sum
    rustc --version
    echo "${RUSTFLAGS:-}"
  } | sha256sum | cut -d' ' -f1)
}

# Builds the wheel into target/wheels unless the one there was built from the same sources,
# so the steps of one CI run (tests, docs, benchmark) build it once.
ensure_wheel() {
  local digest
  digest="$(sources_digest)"
  if [ "$(cat "$wheels/sources" 2>/dev/null)" = "$digest" ] && ls "$wheels"/marketdb-*.whl >/dev/null 2>&1; then
    return 0
  fi
  build_wheel
  echo "$digest" >"$wheels/sources"
}

build_wheel() {
  rm -rf "$wheels"
  (cd "$root" && "$venv/bin/maturin" build --release \
    --manifest-path crates/python/Cargo.toml --interpreter "$venv/bin/python" --out "$wheels" >&2)
}

# Installs the wheel into target/pymarketdb (for the benchmark, the docs and compat).
install_package() {
  ensure_wheel
  if [ "$(cat "$venv/marketdb-sources" 2>/dev/null)" = "$(cat "$wheels/sources")" ] &&
    (cd / && "$venv/bin/python" -c 'import marketdb') >/dev/null 2>&1; then
    return 0
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/marketdb-*.whl
  cp "$wheels/sources" "$venv/marketdb-sources"
}

# The wheel as a user installs it: a new virtualenv, no cargo on PATH, `pip install` of the
# wheel alone (its dependencies from PyPI); then the pytest suite against that install.
test_installed_wheel() {
  ensure_wheel
  local wheel fresh no_cargo started took ext
  wheel="$(ls "$wheels"/marketdb-*.whl)"
  fresh="$root/target/pywheel"
  no_cargo="$(echo "$PATH" | tr ':' '\n' | while read -r d; do [ -x "$d/cargo" ] || echo "$d"; done | paste -sd:)"
  rm -rf "$fresh"
  python3 -m venv "$fresh"
  if env PATH="$no_cargo" sh -c 'command -v cargo' >/dev/null; then
    echo "cargo is still on PATH: the wheel test must run without it" >&2
    exit 1
  fi
  started="${EPOCHREALTIME/./}"
  env PATH="$no_cargo" "$fresh/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
  took=$((${EPOCHREALTIME/./} - started))
  ext="$(cd / && "$fresh/bin/python" -c 'import marketdb._native as n; print(n.__file__)')"
  printf 'wheel %s: %d bytes; installed with its dependencies in %d.%d s; extension %d bytes (%s)\n' \
    "$(basename "$wheel")" "$(stat -c %s "$wheel")" "$((took / 1000000))" "$((took % 1000000 / 100000))" \
    "$(stat -c %s "$ext")" "${ext#"$fresh"/}"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check auditwheel >&2
  "$venv/bin/auditwheel" show "$wheel" | tr -s ' \n' ' ' | cut -c1-400
  echo
  env PATH="$no_cargo" "$fresh/bin/python" -m pip install --quiet --disable-pip-version-check \
    cryptoservice==1.9.0 pytest polars >&2
  env PATH="$no_cargo" "$fresh/bin/python" -m pytest -q -p no:cacheprovider crates/python/tests
}

cd "$root"
case "${1:-test}" in
  wheel)
    ensure_wheel
    if [ "${2:-}" = "--out" ] && [ -n "${3:-}" ]; then
      mkdir -p "$3" && cp "$wheels"/marketdb-*.whl "$3"/
      ls "$3"/marketdb-*.whl
    else
      ls "$wheels"/marketdb-*.whl
    fi
    ;;
  install) install_package; echo "$venv/bin/python" ;;
  test) test_installed_wheel ;;
  bench) shift; install_package; "$venv/bin/python" benches/python/bench.py run "$@" ;;
  *) echo "usage: scripts/python.sh env | wheel [--out DIR] | install | test | bench [--symbols N] [--days D] [--out DIR]" >&2; exit 2 ;;
esac
