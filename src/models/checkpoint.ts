import { promises as fs } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../artifacts/atomic.ts';
import { sha256 } from '../artifacts/hash.ts';
import type { EpochMetrics } from './types.ts';

/** Name of the state file in a checkpoint folder. */
export const CHECKPOINT_STATE = 'state.json';

/** Everything the training loop needs to continue after a given epoch. */
export interface TrainingCheckpoint {
  /** Identifies the training setup (see `trainModel`); a checkpoint of another setup is ignored. */
  fingerprint: string;
  /** Epochs completed. */
  epochsDone: number;
  history: EpochMetrics[];
  /** 1-based best epoch so far (0 = none). */
  bestEpoch: number;
  /** The selection score of the best epoch (higher is better), null when none. */
  bestScore: number | null;
  /** Current values of every model weight, in `model.weights` order. */
  weights: Float32Array[];
  /** Best epoch's weights (same order), or null when not tracked. */
  best: Float32Array[] | null;
  /** Optimizer step count and slot values. */
  optimizerSteps: number;
  optimizerSlots: Float32Array[];
}

interface StateFile {
  version: 1;
  fingerprint: string;
  epochsDone: number;
  history: EpochMetrics[];
  bestEpoch: number;
  bestScore: number | null;
  file: string;
  sha256: string;
  weightSizes: number[];
  hasBest: boolean;
  optimizerSteps: number;
  slotSizes: number[];
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Writes a checkpoint into `dir`: the arrays to `ckpt-<epoch>.bin` (atomic), then `state.json`
 * (atomic) pointing at it with its hash, then removes older `ckpt-*.bin`. A crash at any point
 * leaves a consistent previous or new checkpoint.
 */
export async function writeCheckpoint(dir: string, ck: TrainingCheckpoint): Promise<void> {
  const file = `ckpt-${String(ck.epochsDone).padStart(4, '0')}.bin`;
  const all = concat([...ck.weights, ...(ck.best ?? []), ...ck.optimizerSlots]);
  const bytes = new Uint8Array(all.buffer, all.byteOffset, all.byteLength);
  await writeFileAtomic(path.join(dir, file), bytes);
  const state: StateFile = {
    version: 1,
    fingerprint: ck.fingerprint,
    epochsDone: ck.epochsDone,
    history: ck.history,
    bestEpoch: ck.bestEpoch,
    bestScore: ck.bestScore,
    file,
    sha256: sha256(bytes),
    weightSizes: ck.weights.map((w) => w.length),
    hasBest: ck.best !== null,
    optimizerSteps: ck.optimizerSteps,
    slotSizes: ck.optimizerSlots.map((s) => s.length),
  };
  await writeJsonAtomic(path.join(dir, CHECKPOINT_STATE), state);
  for (const f of await fs.readdir(dir)) {
    if (/^ckpt-\d+\.bin$/.test(f) && f !== file) await fs.rm(path.join(dir, f), { force: true });
  }
}

/**
 * Reads the checkpoint in `dir`. Returns `{ checkpoint }`, or `{ reason }` saying why there is
 * none usable (no folder, another setup's fingerprint, missing or damaged files, other sizes):
 * the caller then starts from scratch.
 */
export async function readCheckpoint(
  dir: string,
  expect: { fingerprint: string; weightSizes: number[]; slotSizes: number[] },
): Promise<{ checkpoint: TrainingCheckpoint } | { reason: string }> {
  let state: StateFile;
  try {
    state = JSON.parse(await fs.readFile(path.join(dir, CHECKPOINT_STATE), 'utf8')) as StateFile;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { reason: 'none' };
    return { reason: `${CHECKPOINT_STATE} is unreadable: ${(e as Error).message}` };
  }
  if (state.version !== 1 || typeof state.file !== 'string') return { reason: `${CHECKPOINT_STATE} has an unknown format` };
  if (state.fingerprint !== expect.fingerprint) return { reason: 'it was written for different training settings or data' };
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  if (!same(state.weightSizes, expect.weightSizes) || !same(state.slotSizes, expect.slotSizes)) {
    return { reason: 'its weight sizes differ from the model' };
  }
  let buf: Buffer;
  try {
    buf = await fs.readFile(path.join(dir, state.file));
  } catch (e) {
    return { reason: `${state.file} is unreadable: ${(e as Error).message}` };
  }
  if (sha256(buf) !== state.sha256) return { reason: `${state.file} does not match its recorded hash` };
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const nW = state.weightSizes.reduce((s, v) => s + v, 0);
  const expected = nW * (state.hasBest ? 2 : 1) + state.slotSizes.reduce((s, v) => s + v, 0);
  if (all.length !== expected) return { reason: `${state.file} has ${all.length} values, expected ${expected}` };
  let o = 0;
  const take = (sizes: number[]): Float32Array[] =>
    sizes.map((s) => {
      const a = all.slice(o, o + s);
      o += s;
      return a;
    });
  const weights = take(state.weightSizes);
  const best = state.hasBest ? take(state.weightSizes) : null;
  const optimizerSlots = take(state.slotSizes);
  return {
    checkpoint: {
      fingerprint: state.fingerprint,
      epochsDone: state.epochsDone,
      history: state.history,
      bestEpoch: state.bestEpoch,
      bestScore: state.bestScore,
      weights,
      best,
      optimizerSteps: state.optimizerSteps,
      optimizerSlots,
    },
  };
}
