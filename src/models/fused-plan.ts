import type * as tf from '@tensorflow/tfjs';
import type { FusedDenseLayer } from '../backend/fused-ops.ts';

/**
 * The dense chain of `model` for a fused training step, or null when the model is not a plain MLP:
 * every layer a Dense with ReLU or linear activation (the last linear), no other layers (a
 * Dropout, Flatten, ... keeps the generic path), 2-D inputs, and the trainable weights exactly the
 * layers' kernels and biases in order (so the gradients line up with `trainableWeights`).
 */
export function fusedMlpLayers(model: tf.LayersModel): FusedDenseLayer[] | null {
  if (model.inputs.length !== 1 || model.outputs.length !== 1 || model.inputs[0]!.shape.length !== 2) return null;
  const out: FusedDenseLayer[] = [];
  const order: tf.Variable[] = [];
  for (const layer of model.layers) {
    if (layer.getClassName() === 'InputLayer') continue;
    if (layer.getClassName() !== 'Dense' || !layer.trainable) return null;
    const cfg = layer.getConfig() as { activation?: string };
    const act = cfg.activation ?? 'linear';
    if (act !== 'relu' && act !== 'linear') return null;
    const ws = layer.trainableWeights;
    // A Dense layer's weights are [kernel] or [kernel, bias] (names may carry suffixes, so go by rank).
    const kernel = ws[0];
    const bias = ws[1];
    if (!kernel || kernel.shape.length !== 2 || ws.length > 2 || (bias && bias.shape.length !== 1)) return null;
    const k = kernel.read() as tf.Variable;
    const b = bias ? (bias.read() as tf.Variable) : null;
    out.push({ kernel: k, bias: b, relu: act === 'relu' });
    order.push(k, ...(b ? [b] : []));
  }
  if (out.length === 0 || out[out.length - 1]!.relu) return null;
  const vars = model.trainableWeights.map((w) => w.read());
  if (vars.length !== order.length || vars.some((v, i) => v !== order[i])) return null;
  return out;
}
