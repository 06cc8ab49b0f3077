#!/usr/bin/env bash
# edgecl run's per-sample latency against onnxruntime + a PyTorch head, in one run.
#   benches/runtime_compare.sh [PYTHON]
# PYTHON: an interpreter with numpy, onnxruntime and torch.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
lscpu | grep -m1 'Model name' || true
echo "== edgecl (benches/runtime.rs)"
out=$(cargo bench --bench runtime 2>/dev/null | tee /dev/stderr)
hidden=$(printf '%s\n' "$out" | sed -n 's/.*head \[[0-9]*, \([0-9]*\), 10\].*/\1/p')
hidden=${hidden:-0}
echo "== onnxruntime + PyTorch, the same backbone file, head hidden $hidden"
"$py" benches/runtime_peer.py models/fashion-cnn/backbone.onnx "$hidden"
"$py" benches/runtime_peer.py models/fashion-cnn/backbone.onnx "$hidden" --threads 1
