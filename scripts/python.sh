#!/usr/bin/env bash
# The Python package (crates/python) and the Python original it is compared with, in one
# virtualenv, target/pymarketdb: cryptoservice 1.9.0 (the reference of the package's tests,
# its benchmark, `cargo xtask compat` and `cargo xtask bench --python`), pytest, pyarrow and
# maturin. Commands:
#   scripts/python.sh env           prepare the virtualenv (without the package); print its python
#   scripts/python.sh wheel         build the wheel into target/wheels (maturin, release profile,
#                                   the workspace's target folder, so the CLI's release build
#                                   and the extension share their compiled dependencies)
#   scripts/python.sh install       build and install the wheel (when the sources changed);
#                                   print the virtualenv's python
#   scripts/python.sh test          build and install the wheel, run the pytest suite
#   scripts/python.sh bench [ARGS]  build and install the wheel, run benches/python/bench.py
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/target/pymarketdb"
wheels="$root/target/wheels"
mkdir -p "$root/target"
exec 9>"$root/target/pymarketdb.lock"
flock 9
if ! "$venv/bin/python" -c 'import importlib.metadata as m; assert m.version("cryptoservice") == "1.9.0"; import pytest, pyarrow, maturin' >/dev/null 2>&1; then
  python3 -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check cryptoservice==1.9.0 pytest pyarrow 'maturin>=1.9,<2' >&2
fi
if [ "${1:-test}" = env ]; then
  echo "$venv/bin/python"
  exit 0
fi

# Builds the wheel and installs it, unless the sources it was built from are unchanged
# (their digest is kept in the virtualenv), so the test step and the benchmark of one CI
# run build it once. The digest covers the sources, cargo's configuration and the
# toolchain's version.
install_package() {
  local digest
  digest="$(cd "$root" && {
    find Cargo.toml Cargo.lock .cargo crates -type f \
      -not -name '*.so' -not -name '*.pyc' -not -path '*/__pycache__/*' -not -path '*/.pytest_cache/*' -print0 |
      sort -z | xargs -0 sha256sum
    rustc --version
    echo "${RUSTFLAGS:-}"
  } | sha256sum | cut -d' ' -f1)"
  if [ "$(cat "$venv/marketdb-sources" 2>/dev/null)" = "$digest" ] &&
    (cd / && "$venv/bin/python" -c 'import marketdb') >/dev/null 2>&1; then
    return 0
  fi
  rm -f "$venv/marketdb-sources"
  build_wheel
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheels"/marketdb-*.whl
  echo "$digest" >"$venv/marketdb-sources"
}

build_wheel() {
  rm -rf "$wheels"
  (cd "$root" && "$venv/bin/maturin" build --release \
    --manifest-path crates/python/Cargo.toml --interpreter "$venv/bin/python" --out "$wheels" >&2)
}

cd "$root"
case "${1:-test}" in
  wheel) build_wheel; ls "$wheels"/marketdb-*.whl ;;
  install) install_package; echo "$venv/bin/python" ;;
  test) install_package; "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/python/tests ;;
  bench) shift; install_package; "$venv/bin/python" benches/python/bench.py run "$@" ;;
  *) echo "usage: scripts/python.sh env | wheel | install | test | bench [--symbols N] [--days D] [--out DIR]" >&2; exit 2 ;;
esac
