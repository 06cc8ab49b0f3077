#!/usr/bin/env python3
"""Time an ONNX backbone in onnxruntime, for comparison with tract (benches/backbone.rs).

    python3 benches/onnxruntime_backbone.py MODEL.onnx [--threads N]

Times one run on 1 sample (latency) and on 128 samples (throughput) with the CPU
execution provider: warm-up, then the median and minimum of many runs, in microseconds.
"""
import argparse
import statistics
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:
    sys.exit(f"onnxruntime_backbone.py: {e}; install numpy and onnxruntime")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0: onnxruntime's default)")
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(args.model, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    width = session.get_inputs()[0].shape[1]
    rng = np.random.default_rng(2)
    print(f"onnxruntime {ort.__version__}, threads {args.threads or 'default'}")
    print("| benchmark | median (us) | min (us) | runs |")
    print("|---|---:|---:|---:|")
    for batch, runs in ((1, 5000), (128, 500)):
        x = rng.random((batch, width), dtype=np.float32)
        for _ in range(runs // 10):
            session.run(None, {name: x})
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            session.run(None, {name: x})
            times.append((time.perf_counter() - t) * 1e6)
        print(f"| onnxruntime/batch{batch} | {statistics.median(times):.1f} | {min(times):.1f} | {runs} |")


if __name__ == "__main__":
    main()
