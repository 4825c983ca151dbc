#!/usr/bin/env bash
# Regenerates src/bindings.rs from include/llmk.h. The output is committed, so building needs
# neither bindgen nor libclang; CI runs `generate.sh --check` to prove it matches the header.
#
# Usage: generate.sh           rewrite src/bindings.rs
#        generate.sh --check   write nothing; print the diff and exit 1 if src/bindings.rs is stale
#
# Deterministic: one pinned bindgen (Debian's 0.60.1 CLI), a fixed command line, the C header
# parsed as C99, and the result formatted by rustfmt as `cargo fmt` formats the crate (run from
# src/, so that rustfmt finds the same configuration, if any).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
header=$here/../../../include/llmk.h
committed=$here/src/bindings.rs
pinned="bindgen 0.60.1"

found=$(bindgen --version 2>/dev/null || echo "no bindgen")
if [ "$found" != "$pinned" ]; then
  echo "generate.sh: needs $pinned (Debian package bindgen), found: $found" >&2
  exit 1
fi

generate() {  # generate OUTPUT
  # Enums become newtypes with associated constants: a value the library adds later (enums are
  # append-only) is then still a valid Rust value, which a Rust enum would not be.
  bindgen "$header" \
    --allowlist-function 'llmk_.*' \
    --allowlist-type 'llmk_.*' \
    --allowlist-var 'LLMK_.*' \
    --newtype-enum 'llmk_.*' \
    --must-use-type llmk_status \
    --enable-function-attribute-detection \
    --default-macro-constant-type signed \
    --size_t-is-usize \
    --no-rustfmt-bindings \
    -- -x c -std=c99 |
    (cd "$here/src" && rustfmt --edition 2021) >"$1"
}

case "${1:-}" in
  "")
    generate "$committed"
    echo "wrote $committed"
    ;;
  --check)
    fresh=$(mktemp)
    trap 'rm -f "$fresh"' EXIT
    generate "$fresh"
    if ! diff -u "$committed" "$fresh"; then
      echo "generate.sh: src/bindings.rs does not match include/llmk.h; run llmk-sys/generate.sh" >&2
      exit 1
    fi
    echo "src/bindings.rs matches include/llmk.h"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
