"""The MLP the PyTorch peer scripts measure, and their shared command-line flags.

Used by the peer scripts in this folder (imported from the script's own folder, which Python
puts first on sys.path), so the peers build the same model from the same flags and time epochs alike.
"""
import time

import torch


def add_mlp_args(ap, steps):
    """Adds --layers (widths, comma-separated), --batch and --steps (default `steps`) to `ap`."""
    ap.add_argument("--layers", default="784,1200,1200,10")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=steps)


def best_epoch_rate(epoch, rows, epochs):
    """Runs `epoch()` once to warm up, then `epochs` more times; the best examples per second
    (wall clock, `rows` examples an epoch). Shared by the training-loop peers."""
    epoch()
    best = 0.0
    for _ in range(epochs):
        t = time.perf_counter()
        epoch()
        best = max(best, rows / (time.perf_counter() - t))
    return best


def parse_layers(text):
    """Layer widths from e.g. "784,1200,1200,10" -> [784, 1200, 1200, 10]."""
    return [int(s) for s in text.split(",")]


def build_mlp(sizes):
    """torch.nn.Sequential of Linear(sizes[i], sizes[i + 1]) layers with a ReLU between two (none
    after the last), initialised from torch's global generator (seed it before calling)."""
    mods = []
    for i in range(len(sizes) - 1):
        mods.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(torch.nn.ReLU())
    return torch.nn.Sequential(*mods)
