#!/usr/bin/env bash
# The benchmark suite: mirrorgate side by side with nginx and lychee on this
# machine, in one run, reported as ratios (see bench/README.md).
#   bench/run.sh                 everything (about 15 minutes on 2 cores)
#   bench/run.sh redirect cold   only some targets
#   bench/run.sh cluster         PostgreSQL and several instances
#                                (MIRRORGATE_BENCH_POSTGRES, default the local test database)
# Not run by CI; no test asserts a timing. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=bench/.cache
mkdir -p "$cache"

install_apt() {
  local missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}
install_apt nginx:nginx wrk:wrk taskset:util-linux
install_apt /usr/bin/time:time

# lychee is built once into the cache and reused (only the targets that
# compare with it need it).
needs_lychee=yes
if [ $# -gt 0 ] && ! printf '%s\n' "$@" | grep -qx rounds; then needs_lychee=no; fi
if [ "$needs_lychee" = yes ] && [ ! -x "$cache/lychee/bin/lychee" ]; then
  echo "installing lychee into $cache/lychee (once)" >&2
  cargo install lychee --locked --quiet --root "$cache/lychee"
fi

# Every table is only as good as the CPU it ran on: SHA-256 is several
# times faster with SHA extensions, and machines of this kind come either way.
echo "CPU: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo); SHA extensions: $(grep -qw sha_ni /proc/cpuinfo && echo 'yes (sha_ni)' || echo no)" >&2

cargo build --release --quiet
exec python3 bench/run.py --lychee "$cache/lychee/bin/lychee" --mirrorgate target/release/mirrorgate "$@"
