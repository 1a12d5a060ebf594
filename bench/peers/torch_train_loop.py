#!/usr/bin/env python3
"""Peer measurement: the paper's regularised MNIST teacher trained in PyTorch, one JSON line.

The same work per epoch as distill-kit's training loop (`trainModel`) in the `train-loop` bench
case: an MLP with input dropout, hidden dropout after each hidden layer, Adam, a max-norm bound on
each hidden unit's incoming weights applied after every step, every example shifted by up to
--jitter pixels (zero fill, independent per row), batches gathered from a shuffled epoch of --rows
random 28x28 examples; the accuracy of each batch counted as the loop does. Prints the best epoch's
examples per second (wall clock). Usage:
  /usr/bin/python3 torch_train_loop.py [--layers 784,1200,1200,10] [--batch 100] [--rows 3000]
      [--epochs 3] [--input-dropout 0.2] [--dropout 0.5] [--max-norm 3.5] [--jitter 2]
"""
import argparse, json
import torch
from torch_mlp import best_epoch_rate, parse_layers

ap = argparse.ArgumentParser()
ap.add_argument("--layers", default="784,1200,1200,10")
ap.add_argument("--batch", type=int, default=100)
ap.add_argument("--rows", type=int, default=3000)
ap.add_argument("--epochs", type=int, default=3)
ap.add_argument("--input-dropout", type=float, default=0.2)
ap.add_argument("--dropout", type=float, default=0.5)
ap.add_argument("--max-norm", type=float, default=3.5)
ap.add_argument("--jitter", type=int, default=2)
a = ap.parse_args()
torch.manual_seed(0)
sizes = parse_layers(a.layers)
side = int(round(sizes[0] ** 0.5))
if a.jitter and side * side != sizes[0]:
    raise SystemExit(f"--jitter needs square images, but the input has {sizes[0]} values")

mods = [torch.nn.Dropout(a.input_dropout)] if a.input_dropout > 0 else []
hidden = []
for i in range(len(sizes) - 1):
    lin = torch.nn.Linear(sizes[i], sizes[i + 1])
    mods.append(lin)
    if i < len(sizes) - 2:
        hidden.append(lin)
        mods.append(torch.nn.ReLU())
        if a.dropout > 0:
            mods.append(torch.nn.Dropout(a.dropout))
model = torch.nn.Sequential(*mods)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-7)
x_all = torch.rand(a.rows, sizes[0])
y_all = torch.randint(0, sizes[-1], (a.rows,))


def jitter(xb):
    """Each row shifted by its own (dy, dx) in [-j, j]^2, zero fill: one slice per distinct shift."""
    j = a.jitter
    n = xb.shape[0]
    img = torch.nn.functional.pad(xb.view(n, side, side), (j, j, j, j))
    out = torch.empty(n, side, side)
    code = torch.randint(0, (2 * j + 1) ** 2, (n,))
    for c in torch.unique(code).tolist():
        rows = (code == c).nonzero().squeeze(1)
        dy, dx = c // (2 * j + 1) - j, c % (2 * j + 1) - j
        out[rows] = img[rows, j - dy:j - dy + side, j - dx:j - dx + side]
    return out.view(n, -1)


def epoch():
    model.train()
    order = torch.randperm(a.rows)
    correct = 0
    for lo in range(0, a.rows, a.batch):
        idx = order[lo:lo + a.batch]
        xb = x_all[idx]
        if a.jitter:
            xb = jitter(xb)
        yb = y_all[idx]
        opt.zero_grad()
        logits = model(xb)
        loss = torch.nn.functional.cross_entropy(logits, yb)
        loss.backward()
        opt.step()
        if a.max_norm > 0:
            with torch.no_grad():
                for lin in hidden:  # rows of torch's (out x in) weight = each unit's incoming weights
                    lin.weight.copy_(torch.renorm(lin.weight, 2, 0, a.max_norm))
        correct += int((logits.argmax(1) == yb).sum())
    return correct


best = best_epoch_rate(epoch, a.rows, a.epochs)
print(json.dumps({"peer": "pytorch", "version": torch.__version__, "threads": torch.get_num_threads(),
                  "layers": sizes, "batch": a.batch, "rows": a.rows, "examples_per_s": round(best, 1)}))
