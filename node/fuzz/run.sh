#!/usr/bin/env bash
# Builds and runs every fuzz target of every crate for DURATION each, then
# prints one row per target: executions, executions per second, crashes,
# hangs (inputs over the per-input timeout) and corpus size. Exits non-zero
# if any target crashed or hung, or a build failed.
#
#   node/fuzz/run.sh DURATION [TARGET...]     e.g. 10m, 30s, 1h; 0 builds only
#
# Environment:
#   FUZZ_CRATES     crates to fuzz (default: mesh consensus sensors learning node)
#   FUZZ_JOBS       targets run at once (default 1; each uses one core)
#   FUZZ_SANITIZER  none (default) or address
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (10)
#   FUZZ_NO_BUILD   1: run the binaries as last built (while another build
#                   holds the shared target dir)
#
# Builds go to $AMOSKYS_CACHE/fuzz-target (one target dir shared by every
# crate). New inputs go to $AMOSKYS_CACHE/fuzz-corpus/<crate>/<target>, never
# into the seed corpora of the repository; crashing inputs to
# $AMOSKYS_CACHE/fuzz-artifacts/<run>/<crate>/<target>/. docs/TESTING.md
# says how a crash becomes a regression test.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=/dev/null
source "$root/.ci/env"

usage() { echo "usage: $0 DURATION [TARGET...]   (DURATION: 30s, 10m, 1h; 0 builds only)" >&2; exit 2; }
[ $# -ge 1 ] || usage
case "$1" in
  *h) secs=$(( ${1%h} * 3600 )) ;;
  *m) secs=$(( ${1%m} * 60 )) ;;
  *s) secs=${1%s} ;;
  *[!0-9]*|'') usage ;;
  *) secs=$1 ;;
esac
shift
only=("$@")

crates=(${FUZZ_CRATES:-mesh consensus sensors learning node})
jobs=${FUZZ_JOBS:-1}
sanitizer=${FUZZ_SANITIZER:-none}
timeout=${FUZZ_TIMEOUT:-10}
target_dir="$AMOSKYS_CACHE/fuzz-target"
run_id="$(date -u +%Y%m%dT%H%M%SZ)"
artifacts="$AMOSKYS_CACHE/fuzz-artifacts/$run_id"
results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT

if ! command -v cargo-fuzz >/dev/null; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz --locked" >&2
  exit 2
fi
# The sanitizer flags are nightly options; RUSTC_BOOTSTRAP lets the stable
# toolchain take them. Set it for every build into this target dir: cargo
# caches a failed target probe in <target-dir>/.rustc_info.json, and one
# build without it poisons the dir for ASan builds.
export RUSTC_BOOTSTRAP=1

selected() {
  [ ${#only[@]} -eq 0 ] && return 0
  local t
  for t in "${only[@]}"; do [ "$t" = "$1" ] && return 0; done
  return 1
}

targets_of() {  # the [[bin]] names of a fuzz package
  awk '/^\[\[bin\]\]/{b=1} b && /^name = /{gsub(/"/,"",$3); print $3; b=0}' "$root/$1/fuzz/Cargo.toml"
}

status=0
list="$results/list"
: > "$list"
for crate in "${crates[@]}"; do
  wanted=()
  for t in $(targets_of "$crate"); do selected "$t" && wanted+=("$t"); done
  [ ${#wanted[@]} -gt 0 ] || continue
  build_log="$results/build-$crate.log"
  start=$(date +%s)
  [ "${FUZZ_NO_BUILD:-0}" = 1 ] || echo "building $crate: ${wanted[*]}" >&2
  # Every target of the crate in one build (they share its dependencies).
  if [ "${FUZZ_NO_BUILD:-0}" = 1 ]; then
    for t in "${wanted[@]}"; do echo "$crate $t" >> "$list"; done
    continue
  fi
  if ! (cd "$root/$crate" && cargo fuzz build -s "$sanitizer" --target-dir "$target_dir") >"$build_log" 2>&1; then
    tail -30 "$build_log" >&2
    echo "build of $crate's fuzz targets failed" >&2
    status=1
    continue
  fi
  echo "built $crate in $(( $(date +%s) - start )) s" >&2
  for t in "${wanted[@]}"; do echo "$crate $t" >> "$list"; done
done

[ "$secs" -gt 0 ] || exit "$status"

run_one() {
  local crate=$1 target=$2
  local bin="$target_dir/x86_64-unknown-linux-gnu/release/$target"
  local work="$AMOSKYS_CACHE/fuzz-corpus/$crate/$target"
  local seeds="$root/$crate/fuzz/corpus/$target"
  local art="$artifacts/$crate/$target"
  local log="$results/$crate-$target.log"
  mkdir -p "$work" "$art" "$seeds"
  local rc=0
  # New inputs go to the first corpus dir (the cache), seeds are read only.
  "$bin" -max_total_time="$secs" -timeout="$timeout" -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$art/" "$work" "$seeds" >"$log" 2>&1 || rc=$?
  local execs rate corpus crashes hangs
  execs=$(awk '/^stat::number_of_executed_units:/{print $2}' "$log" | tail -1)
  rate=$(awk '/^stat::average_exec_per_sec:/{print $2}' "$log" | tail -1)
  corpus=$(grep -o 'corp: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  crashes=$(find "$art" -maxdepth 1 \( -name 'crash-*' -o -name 'oom-*' -o -name 'leak-*' \) | wc -l)
  hangs=$(find "$art" -maxdepth 1 -name 'timeout-*' | wc -l)
  if [ -z "$execs" ]; then  # killed before the final stats: the last status line
    execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  fi
  if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ] && [ "$hangs" -eq 0 ]; then
    crashes="exit$rc"
  fi
  echo "$crate $target ${execs:-0} ${rate:-0} $crashes $hangs ${corpus:-0}" > "$results/$crate-$target.row"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
    echo "$crate/$target: see $art and $log" >&2
    cp "$log" "$art/fuzz.log"
  fi
}

running=0
while read -r crate target; do
  echo "fuzzing $crate/$target for ${secs}s" >&2
  run_one "$crate" "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || true
    running=$((running - 1))
  fi
done < "$list"
wait || true

printf '%-10s %-20s %12s %9s %8s %6s %7s\n' crate target executions exec/s crashes hangs corpus
while read -r crate target; do
  row="$results/$crate-$target.row"
  if [ ! -f "$row" ]; then
    printf '%-10s %-20s %12s\n' "$crate" "$target" "no result"
    status=1
    continue
  fi
  read -r c t execs rate crashes hangs corpus < "$row"
  printf '%-10s %-20s %12s %9s %8s %6s %7s\n' "$c" "$t" "$execs" "$rate" "$crashes" "$hangs" "$corpus"
  if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then status=1; fi
done < "$list"
echo "run $run_id: ${secs}s per target, sanitizer $sanitizer, $(nproc) cores" >&2
exit "$status"
