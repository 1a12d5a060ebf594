import * as tf from '@tensorflow/tfjs';
import { hardLoss } from '../src/models/losses.ts';
import { ParamOptimizer } from '../src/models/optimizer.ts';
import { Rng } from '../src/util/rng.ts';

/** Input shape of the bench CNN (an MNIST-sized image). */
export const CNN_INPUT = [28, 28, 1] as const;
/** Classes of the bench CNN. */
export const CNN_CLASSES = 10;

/** The bench CNN and a random batch for it. */
export interface CnnSetup {
  model: tf.Sequential;
  x: tf.Tensor4D;
  yOneHot: tf.Tensor2D;
  dispose(): void;
}

/**
 * The CNN of the bench cases (the same as `bench/peers/torch_cnn.py`): 28x28x1 input; conv 3x3 with
 * 32 filters ('same') + relu, max-pool 2; conv 3x3 with 64 filters ('same') + relu, max-pool 2;
 * dense 256 + relu; dense 10 (logits). With `batchNorm` each conv has no bias and is followed by
 * batch normalisation (tf.layers' defaults: momentum 0.99, epsilon 1e-3) before its relu, as the
 * pipeline's `cnn` architecture builds a block with `batch_norm: true`. Seeded weights, and a seeded
 * random batch of `batch` images.
 */
export function buildCnn(batch: number, seed = 1, batchNorm = false): CnnSetup {
  const rng = new Rng(seed);
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed + k });
  const model = tf.sequential();
  const block = (filters: number, k: number, first: boolean) => {
    model.add(tf.layers.conv2d({
      ...(first ? { inputShape: [...CNN_INPUT] } : {}),
      filters, kernelSize: 3, padding: 'same', activation: batchNorm ? 'linear' : 'relu', useBias: !batchNorm, kernelInitializer: init(k),
    }));
    if (batchNorm) {
      model.add(tf.layers.batchNormalization({ axis: -1 }));
      model.add(tf.layers.activation({ activation: 'relu' }));
    }
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  };
  block(32, 1, true);
  block(64, 2, false);
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 256, activation: 'relu', kernelInitializer: init(3) }));
  model.add(tf.layers.dense({ units: CNN_CLASSES, kernelInitializer: init(4) }));
  const d = CNN_INPUT[0] * CNN_INPUT[1] * CNN_INPUT[2];
  const xv = new Float32Array(batch * d);
  for (let i = 0; i < xv.length; i++) xv[i] = rng.normal();
  const yv = new Float32Array(batch * CNN_CLASSES);
  for (let r = 0; r < batch; r++) yv[r * CNN_CLASSES + rng.int(CNN_CLASSES)] = 1;
  const x = tf.tensor4d(xv, [batch, ...CNN_INPUT]);
  const yOneHot = tf.tensor2d(yv, [batch, CNN_CLASSES]);
  return {
    model, x, yOneHot,
    dispose() {
      x.dispose();
      yOneHot.dispose();
      model.dispose();
    },
  };
}

/**
 * One training step of the bench CNN as the pipeline's loop takes it (src/models/train.ts):
 * gradients of the hard-label loss by `tf.variableGrads`, then the loop's `ParamOptimizer` (Adam,
 * lr 1e-3; native in-place on wasm-blas). `dispose` frees the optimizer and the labels.
 */
export function cnnTrainer(s: CnnSetup): { step(): void; dispose(): void } {
  const vars = s.model.trainableWeights.map((w) => w.read() as tf.Variable);
  const opt = new ParamOptimizer({ name: 'adam', lr: 1e-3 }, vars);
  const y = tf.tidy(() => tf.argMax(s.yOneHot, 1).toInt() as tf.Tensor1D);
  const batch = { x: s.x as unknown as tf.Tensor2D, y };
  return {
    step() {
      const { value, grads } = tf.variableGrads(() => hardLoss(s.model.apply(s.x, { training: true }) as tf.Tensor2D, batch), vars);
      opt.step(vars.map((v) => grads[v.name]), 1e-3, 0);
      tf.dispose([value, ...Object.values(grads)]);
    },
    dispose() {
      opt.dispose();
      y.dispose();
    },
  };
}
