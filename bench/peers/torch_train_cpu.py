#!/usr/bin/env python3
"""Peer measurement: CPU cost of MLP training in PyTorch on one thread, one JSON line.

The same MLP, batch, loss and optimizer as the shared training peer (torch_peer.py), but timed in
process CPU seconds (time.process_time) on one thread (torch.set_num_threads(1); run it with
OPENBLAS_NUM_THREADS=1), so that the number measures the work a step costs and hardly depends on
other load on the machine. Usage:
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 torch_train_cpu.py [--layers 784,1200,1200,10] [--batch 128] [--steps 40]
"""
import argparse, json, time
import torch
from torch_mlp import add_mlp_args, build_mlp, parse_layers

ap = argparse.ArgumentParser()
add_mlp_args(ap, steps=40)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
sizes = parse_layers(a.layers)
model = build_mlp(sizes)
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
c = time.process_time()
t = time.perf_counter()
for _ in range(a.steps):
    step()
cpu = time.process_time() - c
wall = time.perf_counter() - t
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                  "layers": sizes, "batch": a.batch, "examples_per_cpu_s": round(a.batch * a.steps / cpu, 1),
                  "examples_per_s": round(a.batch * a.steps / wall, 1)}))
