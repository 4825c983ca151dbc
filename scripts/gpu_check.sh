#!/usr/bin/env bash
# Everything that needs the GPU, in one call: build for sm_90a, run the GPU tests (and the CPU
# ones), compute-sanitizer over the GPU vectors, the three bindings' vectors on the CUDA context,
# and the benchmarks. Writes summary.md (with every benchmark table), bench.tar.gz (the tables and
# their JSON) and logs.tar.gz (every step's log) under $OUT (default: ./gpu-out).
#
# The Rust and Go test binaries are built elsewhere (the GPU machine has neither toolchain) by
# scripts/build_binding_tests.sh into .carry/, which this script runs if present.
#
# Usage: OUT=/some/dir scripts/gpu_check.sh [build|tests|bench]   (default: all. A second call on a
# warm machine reuses the build. `tests` alone took 570 s on a built tree (H200, 2026-11-22), so on
# a fresh machine run `build` first: build and tests together no longer fit one 10-minute call.)
# BENCH="matmul rope" runs only those bench/bench_<op>.py (default: every one, bench_matmul.py
# included).
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/gpu-out}
logs=$out/logs
build=$root/build-gpu
tests=1
bench=1
case "${1:-}" in
  build) tests=0 bench=0 ;;
  tests) bench=0 ;;
  bench) tests=0 ;;
  "") ;;
  *) echo "usage: $0 [build|tests|bench]" >&2; exit 2 ;;
esac
mkdir -p "$logs"
cd "$root"

failures=()
step() {  # step NAME COMMAND...: runs COMMAND, logs to $logs/NAME.log, records a failure
  local name=$1
  shift
  echo "== $name"
  local start=$SECONDS
  if "$@" >"$logs/$name.log" 2>&1; then
    echo "   ok ($((SECONDS - start)) s)"
  else
    echo "   FAILED ($((SECONDS - start)) s); last lines:"
    tail -n 25 "$logs/$name.log" | sed 's/^/   | /'
    failures+=("$name")
  fi
}

nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv \
  >"$logs/device.txt" 2>&1
cat "$logs/device.txt"

step build bash -c "cmake -S . -B '$build' -G Ninja -DCMAKE_CUDA_ARCHITECTURES=90a-real \
  && cmake --build '$build' -j 16"
export LD_LIBRARY_PATH=$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export LLMK_LIBRARY=$build/libllmk.so
export LLMK_VECTORS_DIR=$root/tests/vectors

if [ $tests = 1 ]; then
  # -V: every test's output, so the log shows each gtest suite's time.
  step ctest ctest --test-dir "$build" -V
  # The sanitizers run gtest with a filter; a filter that selects nothing must not pass quietly.
  sanitize() {  # sanitize TOOL FILTER
    local output status
    output=$(compute-sanitizer --tool "$1" --error-exitcode 1 "$build/tests/llmk_gpu_tests" \
      --gtest_filter="$2" 2>&1)
    status=$?
    echo "$output"
    [ $status -eq 0 ] && grep -qE "Running [1-9][0-9]* tests?" <<<"$output"
  }
  step memcheck sanitize memcheck 'Manifest/GpuVectors.*:Graphs.*:Determinism.*'
  step racecheck sanitize racecheck 'Manifest/GpuVectors.*bf16*:Determinism.*'
  step python env PYTHONPATH="$root/bindings/python" python3 -m pytest -rs -q bindings/python/tests
  if [ -d .carry/rust ]; then
    step rust bash -c 'for t in .carry/rust/*; do echo "## $t"; "$t" --nocapture || exit 1; done'
  else
    echo "== rust: no test binaries in .carry/rust"; failures+=("rust(missing)")
  fi
  if [ -x .carry/go/llmk.test ]; then
    step go .carry/go/llmk.test -test.v
  else
    echo "== go: no test binary in .carry/go"; failures+=("go(missing)")
  fi
fi

if [ $bench = 1 ]; then
  # Every bench/bench_<op>.py: its table goes into the summary, its JSON into bench.tar.gz.
  mkdir -p "$out/bench"
  for script in bench/bench_*.py; do
    name=$(basename "$script" .py)
    if [ -n "${BENCH:-}" ] && ! grep -qw "${name#bench_}" <<<"$BENCH"; then continue; fi
    step "$name" env PYTHONPATH="$root/bindings/python" PYTHONUNBUFFERED=1 \
      python3 "$script" --json "$out/bench/$name.json" --markdown "$out/bench/$name.md"
  done
  # The host-timed latencies last, not straight after the 16-job build (a host still busy from
  # it ran every call ~12% slower, the empty launch included), and in three processes, as they
  # move by ~0.1 us from one process to the next (bench/NOTES.md, v9).
  for run in 1 2 3; do step "latency-$run" "$build/bench/bench_latency"; done
fi

{
  echo "# GPU check, $(date -u +%Y-%m-%d)"
  echo
  echo '```'
  cat "$logs/device.txt"
  echo '```'
  echo
  if [ $tests = 1 ]; then
    echo "## Tests"
    echo
    grep -hE "tests passed|tests failed" "$logs/ctest.log" || true
    grep -hE "ms total\)$" "$logs/ctest.log" | sort -t'(' -k2 -n -r | head -n 8 || true
    grep -hE "ERROR SUMMARY|RACECHECK SUMMARY|Running [0-9]+ tests" "$logs/memcheck.log" "$logs/racecheck.log" || true
    tail -n 1 "$logs/python.log" 2>/dev/null || true
    grep -hE "^test result" "$logs/rust.log" 2>/dev/null | sort | uniq -c || true
    grep -hE "^(PASS|FAIL|ok)" "$logs/go.log" 2>/dev/null || true
    grep -hcE "^--- SKIP" "$logs/go.log" 2>/dev/null | sed 's/^/go skipped tests: /' || true
  fi
  if [ $bench = 1 ]; then
    echo
    echo "## Single row, host-timed (us)"
    echo
    echo '```'
    for run in 1 2 3; do
      echo "# process $run"
      cat "$logs/latency-$run.log"
    done
    echo '```'
    echo
    echo "## Bandwidth"
    echo
    cat "$out"/bench/*.md 2>/dev/null
  fi
  echo
  if [ ${#failures[@]} -eq 0 ]; then echo "All steps passed."; else echo "FAILED: ${failures[*]}"; fi
} >"$out/summary.md"
cat "$out/summary.md"
tar -czf "$out/logs.tar.gz" -C "$out" logs && rm -rf "$logs"
if [ -d "$out/bench" ]; then tar -czf "$out/bench.tar.gz" -C "$out" bench && rm -rf "$out/bench"; fi
[ ${#failures[@]} -eq 0 ]
