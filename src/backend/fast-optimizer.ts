import * as tf from '@tensorflow/tfjs';
import type { NativeBlas } from './native.ts';
import { asWasmBackend, f32Offset, heapF32, soleOwner, type WasmBackendInternals } from './wasm-heap.ts';

/** The MomentumOptimizer fields (TypeScript-private in tfjs) the fast path reads. */
interface MomentumInternals {
  accumulations: ({ originalName: string; variable: tf.Variable } | undefined)[];
  m: tf.Scalar;
  c: tf.Scalar;
  useNesterov: boolean;
  incrementIterations(): void;
}

interface EngineInternals {
  registeredVariables: Record<string, tf.Variable>;
  backend: unknown;
  backendName: string;
}

type ApplyGradients = tf.MomentumOptimizer['applyGradients'];

let original: ApplyGradients | undefined;

function scalarValue(be: WasmBackendInternals, t: tf.Tensor): number | undefined {
  if (t.isDisposed || t.size !== 1 || t.dtype !== 'float32' || !be.dataIdMap.get(t.dataId)) return undefined;
  return heapF32(be)[f32Offset(be, t)];
}

/**
 * Makes `tf.train.momentum` optimizers update weights and accumulators in one native pass, in
 * place on the wasm heap, instead of four tfjs ops that each allocate a full-size tensor. It applies
 * only when the wasm backend is active and every tensor is float32 and owned by its variable alone;
 * otherwise the stock code runs. The arithmetic is the stock one (same float32 operation order).
 */
export function installFastMomentum(blas: NativeBlas): void {
  if (original) return;
  const proto = tf.MomentumOptimizer.prototype;
  const stock = proto.applyGradients;
  original = stock;
  proto.applyGradients = function fastApplyGradients(this: tf.MomentumOptimizer, variableGradients: Parameters<ApplyGradients>[0]): void {
    const engine = tf.engine() as unknown as EngineInternals;
    if (engine.backendName !== 'wasm') return stock.call(this, variableGradients);
    const self = this as unknown as MomentumInternals;
    const be = asWasmBackend(engine.backend);
    const m = scalarValue(be, self.m);
    const c = scalarValue(be, self.c);
    if (m === undefined || c === undefined) return stock.call(this, variableGradients);
    const names = Array.isArray(variableGradients) ? variableGradients.map((v) => v.name) : Object.keys(variableGradients);
    names.forEach((name, i) => {
      const value = engine.registeredVariables[name];
      if (!value) throw new Error(`momentum: no registered variable named '${name}'`);
      if (self.accumulations[i] == null) {
        self.accumulations[i] = { originalName: `${name}/momentum`, variable: tf.tidy(() => tf.zerosLike(value).variable(false)) };
      }
      const acc = self.accumulations[i]!.variable;
      const gradient = Array.isArray(variableGradients) ? variableGradients[i]!.tensor : variableGradients[name];
      if (gradient == null) return;
      const fast =
        value.dtype === 'float32' && acc.dtype === 'float32' && gradient.dtype === 'float32' &&
        value.size === gradient.size && acc.size === value.size &&
        be.dataIdMap.get(value.dataId) && be.dataIdMap.get(acc.dataId) && be.dataIdMap.get(gradient.dataId) &&
        soleOwner(be, value) && soleOwner(be, acc) &&
        gradient.dataId !== value.dataId && gradient.dataId !== acc.dataId;
      if (fast) {
        if (value.size > 0) {
          blas.momentum(heapF32(be), f32Offset(be, value), f32Offset(be, acc), f32Offset(be, gradient), value.size, m, c, self.useNesterov);
        }
        return;
      }
      tf.tidy(() => {
        const newAcc = tf.add(tf.mul(self.m, acc), gradient);
        const newValue = self.useNesterov
          ? tf.add(tf.mul(self.c, tf.add(gradient, tf.mul(newAcc, self.m))), value)
          : tf.add(tf.mul(self.c, newAcc), value);
        acc.assign(newAcc);
        value.assign(newValue);
      });
    });
    self.incrementIterations();
  };
}

/** Restores the stock `MomentumOptimizer.applyGradients`. */
export function uninstallFastMomentum(): void {
  if (!original) return;
  tf.MomentumOptimizer.prototype.applyGradients = original;
  original = undefined;
}
