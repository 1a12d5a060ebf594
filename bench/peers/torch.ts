import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The Python that runs the peers: Debian's (where `apt-get install python3-torch` puts torch), or `$BENCH_PYTHON`. */
export const PYTHON = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
const here = path.dirname(fileURLToPath(import.meta.url));
/** The PyTorch training peer (`bench/peers/torch_train.py`); another script can be given in `$TORCH_PEER`. */
const TRAIN_SCRIPT = process.env.TORCH_PEER ?? path.join(here, 'torch_train.py');
const INFER_SCRIPT = path.join(here, 'torch_infer.py');
const TRAIN_CPU_SCRIPT = path.join(here, 'torch_train_cpu.py');
const LOOP_SCRIPT = path.join(here, 'torch_train_loop.py');
const DISTILL_LOOP_SCRIPT = path.join(here, 'torch_distill_loop.py');
const CNN_SCRIPT = path.join(here, 'torch_cnn.py');

let available: boolean | undefined;

/** Whether `/usr/bin/python3 -c "import torch"` works (checked once). */
export function torchAvailable(): boolean {
  if (available === undefined) {
    const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore', timeout: 60_000 });
    available = r.status === 0;
  }
  return available;
}

/** The one line `npm run bench` prints when the PyTorch peers cannot run. */
export function torchMissingMessage(): string {
  return `PyTorch peers skipped: ${PYTHON} cannot import torch; install it with apt-get install python3-torch (Debian/Ubuntu) or pip install torch (another Python: set BENCH_PYTHON), or pass --no-peer`;
}

const failed = new Set<string>();

/** Result line of a peer script. */
export interface TorchPeerResult {
  version: string;
  threads: number;
  examples_per_s: number;
}

/**
 * Runs a peer script and reads its last JSON line. Undefined when torch is missing (the runner
 * says so once); a missing script is a broken checkout (thrown); a failing run is reported on
 * stderr once per script, so a peer never disappears from the table without a word.
 */
function runPy(script: string, args: string[], key: 'examples_per_s' | 'examples_per_cpu_s' = 'examples_per_s', env?: NodeJS.ProcessEnv): TorchPeerResult | undefined {
  if (!existsSync(script)) throw new Error(`PyTorch peer script ${script} is missing${script === process.env.TORCH_PEER ? ' (from $TORCH_PEER)' : ': the checkout is incomplete (bench/peers/)'}`);
  if (!torchAvailable()) return undefined;
  const r = spawnSync(PYTHON, [script, ...args], { encoding: 'utf8', timeout: 300_000, ...(env ? { env: { ...process.env, ...env } } : {}) });
  if (r.status !== 0) {
    if (!failed.has(script)) {
      failed.add(script);
      const why = (r.stderr ?? '').trim().split('\n').pop() || r.error?.message || `exit ${r.status}`;
      process.stderr.write(`bench: PyTorch peer ${path.basename(script)} failed, its column stays empty: ${why}\n`);
    }
    return undefined;
  }
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    const j = JSON.parse(line) as Partial<Record<'examples_per_s' | 'examples_per_cpu_s', number>> & { version?: unknown; threads?: unknown };
    const v = j[key];
    if (typeof v !== 'number') return undefined;
    return { version: String(j.version ?? '?'), threads: Number(j.threads ?? 0), examples_per_s: v };
  } catch {
    return undefined;
  }
}

/** PyTorch training throughput (ex/s) for the same MLP, batch and optimizer; undefined if unavailable. */
export function torchTrain(sizes: readonly number[], batch: number, steps: number): TorchPeerResult | undefined {
  return runPy(TRAIN_SCRIPT, ['--layers', sizes.join(','), '--batch', String(batch), '--steps', String(steps)]);
}

/**
 * PyTorch training throughput (ex/s, best epoch) of the paper's regularised teacher loop
 * (`bench/peers/torch_train_loop.py`: dropout, Adam, max-norm, jitter, batches gathered from a
 * shuffled epoch of `rows` examples); undefined if unavailable.
 */
export function torchTrainLoop(sizes: readonly number[], opts: { batch: number; rows: number; epochs: number; inputDropout: number; dropout: number; maxNorm: number; jitter: number }): TorchPeerResult | undefined {
  return runPy(LOOP_SCRIPT, [
    '--layers', sizes.join(','), '--batch', String(opts.batch), '--rows', String(opts.rows), '--epochs', String(opts.epochs),
    '--input-dropout', String(opts.inputDropout), '--dropout', String(opts.dropout), '--max-norm', String(opts.maxNorm), '--jitter', String(opts.jitter),
  ]);
}

/**
 * PyTorch training throughput (ex/s, best epoch) of a plain MLP (ReLU, no regularisation) trained
 * with Adam on batches gathered from a shuffled epoch of `rows` examples, with the distillation loss
 * on stored teacher probabilities (`soft`: `alpha T^2 CE(p_T, q_T) + (1 - alpha) CE(y, q_1)`) or the
 * hard-label cross-entropy (`hard`) (`bench/peers/torch_distill_loop.py`); undefined if unavailable.
 */
