#!/usr/bin/env bash
# Fuzz the request -> redirect decision for a fixed time (not run in CI).
#   fuzz/run.sh [seconds]      default 300
# Installs cargo-fuzz if needed. The toolchain here is stable; cargo-fuzz
# needs nightly flags, which RUSTC_BOOTSTRAP=1 unlocks on stable.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-300}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# New findings go to a scratch corpus; the committed one stays small.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
RUSTC_BOOTSTRAP=1 cargo fuzz run redirect "$scratch" corpus/redirect -- \
  -max_total_time="$seconds" -max_len=70000
echo "fuzzed the redirect decision for ${seconds}s: no failure"
