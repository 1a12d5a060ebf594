import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs';
import { shiftedAccuracy } from '../../src/models/shifted-accuracy.ts';
import { Rng } from '../../src/util/rng.ts';

/** A 5x5 "image" model: class 0 scores the centre pixel, class 1 a constant 0.5. */
function centreModel(): tf.LayersModel {
  const m = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [25] })] });
  const kernel = new Float32Array(50);
  kernel[12 * 2 + 0] = 1; // centre pixel (row 2, col 2) -> class 0
  tf.tidy(() => m.setWeights([tf.tensor2d(kernel, [25, 2]), tf.tensor1d([0, 0.5])])); // setWeights copies
  return m;
}

describe('shiftedAccuracy', () => {
  // 90 images with only the centre pixel lit, all of class 0
  const n = 90;
  const x = new Float32Array(n * 25);
  for (let r = 0; r < n; r++) x[r * 25 + 12] = 1;
  const set = { x, y: new Int32Array(n), n, dim: 25, shape: [5, 5, 1] };

  it('is right on the rows, and on shifted rows only where the shift was (0, 0) (counted from the same seed)', async () => {
    const before = tf.memory().numTensors;
    const r = await shiftedAccuracy(set, 1, 2, async () => centreModel(), 7);
    const rng = new Rng(7);
    let still = 0;
    for (let i = 0; i < n; i++) {
      const dy = rng.int(3) - 1;
      const dx = rng.int(3) - 1;
      if (dy === 0 && dx === 0) still++;
    }
    expect(still).toBeGreaterThan(0);
    expect(still).toBeLessThan(n);
    expect(r.models).toHaveLength(2);
    for (const m of r.models) expect(m).toEqual({ plain: 1, shifted: still / n });
    expect(r.mean).toEqual({ plain: 1, shifted: still / n });
    expect(tf.memory().numTensors).toBe(before); // every model disposed
  });

  it('with jitter 0 the shifted rows are the rows', async () => {
    const r = await shiftedAccuracy(set, 0, 1, async () => centreModel());
    expect(r.models[0]).toEqual({ plain: 1, shifted: 1 });
  });
});
