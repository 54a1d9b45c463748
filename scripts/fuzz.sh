#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a set time each (default 300 s):
#   bash scripts/fuzz.sh [seconds-per-target] [target...]
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Corpora live in
# fuzz/corpus/<target>, crashes in fuzz/artifacts/<target>; the exit status is non-zero
# if any target found a crash.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-300}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O "${targets[@]/#/}" >/dev/null 2>&1 || cargo +nightly fuzz build -O
status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    echo "== $t: ${secs}s"
    if ! cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        2>"/tmp/fuzz-$t.log"; then
        echo "!! $t: crash, see fuzz/artifacts/$t and /tmp/fuzz-$t.log"
        status=1
    fi
    grep -E "stat::number_of_executed_units|stat::new_units_added" "/tmp/fuzz-$t.log" || true
done
exit $status