export function torchDistillLoop(sizes: readonly number[], opts: { batch: number; rows: number; epochs: number; loss: 'soft' | 'hard'; T: number; alpha: number; lr: number }): TorchPeerResult | undefined {
  return runPy(DISTILL_LOOP_SCRIPT, [
    '--layers', sizes.join(','), '--batch', String(opts.batch), '--rows', String(opts.rows), '--epochs', String(opts.epochs),
    '--loss', opts.loss, '--T', String(opts.T), '--alpha', String(opts.alpha), '--lr', String(opts.lr),
  ]);
}

/**
 * PyTorch throughput (ex/s) of the bench CNN (`bench/peers/torch_cnn.py`: conv 32 / 64 + max-pool,
 * dense 256 on 28x28x1; `batchNorm`: batch norm after each conv), training with Adam or inference
 * without grad; undefined if unavailable.
 */
export function torchCnn(mode: 'train' | 'infer', batch: number, steps: number, batchNorm = false): TorchPeerResult | undefined {
  return runPy(CNN_SCRIPT, ['--mode', mode, '--batch', String(batch), '--steps', String(steps), ...(batchNorm ? ['--batch-norm'] : [])]);
}

/** As {@link torchCnn} for training, on one thread (OpenBLAS and intra-op), in examples per CPU-second of the process. */
export function torchCnnCpu(batch: number, steps: number, batchNorm = false): TorchPeerResult | undefined {
  return runPy(CNN_SCRIPT, ['--mode', 'train', '--batch', String(batch), '--steps', String(steps), '--threads', '1', ...(batchNorm ? ['--batch-norm'] : [])], 'examples_per_cpu_s', { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' });
}

/** PyTorch inference throughput (ex/s, no grad) for the same MLP; undefined if unavailable. */
export function torchInfer(sizes: readonly number[], batch: number, steps: number): TorchPeerResult | undefined {
  return runPy(INFER_SCRIPT, ['--layers', sizes.join(','), '--batch', String(batch), '--steps', String(steps)]);
}

/**
 * PyTorch's training cost on one thread (OpenBLAS and intra-op), in examples per CPU-second of the
 * process (`bench/peers/torch_train_cpu.py`), returned in `examples_per_s`; undefined if unavailable.
 */
export function torchTrainCpu(sizes: readonly number[], batch: number, steps: number): TorchPeerResult | undefined {
  return runPy(TRAIN_CPU_SCRIPT, ['--layers', sizes.join(','), '--batch', String(batch), '--steps', String(steps)], 'examples_per_cpu_s', { OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' });
}

/** Label for a peer result, e.g. `pytorch 1.13.0a0 (1 thread)`. */
export function torchLabel(r: TorchPeerResult): string {
  return `pytorch ${r.version} (${r.threads} thread${r.threads === 1 ? '' : 's'})`;
}

/** Result of {@link interleaveWithPeer}. */
export interface Interleaved {
  /** Our best and median rate over the windows (units of `window`'s return value). */
  best: number;
  median: number;
  /** The peer's fastest run, if it ran. */
  peer: TorchPeerResult | undefined;
}

/**
 * Alternates `rounds` timed windows of our own code with runs of the peer, so both see the same
 * load on a shared machine, and keeps the best of each (the least disturbed). `window` returns a
 * rate (or a promise of one); `peer` is skipped (undefined) when `withPeer` is false or the peer is unavailable.
 */
export async function interleaveWithPeer(rounds: number, window: () => number | Promise<number>, peer: () => TorchPeerResult | undefined, withPeer: boolean): Promise<Interleaved> {
  const rates: number[] = [];
  let best: TorchPeerResult | undefined;
  let peerOk = withPeer && torchAvailable();
  for (let r = 0; r < rounds; r++) {
    rates.push(await window());
    if (peerOk) {
      const p = peer();
      if (!p) peerOk = false;
      else if (!best || p.examples_per_s > best.examples_per_s) best = p;
    }
  }
  rates.sort((a, b) => a - b);
  return { best: rates[rates.length - 1]!, median: rates[Math.floor((rates.length - 1) / 2)]!, peer: best };
}

/**
 * Our side of one interleaved window, shaped like the peer's (`best_epoch_rate` in
 * `torch_mlp.py`): one warm-up epoch, then `timed` epochs, the best examples per second of those.
 * (A window of one cold epoch against the peer's warm best-of-2 measured our first epoch after the
 * peer's process: 105k against 190k ex/s for the hard loop of `distill-loop`.) `history` is
 * `trainModel`'s per-epoch history of `1 + timed` epochs.
 */
export function bestTimedEpoch(history: readonly { examples_per_s: number }[]): number {
  const timed = history.length > 1 ? history.slice(1) : history;
  return Math.max(...timed.map((h) => h.examples_per_s));
}
