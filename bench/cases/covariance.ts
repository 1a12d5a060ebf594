import { loadNative } from '../../src/backend/native.ts';
import { CovarianceAccumulator } from '../../src/specialists/covariance.ts';
import { Rng } from '../../src/util/rng.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

const BATCH = 1000;

interface Setting {
  C: number;
  /** Rows accumulated by the native path. */
  rows: number;
  /** Rows accumulated by the JS path (fewer at C = 10,000: it runs at about 20 rows/s there). */
  jsRows: number;
}

const FULL: readonly Setting[] = [
  { C: 1000, rows: 10_000, jsRows: 10_000 },
  { C: 10_000, rows: 10_000, jsRows: 100 },
];
const QUICK: readonly Setting[] = [
  { C: 1000, rows: 2000, jsRows: 1000 },
  { C: 10_000, rows: 1000, jsRows: 20 },
];

/** Streams `rows` rows (one random batch of logits, repeated) through an accumulator; returns the seconds. */
function time(C: number, rows: number, batch: Float32Array, native: boolean): { seconds: number; path: string } {
  const acc = new CovarianceAccumulator(C, 'probabilities', { native });
  const per = batch.length / C;
  const t0 = performance.now();
  for (let r = 0; r < rows; r += per) {
    const n = Math.min(per, rows - r);
    acc.addBatch(batch, n);
  }
  const seconds = (performance.now() - t0) / 1000;
  if (acc.examples !== rows) throw new Error(`covariance bench: accumulated ${acc.examples} rows, expected ${rows}`);
  return { seconds, path: acc.path };
}

let ran = false;

/**
 * Streaming covariance of the generalist's probabilities (`CovarianceAccumulator`, the
 * `covariance` stage) for C = 1,000 and 10,000, batches of 1,000 rows: the native OpenBLAS sgemm
 * path and the JS Float64 loop (rows/s; the seconds are in the detail). The JS path runs on 100
 * rows at C = 10,000 (its cost per row does not depend on the batch); the detail extrapolates to
 * the native path's row count. Backend-independent: measured once, on the first backend.
 */
export const benchCase: BenchCase = {
  name: 'covariance',
  description: 'streaming C x C covariance of probabilities (native OpenBLAS sgemm vs JS loop)',
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    if (ran) return [];
    ran = true;
    const native = loadNative();
    if (!native.ok) ctx.log.warn(`covariance: native path unavailable (${native.reason}); measuring the JS path only`);
    const out: BenchMeasurement[] = [];
    for (const s of ctx.quick ? QUICK : FULL) {
      const rng = new Rng(s.C);
      const batch = new Float32Array(BATCH * s.C);
      for (let i = 0; i < batch.length; i++) batch[i] = 3 * rng.normal();
      let nativeSeconds: number | undefined;
      if (native.ok) {
        const t = time(s.C, s.rows, batch, true);
        nativeSeconds = t.seconds;
        out.push({
          bench: `covariance-${s.C}-native`,
          value: s.rows / t.seconds,
          unit: 'rows/s',
          detail: `${s.rows} rows in ${t.seconds.toFixed(2)} s, batch ${BATCH}; OpenBLAS ${native.addon.getThreads()} thread(s)`,
        });
      }
      const t = time(s.C, s.jsRows, batch, false);
      const perRow = t.seconds / s.jsRows;
      const extrapolated = s.jsRows < s.rows ? `; ${s.rows} rows would take ~${(perRow * s.rows).toFixed(0)} s` : '';
      const speedup = nativeSeconds !== undefined ? `; native is ${((perRow * s.rows) / nativeSeconds).toFixed(1)}x faster` : '';
      out.push({
        bench: `covariance-${s.C}-js`,
        value: s.jsRows / t.seconds,
        unit: 'rows/s',
        detail: `${s.jsRows} rows in ${t.seconds.toFixed(2)} s, batch ${Math.min(BATCH, s.jsRows)}${extrapolated}${speedup}`,
      });
    }
    return out;
  },
};
