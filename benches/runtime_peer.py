#!/usr/bin/env python3
"""The peer of `benches/runtime.rs`: the same per-sample work in onnxruntime and PyTorch.

Per sample: the ONNX backbone (the same file) at batch 1 in onnxruntime, then a PyTorch
head of the same shape as edgecl's (Linear-ReLU-Linear, or one Linear when hidden is 0)
gives the softmax. `predict + learn` adds the sample to a batch of 32 and, when it is
full, takes one Adam step (lr 1e-3, cross-entropy) on it: the update edgecl makes on a
full batch, without the replayed rows (so the peer does less work than edgecl's replay
head). Each sample is timed with time.perf_counter; p50, p99 and the mean are printed.

    python3 benches/runtime_peer.py MODEL.onnx HIDDEN [--threads N]
"""

import argparse
import gzip
import pathlib
import statistics
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
    import torch
    from torch import nn
except ImportError as e:
    sys.exit(f"runtime_peer.py: {e.name} is not installed for {sys.executable} (pip install numpy onnxruntime torch)")


def mnist(root, classes):
    data = gzip.open(root / "data/mnist/train-images-idx3-ubyte.gz").read()[16:]
    labels = gzip.open(root / "data/mnist/train-labels-idx1-ubyte.gz").read()[8:]
    x = np.frombuffer(data, dtype=np.uint8).reshape(-1, 784).astype(np.float32) / 255.0
    y = np.frombuffer(labels, dtype=np.uint8)
    keep = np.isin(y, classes)
    return x[keep], y[keep].astype(np.int64)


def report(what, us):
    us = sorted(us)
    p = lambda q: us[round((len(us) - 1) * q)]
    print(f"{what:<28} n {len(us):>6}  p50 {p(0.5):>8.1f} us  p99 {p(0.99):>8.1f} us  mean {statistics.fmean(us):>8.1f} us")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("hidden", type=int)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    root = pathlib.Path(__file__).resolve().parent.parent
    so = ort.SessionOptions()
    if a.threads:
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        torch.set_num_threads(a.threads)
    sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    features = sess.get_outputs()[0].shape[1]
    head = nn.Sequential(nn.Linear(features, a.hidden), nn.ReLU(), nn.Linear(a.hidden, 10)) if a.hidden else nn.Linear(features, 10)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    x, y = mnist(root, [0, 1])
    batch_f, batch_y = [], []

    def predict(i):
        f = sess.run(None, {name: x[i : i + 1]})[0]
        ft = torch.from_numpy(f)
        with torch.inference_mode():
            scores = torch.softmax(head(ft), dim=1)
        return ft, int(scores.argmax())

    def learn(i):
        ft, c = predict(i)
        batch_f.append(ft)
        batch_y.append(int(y[i]))
        if len(batch_f) == 32:
            opt.zero_grad()
            loss = loss_fn(head(torch.cat(batch_f)), torch.tensor(batch_y))
            loss.backward()
            opt.step()
            batch_f.clear()
            batch_y.clear()
        return c

    for i in range(200):
        learn(i)
    def backbone(i):
        return sess.run(None, {name: x[i : i + 1]})[0]

    times = {"onnxruntime alone (batch 1)": [], "predict": [], "predict + learn": []}
    for what, fn in [("onnxruntime alone (batch 1)", backbone), ("predict", predict), ("predict + learn", learn)]:
        for i in range(5000):
            t = time.perf_counter()
            fn(i % len(x))
            times[what].append((time.perf_counter() - t) * 1e6)
    tag = f"{a.threads} thread" if a.threads == 1 else ("default threads" if not a.threads else f"{a.threads} threads")
    print(f"onnxruntime {ort.__version__} + PyTorch {torch.__version__}, {tag}, head {features}-{a.hidden}-10")
    for what, us in times.items():
        report(what, us)


if __name__ == "__main__":
    main()
