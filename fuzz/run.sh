#!/usr/bin/env bash
# Runs every SBOM fuzz target for a bounded time, seeded with the real
# samples in tests/fixtures/sbom-samples.
#   fuzz/run.sh [seconds per target, default 10] [target...]
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
shift || true
export AYA_BUILD_SKIP=1 # the readers need no eBPF build
samples=../tests/fixtures/sbom-samples
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    seeds=()
    if [ -d "$samples" ]; then seeds=("$samples"); fi
    echo "== $t (${secs}s)"
    cargo +nightly fuzz run "$t" "corpus/$t" "${seeds[@]}" -- -max_total_time="$secs" -max_len=32768 -rss_limit_mb=1024
done
