#!/usr/bin/env bash
# Soak: 64 connections of redirects against a running daemon (the demo's,
# with probe rounds every 5 s) for a fixed time, sampling the daemon's RSS
# and open file descriptors. Not run in CI.
#   bench/soak.sh [seconds]        default 600
# Prints the samples and the growth from the first minute to the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release --quiet
out=$(mktemp -d)
target/release/mirrorgate demo --listen 127.0.0.1:0 >"$out/demo.out" 2>"$out/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$out"' EXIT
for _ in $(seq 100); do grep -q '/r/demo-news' "$out/demo.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*/r/demo-news[^ ]*' "$out/demo.out" | head -1)
# Before the first round there is nothing to redirect to (503): measure steady state.
for _ in $(seq 100); do grep -q 'probe round finished' "$out/demo.err" && break; sleep 0.1; done
echo "soaking $url for ${seconds}s (pid $demo)"
sample() {
  local rss fds
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$demo/status")
  fds=$(ls "/proc/$demo/fd" | wc -l)
  echo "$1 $rss $fds"
}
wrk -t2 -c64 -d"${seconds}s" "$url" >"$out/wrk.txt" &
load=$!
echo "second rss_kib fds" | tee "$out/samples"
for ((t = 0; t <= seconds; t += 10)); do
  sample "$t" | tee -a "$out/samples"
  sleep 10
done
wait $load || true
cat "$out/wrk.txt"
rounds=$(grep -c 'probe round finished' "$out/demo.err" || true)
echo "probe rounds finished during the soak: $rounds (one every 5 s expected: ~$((seconds / 5)))"
# Growth from the sample a minute in (or the first, for short runs) to the
# last one taken under load; then the fds once the load has gone.
awk 'NR > 1 { n++; t[n] = $1; r[n] = $2; f[n] = $3 }
     END { b = (n > 8) ? 7 : 1
           printf "under load, from %ss to %ss: rss %+d KiB, fds %+d\n", t[b], t[n-1], r[n-1] - r[b], f[n-1] - f[b]
           printf "after the load: %d fds (%d under load)\n", f[n], f[n-1] }' "$out/samples"
