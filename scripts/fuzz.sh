#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ (cargo-fuzz, libFuzzer) for a bounded time
# each, one after the other: scripts/fuzz.sh [SECONDS] [TARGET...]
# (default 60 seconds, every target). Not part of CI: run it by hand and
# record the runs in fuzz/README.md.
#
# Installs cargo-fuzz when missing. On a stable toolchain, RUSTC_BOOTSTRAP=1
# lets rustc take the nightly flags cargo-fuzz passes (-Zsanitizer=address).
# Each target's corpus (fuzz/corpus/TARGET, kept between runs, not
# committed) is seeded by the target itself (PETREL_FUZZ_SEEDS); crashes go
# to fuzz/artifacts/TARGET and each run's output to fuzz/logs/TARGET.log.
# Set CARGO_TARGET_DIR to build elsewhere than fuzz/target.
set -uo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(desired_decode delta_apply tar_unpack)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked || exit 1
export RUSTC_BOOTSTRAP=1
cargo fuzz build || exit 1
mkdir -p fuzz/logs
failed=()
for target in "${targets[@]}"; do
  corpus="$PWD/fuzz/corpus/$target"
  mkdir -p "$corpus"
  echo "== $target: $seconds s"
  # -timeout: an input taking over 10 s is a finding (a hang), as is one
  # needing over 2 GiB (-rss_limit_mb).
  PETREL_FUZZ_SEEDS="$corpus" cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"fuzz/logs/$target.log" 2>&1 || failed+=("$target")
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|^==[0-9]+==ERROR|panicked at' \
    "fuzz/logs/$target.log" || true
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]} (see fuzz/logs and fuzz/artifacts)" >&2
  exit 1
fi
