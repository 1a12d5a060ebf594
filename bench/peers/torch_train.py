#!/usr/bin/env python3
"""Peer measurement: train the same MLP in PyTorch on this CPU and print throughput as JSON.

Needs Debian's python3-torch (apt-get install python3-torch libopenblas0-pthread) and runs
with /usr/bin/python3. Usage:
  /usr/bin/python3 bench/peers/torch_train.py [--layers 784,1200,1200,10] [--batch 128] [--steps 60]
                                 [--threads N]
Prints one JSON line: {"peer": "pytorch", "examples_per_s": ..., ...}.
"""
import argparse, json, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--layers", default="784,1200,1200,10")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--steps", type=int, default=60)
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
sizes = [int(s) for s in a.layers.split(",")]
mods = []
for i in range(len(sizes) - 1):
    mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
    if i < len(sizes) - 2:
        mods.append(torch.nn.ReLU())
model = torch.nn.Sequential(*mods)
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
x = torch.randn(a.batch, sizes[0])
y = torch.randint(0, sizes[-1], (a.batch,))

def step():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()

for _ in range(5):
    step()
t = time.perf_counter()
for _ in range(a.steps):
    step()
dt = time.perf_counter() - t
params = sum(p.numel() for p in model.parameters())
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                  "layers": sizes, "batch": a.batch, "examples_per_s": round(a.batch * a.steps / dt, 1),
                  "gflops": round(6 * params * a.batch * a.steps / dt / 1e9, 2)}))
