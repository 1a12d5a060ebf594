#!/usr/bin/env python3
"""Peer measurement: MLP inference throughput in PyTorch (no grad) on this CPU, one JSON line.

Usage: /usr/bin/python3 torch_infer.py [--layers 784,1200,1200,10] [--batch 128] [--steps 60]
"""
import argparse, json, time
import torch
from torch_mlp import add_mlp_args, build_mlp, parse_layers

ap = argparse.ArgumentParser()
add_mlp_args(ap, steps=60)
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(0)
sizes = parse_layers(a.layers)
model = build_mlp(sizes).eval()
x = torch.randn(a.batch, sizes[0])
with torch.no_grad():
    for _ in range(5):
        model(x)
    t = time.perf_counter()
    for _ in range(a.steps):
        model(x)
    dt = time.perf_counter() - t
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                  "layers": sizes, "batch": a.batch, "examples_per_s": round(a.batch * a.steps / dt, 1)}))
