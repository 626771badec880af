#!/usr/bin/env bash
# sparseengine against ONNX Runtime on the same ONNX files, same thread count, one run.
#   tools/bench_vs_ort.sh [--threads 2] [--seconds 5] [--batch 1] [--rounds 1] [MODEL.onnx ...]
# Without models: builds the standard set in build/bench_models: torchvision resnet18 at
# 224 (random weights) dense and one-shot pruned to 90% / 95% (recipes/resnet18-oneshot*);
# yolov5n at 320 when build/bench_models/yolov5n.onnx exists (copy a yolo-dense run's
# model.onnx there): dense, one-shot 90% (recipes/yolov5n-oneshot90.yaml) and
# yolov5n-95.onnx if you put a trained 95% export there (a yolo95 or sparse transfer run).
# Each one-shot model also comes pruned in blocks of 4 output channels (mask_type [4, 1],
# recipes/*-b4.yaml: *-90b4.onnx, *-95b4.onnx), which the engine runs on its quad kernel.
# A one-shot model older than its recipe is made again.
# Prints per model: ORT latency, ours (layers, columns), and the ratios. Both sides run
# with the environment as given (OPENBLAS_CORETYPE etc. unchanged). --rounds R measures
# the three R times in turn and reports each one's median over the rounds: on a VM
# whose speed drifts by minutes, alternation keeps the ratios from one side's slow spell.
# On several threads each round also shows the threads' cache-line round trip that our
# runs measured (sparseengine bench: Thread Round Trip): this kind of VM flips between
# vCPUs on one core complex (~60-80 ns) and on two (~330-380 ns), and multi-threaded
# latencies with it, ORT's and ours, so a round's ratio belongs to one of the two; with
# several rounds it also prints the medians over the near rounds and over the far ones.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=2 secs=5 batch=1 rounds=1 models=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --seconds) secs=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) models+=("$1"); shift ;;
  esac
