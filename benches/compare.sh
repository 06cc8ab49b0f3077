#!/usr/bin/env bash
# edgecl's core against PyTorch on the CPU, in one run on one machine: the criterion
# bench of benches/train_step.rs, then benches/pytorch_step.py with PyTorch's default
# thread count and with one thread.
#
#   benches/compare.sh [PYTHON]      # PYTHON: an interpreter with torch (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
py=${1:-python3}
lscpu | grep -m1 'Model name' || true
echo "== edgecl (criterion: low / middle / high estimate)"
cargo bench --bench train_step 2>&1 | grep -E '^mlp|^ +time:' | grep -v '%'
echo "== PyTorch, default threads"
"$py" benches/pytorch_step.py
echo "== PyTorch, 1 thread"
"$py" benches/pytorch_step.py --threads 1
