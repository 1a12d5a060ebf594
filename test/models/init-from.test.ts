/** copyWeightsFrom: a model continues from another of the same architecture, or a clear error. */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildMlp, type MlpSpec } from '../../src/models/mlp.ts';
import { copyWeightsFrom } from '../../src/models/init-from.ts';
import { ConfigError } from '../../src/util/errors.ts';

const spec = (seed: number, hidden: number[] = [5, 4]): MlpSpec => ({
  inputDim: 3, hidden, outputs: 2, activation: 'relu', inputDropout: 0.1, dropout: 0.5, maxNorm: 2, seed,
});

beforeAll(async () => {
  await tf.setBackend('cpu');
});

describe('copyWeightsFrom', () => {
  it('gives the target exactly the source weights (so the same logits), leaving no tensors behind', () => {
    const source = buildMlp(spec(1));
    const target = buildMlp(spec(2));
    const x = tf.tensor2d([[0.1, -0.4, 2], [1, 0.5, -1]]);
    const before = tf.memory().numTensors;
    copyWeightsFrom(target, source, 'test');
    expect(tf.memory().numTensors).toBe(before);
    const ws = source.getWeights();
    const wt = target.getWeights();
    expect(wt.length).toBe(ws.length);
    wt.forEach((w, i) => expect(Array.from(w.dataSync())).toEqual(Array.from(ws[i].dataSync())));
    const ys = source.predict(x) as tf.Tensor;
    const yt = target.predict(x) as tf.Tensor;
    expect(Array.from(yt.dataSync())).toEqual(Array.from(ys.dataSync()));
    tf.dispose([x, ys, yt]);
    source.dispose();
    target.dispose();
  });

  it('rejects another architecture, naming where and both shapes', () => {
    const source = buildMlp(spec(1, [5, 4]));
    const target = buildMlp(spec(1, [6, 4]));
    expect(() => copyWeightsFrom(target, source, "cont.init_from 'teacher'")).toThrow(ConfigError);
    expect(() => copyWeightsFrom(target, source, "cont.init_from 'teacher'")).toThrow(
      /cont\.init_from 'teacher': its model's weights \[3, 5\] \[5\] \[5, 4\] .* do not match the model this stage builds \[3, 6\] \[6\] \[6, 4\].*same model: \(architecture and widths\)/,
    );
    source.dispose();
    target.dispose();
  });
});