done
"$root/tools/install-deps.sh" --peers
bin="$root/build"
dir="$bin/bench_models"
mkdir -p "$dir"
if [[ ${#models[@]} -eq 0 ]]; then
  [[ -f "$dir/resnet18.onnx" ]] || /usr/bin/python3 "$root/tools/export_torchvision.py" --model resnet18 --size 224 --out "$dir/resnet18.onnx"
  for t in 90 95 90-b4 95-b4; do
    [[ "$dir/resnet18-${t/-/}.onnx" -nt "$root/recipes/resnet18-oneshot$t.yaml" ]] || "$bin/sparsetrain" oneshot --recipe "$root/recipes/resnet18-oneshot$t.yaml" \
      --model "$dir/resnet18.onnx" --out "$dir/resnet18-${t/-/}.onnx" >/dev/null
  done
  models=("$dir/resnet18.onnx" "$dir/resnet18-90.onnx" "$dir/resnet18-95.onnx" "$dir/resnet18-90b4.onnx"
          "$dir/resnet18-95b4.onnx")
  if [[ -f "$dir/yolov5n.onnx" ]]; then
    [[ "$dir/yolov5n-90.onnx" -nt "$root/recipes/yolov5n-oneshot90.yaml" ]] || "$bin/sparsetrain" oneshot --recipe "$root/recipes/yolov5n-oneshot90.yaml" \
      --model "$dir/yolov5n.onnx" --out "$dir/yolov5n-90.onnx" >/dev/null
    [[ "$dir/yolov5n-90b4.onnx" -nt "$root/recipes/yolov5n-oneshot90-b4.yaml" ]] || "$bin/sparsetrain" oneshot --recipe "$root/recipes/yolov5n-oneshot90-b4.yaml" \
      --model "$dir/yolov5n.onnx" --out "$dir/yolov5n-90b4.onnx" >/dev/null
    models+=("$dir/yolov5n.onnx" "$dir/yolov5n-90.onnx" "$dir/yolov5n-90b4.onnx")
    [[ -f "$dir/yolov5n-95.onnx" ]] && models+=("$dir/yolov5n-95.onnx")
  fi
fi
printf "%-44s %10s %12s %12s %8s %8s\n" model "ORT ms" "ours layers" "ours columns" "x lay" "x col"
for m in "${models[@]}"; do
  # no early exit in awk: sparseengine would die of SIGPIPE and pipefail stop the script
  dims=$("$bin/sparseengine" info "$m" | awk '/^  input/ && !d {print; d=1}' | grep -o '\[.*\]')
  c=$(echo "$dims" | tr -d '[]' | awk -F', ' '{print $2}')
  h=$(echo "$dims" | tr -d '[]' | awk -F', ' '{print $3}')
  w=$(echo "$dims" | tr -d '[]' | awk -F', ' '{print $4}')
  /usr/bin/python3 -c "import numpy as np; np.save('$dir/x.npy', np.random.RandomState(0).rand($batch, $c, $h, $w).astype(np.float32))"
  o_all=() l_all=() c_all=() rt_all=()
  for ((r = 0; r < rounds; r++)); do
    o_all+=("$(node "$root/tools/ort_run.js" "$m" "$dir/x.npy" --bench "$secs" --threads "$threads" | \
               /usr/bin/python3 -c "import json,sys; print('%.3f' % json.load(sys.stdin)['median_ms'])")")
    lo=$("$bin/sparseengine" bench "$m" -b "$batch" -ncores "$threads" -t "$secs" -w 1 --schedule layers)
    co=$("$bin/sparseengine" bench "$m" -b "$batch" -ncores "$threads" -t "$secs" -w 1 --schedule columns)
    l_all+=("$(echo "$lo" | awk -F': ' '/Latency Median/ {print $2}')")
    c_all+=("$(echo "$co" | awk -F': ' '/Latency Median/ {print $2}')")
    # the threads' round trip just after ORT's run, after ours by layers, after columns
    rt_all+=("$(echo "$lo" | awk '/Thread Round Trip/ {print $5 "/" $7}')/$(echo "$co" | awk '/Thread Round Trip/ {print $7}')")
  done
  median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
  ort=$(median "${o_all[@]}") lay=$(median "${l_all[@]}") col=$(median "${c_all[@]}")
  [[ $rounds -gt 1 ]] && echo "  rounds (ORT / layers / columns ms): ${o_all[*]} / ${l_all[*]} / ${c_all[*]}"
  [[ $threads -gt 1 && -n "${rt_all[0]}" ]] && echo "  thread round trips per round (ns, after ORT / after layers / after columns): ${rt_all[*]}"
  printf "%-44s %10.3f %12.3f %12.3f %8.2f %8.2f\n" "$(basename "$(dirname "$m")")/$(basename "$m")" \
    "$ort" "$lay" "$col" "$(echo "$ort / $lay" | bc -l)" "$(echo "$ort / $col" | bc -l)"
  # the same medians over the rounds whose three round trips agree: near (< 150 ns) or far (> 250)
  if [[ $threads -gt 1 && $rounds -gt 1 && -n "${rt_all[0]}" ]]; then
    /usr/bin/python3 - "${o_all[*]}" "${l_all[*]}" "${c_all[*]}" "${rt_all[*]}" <<'PY'
import statistics as st, sys
o, l, c = ([float(v) for v in a.split()] for a in sys.argv[1:4])
rt = [[float(v) for v in r.split('/') if v] for r in sys.argv[4].split()]
for name, keep in (('near', lambda t: max(t) < 150), ('far', lambda t: min(t) > 250)):
    i = [k for k, t in enumerate(rt) if len(t) == 3 and keep(t)]
    if not i:
        continue
    mo, ml, mc = (st.median([v[k] for k in i]) for v in (o, l, c))
    print('  %s rounds (%d): ORT %.3f, layers %.3f (x%.2f), columns %.3f (x%.2f)' % (name, len(i), mo, ml, mo / ml, mc, mo / mc))
PY
  fi
done
