/**
 * `model: {type: cnn}`: a convolutional net for image-shaped inputs (`shape` [H, W] or [H, W, C]
 * from ingest). It takes the flat rows every data path delivers (`[n, H*W*C]`, channels last) and
 * reshapes them inside the model, so jitter, batching, prediction and the specialists' dustbin fit
 * work on it unchanged:
 *
 * `reshape -> (conv_i -> [bn_i -> act_i] -> [pool_i] -> [conv_dropout_i])* -> flatten ->
 *  (dense_i -> [dropout_i])* -> logits`.
 */
import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { ConfigError } from '../../util/errors.ts';
import { Rng } from '../../util/rng.ts';
import { LOGITS_LAYER } from './head.ts';
import type { ArchInput, Architecture } from './types.ts';
import { checkWeightsFit } from '../weights-fit.ts';

const size = (max: number) => z.union([z.number().int().min(1).max(max), z.tuple([z.number().int().min(1).max(max), z.number().int().min(1).max(max)])]);

/** One convolution block: a Conv2D layer, then optional batch norm, max-pooling and dropout. */
export const convBlockSchema = z.strictObject({
  /** Number of filters (output channels) of the convolution. */
  filters: z.number().int().min(1).max(4096),
  /** Kernel size: `k` (k x k) or `[kh, kw]`. */
  kernel: size(64).default(3),
  /** Stride of the convolution: `s` or `[sh, sw]`. */
  stride: size(64).default(1),
  /** `same` (zero padding, output ceil(in / stride)) or `valid` (no padding). */
  padding: z.enum(['same', 'valid']).default('same'),
  /** Batch normalisation between the convolution and its activation (the convolution then has no bias). */
  batch_norm: z.boolean().default(false),
  /** Max-pooling window after the activation: `p` or `[ph, pw]`; null = no pooling. */
  pool: size(64).nullable().default(null),
  /** Stride of the pooling; default: the window (non-overlapping). */
  pool_stride: size(64).optional(),
});
/** A parsed convolution block. */
export type ConvBlock = z.output<typeof convBlockSchema>;

/** Config of a CNN (`model: {type: cnn, conv: [...], ...}`). */
export const cnnConfigSchema = z.strictObject({
  /** Selects this architecture. */
  type: z.literal('cnn'),
  /** Convolution blocks, input side first, e.g. `[{filters: 32, kernel: 5, pool: 2}, {filters: 64, kernel: 5, pool: 2}]`. */
  conv: z.array(convBlockSchema).min(1).max(16),
  /** Widths of the dense hidden layers after the convolutions, e.g. [256]; [] = straight to the logits. */
  dense: z.array(z.number().int().positive().max(100_000)).max(16).default([]),
  /** Activation of the convolutions and the dense hidden layers. */
  activation: z.enum(['relu', 'tanh', 'sigmoid', 'elu']).default('relu'),
  /** Dropout rate after each convolution block (training only). */
  conv_dropout: z.number().min(0).max(0.95).default(0),
  /** Dropout rate after each dense hidden layer (training only). */
  dropout: z.number().min(0).max(0.95).default(0),
  /** Max-norm bound on each filter's and each dense hidden unit's incoming weights (null = none); the logits are not bounded. */
  max_norm: z.number().positive().nullable().default(null),
});
/** A parsed CNN config. */
export type CnnConfig = z.output<typeof cnnConfigSchema>;

