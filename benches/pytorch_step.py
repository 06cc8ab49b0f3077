#!/usr/bin/env python3
"""Time the steps of `benches/train_step.rs` in PyTorch on the CPU, for comparison.

Same network (784-400-400-10, Linear-ReLU-Linear-ReLU-Linear), same loss
(CrossEntropyLoss, mean over the batch) and same optimizers (Adam lr 1e-3 with
PyTorch's defaults; SGD momentum 0.9 lr 0.01 at batch 1) as the Rust bench.

Timed:
  train_step/batch{1,128}   zero_grad, forward, loss, backward, optimizer step (Adam)
  train_step_sgd/batch1     the same with SGD
  inference/batch{1,128}    one forward pass under torch.inference_mode()

Each benchmark warms up, then times many single iterations with time.perf_counter and
reports the median and the minimum per step in microseconds.

    python3 benches/pytorch_step.py                 # torch's default thread count
    python3 benches/pytorch_step.py --threads 1     # one thread
    python3 benches/pytorch_step.py --json out.json
"""

import argparse
import json
import platform
import statistics
import sys
import time

try:
    import torch
    from torch import nn
except ImportError:
    sys.exit(
        "pytorch_step.py: PyTorch is not installed for this Python "
        f"({sys.executable}). Install it (e.g. `pip install torch`) or run the "
        "script with a Python that has it."
    )

DIMS = (784, 400, 400, 10)


def make_model():
    return nn.Sequential(
        nn.Linear(DIMS[0], DIMS[1]),
        nn.ReLU(),
        nn.Linear(DIMS[1], DIMS[2]),
        nn.ReLU(),
        nn.Linear(DIMS[2], DIMS[3]),
    )


def make_batch(n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, DIMS[0], generator=g)
    y = torch.randint(0, DIMS[3], (n,), generator=g)
    return x, y


def time_it(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6, min(times) * 1e6


def train_case(batch, optimizer):
    torch.manual_seed(1)
    model = make_model()
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    x, y = make_batch(batch, 42)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return step


def infer_case(batch):
    torch.manual_seed(1)
    model = make_model()
    model.eval()
    x, _ = make_batch(batch, 7)

    def infer():
        with torch.inference_mode():
            return model(x)

    return infer


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads(N) (default: leave torch's default)")
    ap.add_argument("--iters", type=int, default=None,
                    help="timed iterations per benchmark (default: 2000 at batch 1, 200 at batch 128)")
    ap.add_argument("--warmup", type=int, default=None,
                    help="untimed iterations first (default: iters / 10, at least 20)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = ap.parse_args()

    if args.threads is not None:
        if args.threads < 1:
            sys.exit("pytorch_step.py: --threads must be at least 1")
        torch.set_num_threads(args.threads)

    cases = [
        ("train_step/batch1", 1, train_case(1, "adam")),
        ("train_step/batch128", 128, train_case(128, "adam")),
        ("train_step_sgd/batch1", 1, train_case(1, "sgd")),
        ("inference/batch1", 1, infer_case(1)),
        ("inference/batch128", 128, infer_case(128)),
    ]

    results = []
    for name, batch, fn in cases:
        iters = args.iters or (2000 if batch == 1 else 200)
        warmup = args.warmup if args.warmup is not None else max(20, iters // 10)
        median_us, min_us = time_it(fn, warmup, iters)
        results.append({"name": name, "batch": batch, "iters": iters,
                        "median_us": median_us, "min_us": min_us})

    meta = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
    }
    print(f"PyTorch {meta['torch']}, {meta['threads']} thread(s), "
          f"Python {meta['python']}, {meta['machine']}")
    print()
    print("| benchmark | median (us) | min (us) | iterations |")
    print("|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['name']} | {r['median_us']:.1f} | {r['min_us']:.1f} | {r['iters']} |")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results}, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
