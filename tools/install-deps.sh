#!/usr/bin/env bash
# Installs the Debian packages sparsetrain needs to build, test and run on its default
# data. Idempotent and quiet when everything is present.
#   tools/install-deps.sh            build + test + default data
#   tools/install-deps.sh --peers    also the reference tools: PyTorch, the ONNX checker,
#                                    and ONNX Runtime (onnxruntime-node from npm, into
#                                    .peers/ in the source tree or $ST_PEERS_DIR), and
#                                    chromium (renders report.html headless in tests)
set -euo pipefail

pkgs=(gcc make cmake pkg-config libopenblas-openmp-dev libpng-dev zlib1g-dev check
      libyaml-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev dataset-fashion-mnist
      clang libclang-rt-14-dev)  # clang + libFuzzer: the ONNX fuzz target
if [[ "${1:-}" == "--peers" ]]; then
  pkgs+=(python3-torch python3-torchvision python3-onnx python3-numpy chromium)
  # node and npm: Debian's packages unless a node with npm is already there (some
  # machines carry a newer nodejs whose npm is bundled and conflicts with Debian's npm).
  command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
install_ort() {
  [[ "${1:-}" == "--peers" ]] || return 0
  local dir=${ST_PEERS_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.peers}
  [[ -f "$dir/node_modules/onnxruntime-node/package.json" ]] && return 0
  echo "install-deps: installing onnxruntime-node into $dir" >&2
  mkdir -p "$dir"
  # ONNXRUNTIME_NODE_INSTALL=skip: the CPU library is bundled; the post-install step
  # would try to download GPU binaries and fail.
  (cd "$dir" && { [[ -f package.json ]] || echo '{"name": "sparsetrain-peers", "private": true}' >package.json; } &&
   ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund onnxruntime-node >/dev/null)
}

if [[ ${#missing[@]} -eq 0 ]]; then
  install_ort "${1:-}"
  exit 0
fi

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
install_ort "${1:-}"
