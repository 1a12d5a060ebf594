#!/usr/bin/env python3
"""Peer measurement: distillation of a small many-class student in PyTorch, one JSON line.

The same work per step as distill-kit's training loop (`trainModel`) with `distillationLoss({ T,
alpha, teacher: 'probabilities' })` in the `distill-loop` bench case: an MLP (ReLU hidden layers,
no dropout / max-norm / jitter), Adam (eps 1e-7), batches gathered from a shuffled epoch of --rows
random inputs together with their rows of teacher probabilities (softmax of random logits * 3) and
integer labels; per step the loss
  soft: alpha * T^2 * CE(p_T, q_T) + (1 - alpha) * CE(y, q_1),
        p_T = softmax(log(max(p, 1e-30)) / T) of the batch's stored probabilities, q_T = softmax(z / T)
  hard: CE(y, q_1)
(log_softmax based), backward, Adam step, the batch's accuracy counted as the loop does. Prints the
best epoch's examples per second (wall clock). Usage:
  /usr/bin/python3 torch_distill_loop.py [--layers 64,32,1000] [--batch 128] [--rows 12800]
      [--epochs 3] [--loss soft|hard] [--T 2] [--alpha 0.7] [--lr 0.003]
"""
import argparse, json
import torch
import torch.nn.functional as F
from torch_mlp import best_epoch_rate, build_mlp, parse_layers

ap = argparse.ArgumentParser()
ap.add_argument("--layers", default="64,32,1000")
ap.add_argument("--batch", type=int, default=128)
ap.add_argument("--rows", type=int, default=12800)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--loss", choices=["soft", "hard"], default="soft")
ap.add_argument("--T", type=float, default=2.0)
ap.add_argument("--alpha", type=float, default=0.7)
ap.add_argument("--lr", type=float, default=0.003)
a = ap.parse_args()
torch.manual_seed(0)
sizes = parse_layers(a.layers)
classes = sizes[-1]

model = build_mlp(sizes)
opt = torch.optim.Adam(model.parameters(), lr=a.lr, eps=1e-7)
x_all = torch.rand(a.rows, sizes[0])
p_all = torch.softmax(torch.randn(a.rows, classes) * 3, dim=1)  # teacher probabilities
y_all = torch.randint(0, classes, (a.rows,))
T, alpha = a.T, a.alpha


def soft_loss(z, pb, yb):
    p_t = torch.softmax(torch.log(torch.clamp(pb, min=1e-30)) / T, dim=1)
    soft = -(p_t * F.log_softmax(z / T, dim=1)).sum(1).mean() * (T * T)
    return alpha * soft + (1 - alpha) * F.cross_entropy(z, yb)


def epoch():
    model.train()
    order = torch.randperm(a.rows)
    correct = 0
    for lo in range(0, a.rows, a.batch):
        idx = order[lo:lo + a.batch]
        xb, yb = x_all[idx], y_all[idx]
        opt.zero_grad()
        logits = model(xb)
        if a.loss == "soft":
            loss = soft_loss(logits, p_all[idx], yb)
        else:
            loss = F.cross_entropy(logits, yb)
        loss.backward()
        opt.step()
        correct += int((logits.argmax(1) == yb).sum())
    return correct


best = best_epoch_rate(epoch, a.rows, a.epochs)
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                  "layers": sizes, "batch": a.batch, "rows": a.rows, "loss": a.loss,
                  "examples_per_s": round(best, 1)}))
