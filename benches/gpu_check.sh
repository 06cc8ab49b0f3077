#!/usr/bin/env bash
# GPU check: trains the default CNN for a few epochs on the CPU and on the GPU (wgpu) with
# the same seed and data, and compares the two runs' loss curves and accuracies.
#
#   benches/gpu_check.sh [DATA_DIR] [EPOCHS]
#
# DATA_DIR: a folder of Fashion-MNIST IDX files [/usr/share/datasets/fashion-mnist].
# Needs a GPU that wgpu can drive (on Linux: Vulkan, i.e. libvulkan1 and the GPU driver's
# Vulkan ICD; NVIDIA's driver ships one) and python3 for the comparison.
# The two backends round differently, so the runs drift apart step by step; the check asks
# that the per-epoch mean losses agree within 10% and the accuracies within 1.5 points.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-/usr/share/datasets/fashion-mnist}"
epochs="${2:-2}"
out=target/gpu-check

cargo build --release --features gpu
for device in cpu wgpu; do
  echo "== training $epochs epochs on $device"
  /usr/bin/time -f "$device: %e s wall" target/release/edgecl train --data "$data" --epochs "$epochs" \
    --device "$device" --loss-every 20 --out "$out/$device" --quiet
done

python3 - "$out/cpu/train.json" "$out/wgpu/train.json" <<'EOF'
import json, sys
cpu, gpu = (json.load(open(p)) for p in sys.argv[1:3])
print(f"{'point':>5} {'cpu loss':>9} {'gpu loss':>9}")
for i, (a, b) in enumerate(zip(cpu["loss_curve"], gpu["loss_curve"])):
    print(f"{i:>5} {a:>9.4f} {b:>9.4f}")
bad = []
for e, (a, b) in enumerate(zip(cpu["train_loss"], gpu["train_loss"]), 1):
    rel = abs(a - b) / max(a, 1e-9)
    print(f"epoch {e}: mean loss cpu {a:.4f} gpu {b:.4f} ({100 * rel:.1f}% apart)")
    if rel > 0.10:
        bad.append(f"epoch {e} loss {100 * rel:.1f}% apart")
for key in ("validation_accuracy",):
    for e, (a, b) in enumerate(zip(cpu[key], gpu[key]), 1):
        print(f"epoch {e}: {key} cpu {a:.2f} gpu {b:.2f}")
        if abs(a - b) > 1.5:
            bad.append(f"epoch {e} {key} {abs(a - b):.2f} points apart")
a, b = cpu["test_accuracy"], gpu["test_accuracy"]
print(f"test accuracy cpu {a:.2f} gpu {b:.2f}; seconds cpu {cpu['seconds']:.1f} gpu {gpu['seconds']:.1f}")
if abs(a - b) > 1.5:
    bad.append(f"test accuracy {abs(a - b):.2f} points apart")
if bad:
    sys.exit("GPU check FAILED: " + "; ".join(bad))
print("GPU check passed: the CPU and GPU runs agree")
EOF
