#!/usr/bin/env bash
# Builds the Rust and Go test executables into .carry/ (git-ignored), for machines that have
# neither toolchain: scripts/gpu_check.sh runs them there against that machine's libllmk.so.
# Needs a built library in build/ (scripts/build.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export LLMK_LIB_DIR=$root/build PKG_CONFIG_PATH=$root/build${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
rm -rf .carry/rust .carry/go
mkdir -p .carry/rust .carry/go
cargo test --manifest-path bindings/rust/Cargo.toml --no-run --message-format=json 2>/dev/null |
  python3 -c '
import json, shutil, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable") and message["profile"]["test"]:
        shutil.copy(message["executable"], ".carry/rust/")
        print("rust:", message["executable"])
'
(cd bindings/go && GOFLAGS=-mod=mod GOPROXY=off go test -c -o "$root/.carry/go/llmk.test" .)
# Without debug info the binaries are a fifth of the size: the device tool carries 64 MiB at most.
strip --strip-debug .carry/rust/* .carry/go/llmk.test
echo "go: .carry/go/llmk.test"
