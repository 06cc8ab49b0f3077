#!/usr/bin/env bash
# tract against onnxruntime on the same ONNX backbone file, in one run on one machine.
#   benches/backbone_compare.sh [PYTHON [MODEL.onnx]]
# PYTHON: an interpreter with numpy and onnxruntime; MODEL: the file to time (default: a
# random dense 784-512-256-64 backbone the bench writes to target/bench-backbone.onnx).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
given=${2:-}
if [ -n "$given" ]; then export EDGECL_BENCH_MODEL="$given"; fi
lscpu | grep -m1 'Model name' || true
echo "== tract (criterion: low / middle / high estimate)"
cargo bench --features onnx --bench backbone 2>&1 | grep -E '^backbone|^ +time:' | grep -v '%'
model=${given:-"${CARGO_TARGET_DIR:-target}/bench-backbone.onnx"}
echo "== onnxruntime, default threads"
"$py" benches/onnxruntime_backbone.py "$model"
echo "== onnxruntime, 1 thread"
"$py" benches/onnxruntime_backbone.py "$model" --threads 1
