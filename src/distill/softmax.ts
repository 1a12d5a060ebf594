import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/errors.ts';

/** Throws unless `T` is a finite number > 0. */
export function assertTemperature(T: number, where: string): void {
  if (!Number.isFinite(T) || T <= 0) {
    throw new ConfigError(`${where}: temperature T must be a finite number > 0, got ${String(T)}`);
  }
}

/**
 * Softmax with temperature along the last axis: `q_i = exp(z_i/T) / sum_j exp(z_j/T)`,
 * computed as `exp(temperedLogSoftmax(z, T))` (stable for large logits). T=1 is `tf.softmax`.
 * @param logits `[B, C]` logits.
 * @param T temperature, > 0.
 */
export function temperedSoftmax(logits: tf.Tensor2D, T: number): tf.Tensor2D {
  assertTemperature(T, 'temperedSoftmax');
  return tf.tidy(() => tf.exp(temperedLogSoftmax(logits, T)));
}

/**
 * Log of the tempered softmax along the last axis: `z/T - logSumExp(z/T)`. `tf.logSumExp`
 * subtracts the row maximum before exponentiating, so logits of any magnitude (e.g. 1e4) give
 * finite results; this never computes `log(softmax(.))`, which underflows to `-Infinity`.
 * @param logits `[B, C]` logits.
 * @param T temperature, > 0.
 */
export function temperedLogSoftmax(logits: tf.Tensor2D, T: number): tf.Tensor2D {
  assertTemperature(T, 'temperedLogSoftmax');
  return tf.tidy(() => {
    const scaled = T === 1 ? logits : tf.div(logits, T);
    return tf.sub(scaled, tf.logSumExp(scaled, -1, true)) as tf.Tensor2D;
  });
}

/**
 * Identity in the forward pass whose gradient is zero: tfjs's missing `stopGradient`.
 * Anything computed from the result contributes no gradient to `x` or to whatever `x` was
 * computed from (e.g. a teacher model's variables), even inside `optimizer.minimize`.
 */
export function stopGradient<R extends tf.Rank>(x: tf.Tensor<R>): tf.Tensor<R> {
  const op = tf.customGrad((...inputs: Array<tf.Tensor | ((save: tf.Tensor[]) => void)>) => ({
    value: tf.clone(inputs[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor) => [tf.zerosLike(dy)],
  }));
  return op(x) as tf.Tensor<R>;
}
