import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../src/backend/select.ts';
import { buildModel, modelConfigSchema } from '../../src/models/arch/index.ts';
import { trainModel } from '../../src/models/train.ts';
import { BackendError } from '../../src/util/errors.ts';
import { images } from './image-fixture.ts';

beforeAll(async () => {
  await initBackend('wasm');
});

describe('training kernels of the backend', () => {
  it('plain wasm cannot train a convolution: a clear error before the first step, the MLP trains', async () => {
    expect(tf.getBackend()).toBe('wasm');
    const train = images(32, 1);
    const cnn = buildModel(modelConfigSchema.parse({ type: 'cnn', conv: [{ filters: 2, pool: 2 }] }), { inputDim: 64, shape: [8, 8, 1], outputs: 3, seed: 1 });
    const run = (model: tf.LayersModel) => trainModel({ model, train, epochs: 1, batchSize: 16, optimizer: { name: 'sgd', lr: 0.1, momentum: 0 }, seed: 1 });
    await expect(run(cnn)).rejects.toThrow(BackendError);
    await expect(run(cnn)).rejects.toThrow(/layer 'conv_0' \(Conv2D\) needs the kernel Conv2DBackpropFilter, which backend 'wasm' does not have: use --backend wasm-blas/);
    cnn.dispose();
    const mlp = buildModel(modelConfigSchema.parse({ type: 'mlp', hidden: [4] }), { inputDim: 64, outputs: 3, seed: 1 });
    const r = await run(mlp);
    expect(r.history).toHaveLength(1);
    mlp.dispose();
  });
});
