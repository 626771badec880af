#!/usr/bin/env bash
# Installs the Debian packages sparsetrain needs to build, test and run on its default
# data. Idempotent and quiet when everything is present.
#   tools/install-deps.sh            build + test + default data
#   tools/install-deps.sh --peers    also the reference tools (PyTorch, ONNX checker)
set -euo pipefail

pkgs=(gcc make cmake pkg-config libopenblas-openmp-dev libpng-dev zlib1g-dev check
      libyaml-dev libprotobuf-c-dev protobuf-c-compiler libonnx-dev dataset-fashion-mnist)
if [[ "${1:-}" == "--peers" ]]; then
  pkgs+=(python3-torch python3-torchvision python3-onnx python3-numpy nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
