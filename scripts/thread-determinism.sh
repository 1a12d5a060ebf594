#!/usr/bin/env bash
# Does a seeded run repeat bit for bit, and does it depend on the OpenBLAS thread count?
# Trains the mnist-paper teacher recipe (2x1200, dropout, max-norm, jitter, Adam) for 3 epochs on
# 6,000 MNIST rows on the wasm-blas backend, twice with OPENBLAS_NUM_THREADS=1 and twice with 2,
# and prints each run's weights hash and test errors (of 2,000).
# Usage: bash scripts/thread-determinism.sh [work folder]   (about 1 minute on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
mkdir -p "$work"
# reuse a downloaded MNIST when there is one (the cache folder sits beside the run folders)
if [ -d artifacts/datasets ] && [ ! -e "$work/datasets" ]; then ln -s "$PWD/artifacts/datasets" "$work/datasets"; fi
cat > "$work/det.yaml" <<'YAML'
name: det
seed: 1
backend: wasm-blas
stages:
  ingest:
    dataset: {recipe: mnist}
    valid_fraction: 0.1
    limit: {train: 6000, valid: 1000, test: 2000}
  teacher:
    type: train
    hidden: [1200, 1200]
    activation: relu
    input_dropout: 0.1
    dropout: 0.5
    max_norm: 3.5
    jitter: 2
    epochs: 3
    batch_size: 100
    optimizer: {name: adam, lr: 0.001, schedule: {type: cosine, min_lr: 0.00001}}
    select: last
YAML
for run in 1a 1b 2a 2b; do
  threads="${run:0:1}"
  OPENBLAS_NUM_THREADS="$threads" npm run -s pipeline -- --config "$work/det.yaml" --out "$work/threads-$run" > "$work/threads-$run.log" 2>&1 \
    || { echo "run $run failed; see $work/threads-$run.log"; exit 1; }
  node -e '
    const fs = require("fs"); const d = process.argv[1];
    const m = JSON.parse(fs.readFileSync(d + "/teacher/manifest.json", "utf8"));
    const t = JSON.parse(fs.readFileSync(d + "/teacher/metrics.json", "utf8")).test;
    const threads = (m.backend.detail.match(/(\d+) threads/) || [, "?"])[1];
    console.log(`OpenBLAS threads ${threads}, run ${process.argv[2]}: weights sha256 ${m.outputs["model/weights.bin"].slice(0, 16)}, test errors ${t.errors} of ${t.examples}`);
  ' "$work/threads-$run" "$run"
done
