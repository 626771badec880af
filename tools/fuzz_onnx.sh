#!/usr/bin/env bash
# Builds the ONNX fuzz target (clang, ASan/UBSan, libFuzzer) in build-fuzz/ and runs it
# for SECONDS (default 30), starting from generated seeds plus any small
# models in build/onnx_models. Crashes land in build-fuzz/crashes/ and fail the script.
#   tools/fuzz_onnx.sh [SECONDS]
set -euo pipefail
secs=${1:-30}
root=$(cd "$(dirname "$0")/.." && pwd)
bdir="$root/build-fuzz"
CC=clang cmake -S "$root" -B "$bdir" -DST_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$bdir" -j2 --target fuzz_onnx fuzz_onnx_seeds >/dev/null
mkdir -p "$bdir/seeds" "$bdir/corpus" "$bdir/crashes"
"$bdir/fuzz_onnx_seeds" "$bdir/seeds"
# Small real exports and the read tests' models make good seeds when the tests have
# written them (build/onnx_models, build/onnx-seeds).
find "$root/build/onnx_models" "$root/build/onnx-seeds" -name '*.onnx' -size -300k \
  -exec cp {} "$bdir/seeds/" \; 2>/dev/null || true
export OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1
rc=0
"$bdir/fuzz_onnx" "$bdir/corpus" "$bdir/seeds" -max_total_time="$secs" -max_len=65536 \
  -rss_limit_mb=2048 -timeout=10 -artifact_prefix="$bdir/crashes/" -print_final_stats=1 \
  >"$bdir/fuzz.log" 2>&1 || rc=$?
grep -E "ERROR|SUMMARY|Test unit written|^stat::|#[0-9]+ *DONE" "$bdir/fuzz.log" | head -30 || true
if [[ $rc -ne 0 ]] || compgen -G "$bdir/crashes/*" >/dev/null; then
  echo "fuzz_onnx: findings in $bdir/crashes:" >&2
  ls "$bdir/crashes" >&2
  echo "(full log: $bdir/fuzz.log)" >&2
  exit 1
fi
echo "fuzz_onnx: ${secs}s, no findings"
