import * as tf from '@tensorflow/tfjs';
import type { LossFn } from './types.ts';
import { describeFusedLoss, fusedOps } from '../backend/fused-ops.ts';

/**
 * Softmax cross-entropy on the hard labels, averaged over the batch:
 * `mean_i [ logsumexp(z_i) - z_i[y_i] ]` (natural log). The default training and validation loss.
 */
export const hardLoss: LossFn = describeFusedLoss<LossFn>((logits, batch) =>
  tf.tidy(() => {
    // One fused pass per row where the backend has it (value and gradient); the tfjs ops below elsewhere.
    const fused = fusedOps().softmaxXent?.(logits, null, batch.y, 1, 0, 'logits');
    if (fused) return fused;
    const C = logits.shape[1];
    const oneHot = tf.oneHot(tf.cast(batch.y, 'int32') as tf.Tensor1D, C);
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  }), { T: 1, alpha: 0, kind: 'logits' });
