/**
 * A training history (the records of `metrics.jsonl`) as a TensorBoard event file, so that
 * `tensorboard --logdir artifacts/RUN` shows the curves of every trained model of a run.
 */
import path from 'node:path';
import { writeFileAtomic } from '../artifacts/atomic.ts';
import { VOLATILE_KEY } from '../artifacts/output-hash.ts';
import type { EpochMetrics } from '../models/types.ts';
import type { EventSpec, Scalar } from './event.ts';
import { encodeEventFile } from './event-writer.ts';

/** The folder, beside a model's `metrics.jsonl`, that holds its event file. */
export const TB_DIR = 'tb';

/**
 * The event file's name. Fixed rather than TensorFlow's `<time>.<host>` so that a rerun writes the
 * same file names (stage outputs are hashed by name; the wall times inside are left out of the
 * hash, see `src/artifacts/output-hash.ts`). TensorBoard reads any file whose name holds `tfevents`.
 */
export const TB_FILE = 'events.out.tfevents.0.distill-kit';

/** TensorBoard tags of the known per-epoch fields; other numeric fields keep their own name. */
const TAGS: Record<string, string> = {
  train_loss: 'loss/train',
  valid_loss: 'loss/valid',
  train_accuracy: 'accuracy/train',
  valid_accuracy: 'accuracy/valid',
  lr: 'learning_rate',
};

/**
 * The scalars of one epoch record: every finite number except `epoch` and wall-clock fields
 * (`seconds`, `examples_per_s`: they differ from run to run), tagged per {@link TAGS}.
 */
export function epochScalars(record: EpochMetrics | Record<string, unknown>): Scalar[] {
  const out: Scalar[] = [];
  for (const [k, v] of Object.entries(record)) {
    if (k === 'epoch' || VOLATILE_KEY.test(k) || typeof v !== 'number' || !Number.isFinite(v)) continue;
    out.push({ tag: TAGS[k] ?? k, value: v });
  }
  return out;
}

/**
 * Writes `<dir>/tb/events.out.tfevents.0.distill-kit` from `history` (one summary event per
 * epoch, step = epoch), atomically: a crash leaves the complete file or none. Wall times are
 * reconstructed from the epochs' `seconds`, the last epoch ending at `now`.
 */
export async function writeTrainingCurves(dir: string, history: readonly (EpochMetrics | Record<string, unknown>)[], now = Date.now() / 1000): Promise<void> {
  const seconds = history.map((h) => (typeof h.seconds === 'number' && Number.isFinite(h.seconds) && h.seconds >= 0 ? h.seconds : 0));
  const events: EventSpec[] = [];
  let t = now - seconds.reduce((a, s) => a + s, 0);
  const start = t;
  history.forEach((h, i) => {
    t += seconds[i]!;
    const step = typeof h.epoch === 'number' && Number.isSafeInteger(h.epoch) ? h.epoch : i + 1;
    events.push({ wallTime: t, step, scalars: epochScalars(h) });
  });
  await writeFileAtomic(path.join(dir, TB_DIR, TB_FILE), encodeEventFile(start, events));
}