const pair = (v: number | [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : v);

/** Height, width and channels of the images a CNN takes. */
function imageOf(input: ArchInput): [number, number, number] {
  const s = input.shape;
  if (!s || (s.length !== 2 && s.length !== 3)) {
    throw new ConfigError(
      `model type 'cnn' needs image-shaped examples ([H, W] or [H, W, C]), but the data's shape is ${s ? JSON.stringify(s) : 'not recorded'}: ` +
        `give the input Arrow file schema metadata shape (e.g. [28, 28, 1]; see datasets/README.md), or use model type 'mlp'`,
    );
  }
  const [h, w, c = 1] = s as [number, number, number?];
  if (h * w * c !== input.inputDim) throw new ConfigError(`model type 'cnn': the data's shape ${JSON.stringify(s)} has ${h * w * c} values, but the rows have ${input.inputDim} features`);
  return [h, w, c];
}

/** Output size of a window of size `k`, stride `s` over `n` positions. */
function outSize(n: number, k: number, s: number, padding: 'same' | 'valid'): number {
  return padding === 'same' ? Math.ceil(n / s) : Math.floor((n - k) / s) + 1;
}

/**
 * Builds the CNN as a `tf.Sequential` (see the module comment for its layers). Kernels use seeded
 * Glorot-uniform initialisers, each layer its own seed derived from `input.seed`; biases zero;
 * batch norm starts at gamma 1, beta 0, moving mean 0, variance 1. Max-norm is attached as a
 * kernel constraint: per filter (axes [0, 1, 2] of a `[kh, kw, cin, cout]` kernel) and per dense
 * unit (axis 0), not on the logits.
 * @throws ConfigError for data that is not image-shaped, or blocks that shrink the image below 1x1.
 */
export function buildCnn(c: CnnConfig, input: ArchInput): tf.LayersModel {
  if (!Number.isInteger(input.outputs) || input.outputs < 2) throw new ConfigError(`model: outputs must be an integer >= 2, got ${input.outputs}`);
  let [h, w, ch] = imageOf(input);
  const seedOf = (name: string): number => Rng.derive(input.seed, name).seed();
  const norm = (axis: number | number[]) =>
    c.max_norm === null ? undefined : tf.constraints.maxNorm({ maxValue: c.max_norm, axis: axis as number });
  const model = tf.sequential({ name: 'cnn' });
  model.add(tf.layers.reshape({ targetShape: [h, w, ch], inputShape: [input.inputDim], name: 'reshape' }));
  c.conv.forEach((b, i) => {
    const [kh, kw] = pair(b.kernel);
    const [sh, sw] = pair(b.stride);
    const at = `model.conv[${i}]`;
    if (b.padding === 'valid' && (kh > h || kw > w)) throw new ConfigError(`${at}: its input is ${h}x${w}, smaller than its kernel ${kh}x${kw} with padding 'valid': use padding 'same', a smaller kernel, or fewer blocks`);
    model.add(
      tf.layers.conv2d({
        filters: b.filters,
        kernelSize: [kh, kw],
        strides: [sh, sw],
        padding: b.padding,
        activation: b.batch_norm ? 'linear' : c.activation,
        useBias: !b.batch_norm,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seedOf(`conv_${i}`) }),
        biasInitializer: 'zeros',
        kernelConstraint: norm([0, 1, 2]),
        name: `conv_${i}`,
      }),
    );
    h = outSize(h, kh, sh, b.padding);
    w = outSize(w, kw, sw, b.padding);
    if (b.batch_norm) {
      model.add(tf.layers.batchNormalization({ axis: -1, name: `bn_${i}` }));
      model.add(tf.layers.activation({ activation: c.activation, name: `act_${i}` }));
    }
    if (b.pool !== null) {
      const [ph, pw] = pair(b.pool);
      const [qh, qw] = pair(b.pool_stride ?? b.pool);
      if (ph > h || pw > w) throw new ConfigError(`${at}.pool: the image is ${h}x${w} there, smaller than the pooling window ${ph}x${pw}: use a smaller pool, or fewer blocks`);
      model.add(tf.layers.maxPooling2d({ poolSize: [ph, pw], strides: [qh, qw], padding: 'valid', name: `pool_${i}` }));
      h = outSize(h, ph, qh, 'valid');
      w = outSize(w, pw, qw, 'valid');
    }
    if (c.conv_dropout > 0) model.add(tf.layers.dropout({ rate: c.conv_dropout, seed: seedOf(`conv_dropout_${i}`), name: `conv_dropout_${i}` }));
  });
  model.add(tf.layers.flatten({ name: 'flatten' }));
  // The dense layers' weights must fit before they are allocated (the convolutions' are small).
  const flat = model.outputs[0]!.shape[1] as number;
  const widths = [flat, ...c.dense, input.outputs];
  try {
    checkWeightsFit(widths.slice(1).map((units, i) => ({ key: i < c.dense.length ? `model.dense[${i}]` : `the logits layer (${input.outputs} classes)`, inputs: widths[i]!, units })), -1);
  } catch (e) {
    model.dispose();
    throw e;
  }
  c.dense.forEach((units, i) => {
    model.add(
      tf.layers.dense({
        units,
        activation: c.activation,
        kernelInitializer: tf.initializers.glorotUniform({ seed: seedOf(`dense_${i}`) }),
        biasInitializer: 'zeros',
        kernelConstraint: norm(0),
        name: `dense_${i}`,
      }),
    );
    if (c.dropout > 0) model.add(tf.layers.dropout({ rate: c.dropout, seed: seedOf(`dropout_${i}`), name: `dropout_${i}` }));
  });
  model.add(
    tf.layers.dense({
      units: input.outputs,
      activation: 'linear',
      kernelInitializer: tf.initializers.glorotUniform({ seed: seedOf(LOGITS_LAYER) }),
      biasInitializer: 'zeros',
      name: LOGITS_LAYER,
    }),
  );
  return model;
}

/** The CNN architecture. */
export const cnnArchitecture: Architecture<CnnConfig> = {
  type: 'cnn',
  description: 'convolution blocks (optional batch norm, max-pooling, dropout), dense layers, for image-shaped inputs',
  schema: cnnConfigSchema,
  head: LOGITS_LAYER,
  build: buildCnn,
  describe: (c) => `cnn ${c.conv.map((b) => b.filters).join('-')}${c.dense.length ? `, dense ${c.dense.join('-')}` : ''}`,
  withWidth: (c, width) => {
    if (c.dense.length === 0) throw new ConfigError(`a cnn has no dense layers whose width a sweep could set: give it dense: [${width}] (one entry per dense layer; the sweep replaces each width)`);
    return { ...c, dense: c.dense.map(() => width) };
  },
};
