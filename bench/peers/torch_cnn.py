#!/usr/bin/env python3
"""Peer measurement: the bench CNN in PyTorch on this CPU, training (Adam, softmax cross-entropy)
or inference (no grad) throughput, one JSON line.

The CNN (the same as bench/cnn.ts): 28x28x1 input; conv 3x3 32 filters 'same' + relu, max-pool 2;
conv 3x3 64 filters 'same' + relu, max-pool 2; dense 256 + relu; dense 10. With --batch-norm each
conv has no bias and is followed by BatchNorm2d (eps 1e-3, momentum 0.01: tf.layers' epsilon 1e-3 and
momentum 0.99) before its relu.

Prints examples per second (wall clock) and per CPU-second of the process.

Usage: /usr/bin/python3 torch_cnn.py --mode train|infer [--batch 128] [--steps 30] [--threads N] [--batch-norm]
"""
import argparse, json, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--mode", choices=["train", "infer"], default="train")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=30)
ap.add_argument("--threads", type=int, default=0)
ap.add_argument("--batch-norm", action="store_true")
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
nn = torch.nn


def block(cin, cout):
    if a.batch_norm:
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01), nn.ReLU(), nn.MaxPool2d(2)]
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]


model = nn.Sequential(
    *block(1, 32), *block(32, 64),
    nn.Flatten(), nn.Linear(64 * 7 * 7, 256), nn.ReLU(), nn.Linear(256, 10),
)
x = torch.randn(a.batch, 1, 28, 28)
y = torch.randint(0, 10, (a.batch,))

if a.mode == "train":
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    c = time.process_time()
    t = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
else:
    model.eval()
    with torch.no_grad():
        for _ in range(3):
            model(x)
        c = time.process_time()
        t = time.perf_counter()
        for _ in range(a.steps):
            model(x)
        dt = time.perf_counter() - t
        cpu = time.process_time() - c
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(), "mode": a.mode, "batch_norm": a.batch_norm,
                  "batch": a.batch, "examples_per_s": round(a.batch * a.steps / dt, 1),
                  "examples_per_cpu_s": round(a.batch * a.steps / cpu, 1)}))
