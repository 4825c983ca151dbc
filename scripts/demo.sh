#!/usr/bin/env bash
# Fresh machine to demo: installs what is missing, builds, and runs the norms on the GPU if there
# is one (else on the CPU backend), printing result checks and timings.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
"$root/build/examples/llmk_demo"
