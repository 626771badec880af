#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test: first the unit suites under
# AddressSanitizer + UndefinedBehaviorSanitizer, a short fuzzing run of the ONNX reader,
# then the whole suite on the Release build (its last line is Check's summary).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)

# Sanitizer build: unit suites (the long end-to-end suite runs only in Release).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DST_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs" >/dev/null
unit=$(build-asan/st_tests --list | grep -v -x -e train -e train_recipe -e onnx_cli -e detect_cli)
echo "== unit tests under ASan + UBSan: $(echo $unit | tr '\n' ' ')"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  build-asan/st_tests $unit

echo "== ONNX reader fuzzing (libFuzzer, 30 s)"
tools/fuzz_onnx.sh 30

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j "$jobs" >/dev/null
echo "== all tests (Release)"
build/st_tests
