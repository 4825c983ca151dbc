#!/usr/bin/env bash
# Fresh machine to every test: installs what is missing, builds, then runs the C++ tests (ctest;
# GPU tests report "skipped" without a GPU), the Python, Rust and Go bindings' tests, and checks
# that the committed Rust FFI bindings match what bindgen generates from include/llmk.h.
# Runs every suite and fails if any failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
"$root/scripts/setup.sh" || exit 1
"$root/scripts/build.sh" || exit 1

export LD_LIBRARY_PATH=$root/build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PKG_CONFIG_PATH=$root/build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
export LLMK_LIBRARY=$root/build/libllmk.so LLMK_LIB_DIR=$root/build
export GOFLAGS=-mod=mod GOPROXY=off

failed=()
suite() {  # suite NAME COMMAND...
  echo "=== $1"
  local name=$1
  shift
  "$@" || failed+=("$name")
}
suite ctest ctest --test-dir build --output-on-failure
suite python python3 -m pytest -rs -q bindings/python/tests
suite python-install bash -c 'rm -rf build/pyinstall && python3 -m pip install -q --no-deps \
  --target build/pyinstall bindings/python && cd build && PYTHONPATH=pyinstall python3 -c "import llmk; print(\"installed llmk\", llmk.version())"'
suite rust-bindgen bash bindings/rust/llmk-sys/generate.sh --check
suite rust cargo test --manifest-path bindings/rust/Cargo.toml
suite go bash -c 'cd bindings/go && go vet ./... && go test ./...'

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all suites passed"
