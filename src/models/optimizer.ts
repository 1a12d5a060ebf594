import * as tf from '@tensorflow/tfjs';
import { fusedOps } from '../backend/fused-ops.ts';
import { ConfigError, assertUnreachable } from '../util/errors.ts';

/** Learning-rate schedule over epochs (`e` is the 0-based epoch, `E` the number of epochs). */
export type LrSchedule =
  /** `lr` throughout. */
  | { type: 'constant' }
  /** `lr * factor^floor(e / every)`. */
  | { type: 'step'; every: number; factor: number }
  /** `lr * decay^e`. */
  | { type: 'exponential'; decay: number }
  /** `minLr + (lr - minLr) * (1 + cos(pi * e / E)) / 2`. */
  | { type: 'cosine'; minLr: number };

/**
 * The optimizer of a training run.
 *
 * `sgd` is classical momentum (Sutskever et al. 2013, as in Hinton et al.'s dropout nets):
 * `v <- mu v - lr g; w <- w + v`, or with `nesterov` `w <- w + mu v - lr g` (using the new v).
 * With a constant learning rate this equals tfjs/PyTorch's `v <- mu v + g; w <- w - lr v`.
 * `mu` ramps linearly from `momentum` to `finalMomentum` over the first `momentumRampEpochs`
 * epochs when those are given.
 *
 * `adam` is Kingma & Ba with bias correction: `m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
 * w <- w - lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + epsilon)`; defaults b1 0.9, b2 0.999,
 * epsilon 1e-7 (the tfjs/Keras default).
 */
export type OptimizerSpec =
  | {
      name: 'sgd';
      lr: number;
      momentum: number;
      nesterov?: boolean;
      schedule?: LrSchedule;
      finalMomentum?: number;
      momentumRampEpochs?: number;
    }
  | { name: 'adam'; lr: number; beta1?: number; beta2?: number; epsilon?: number; schedule?: LrSchedule };

/**
 * Checks an optimizer spec.
 * @throws ConfigError naming the offending key.
 */
export function checkOptimizerSpec(spec: OptimizerSpec): void {
  const bad = (key: string, why: string): never => {
    throw new ConfigError(`optimizer: ${key} ${why}`);
  };
  if (!(spec.lr > 0)) bad('lr', `must be > 0, got ${spec.lr}`);
  const s = spec.schedule ?? { type: 'constant' };
  switch (s.type) {
    case 'constant':
      break;
    case 'step':
      if (!(Number.isInteger(s.every) && s.every >= 1)) bad('schedule.every', `must be a positive integer, got ${s.every}`);
      if (!(s.factor > 0)) bad('schedule.factor', `must be > 0, got ${s.factor}`);
      break;
    case 'exponential':
      if (!(s.decay > 0)) bad('schedule.decay', `must be > 0, got ${s.decay}`);
      break;
    case 'cosine':
      if (!(s.minLr >= 0 && s.minLr <= spec.lr)) bad('schedule.minLr', `must be in [0, lr], got ${s.minLr}`);
      break;
    default:
      assertUnreachable(s);
  }
  if (spec.name === 'sgd') {
    if (!(spec.momentum >= 0 && spec.momentum < 1)) bad('momentum', `must be in [0, 1), got ${spec.momentum}`);
    if (spec.finalMomentum !== undefined) {
      if (!(spec.finalMomentum >= 0 && spec.finalMomentum < 1)) bad('finalMomentum', `must be in [0, 1), got ${spec.finalMomentum}`);
      if (!(Number.isInteger(spec.momentumRampEpochs) && spec.momentumRampEpochs! >= 1)) {
        bad('momentumRampEpochs', `must be a positive integer when finalMomentum is set, got ${String(spec.momentumRampEpochs)}`);
      }
    }
  } else {
    for (const k of ['beta1', 'beta2'] as const) {
      const b = spec[k];
      if (b !== undefined && !(b >= 0 && b < 1)) bad(k, `must be in [0, 1), got ${b}`);
    }
    if (spec.epsilon !== undefined && !(spec.epsilon > 0)) bad('epsilon', `must be > 0, got ${spec.epsilon}`);
  }
}

/** Learning rate of 0-based epoch `epoch` of `epochs`. */
export function learningRateAt(spec: OptimizerSpec, epoch: number, epochs: number): number {
  const s = spec.schedule ?? { type: 'constant' };
  switch (s.type) {
    case 'constant':
      return spec.lr;
    case 'step':
      return spec.lr * Math.pow(s.factor, Math.floor(epoch / s.every));
    case 'exponential':
      return spec.lr * Math.pow(s.decay, epoch);
    case 'cosine':
      return s.minLr + ((spec.lr - s.minLr) * (1 + Math.cos((Math.PI * epoch) / Math.max(1, epochs)))) / 2;
    default:
      return assertUnreachable(s);
  }
}

/** Momentum of 0-based epoch `epoch` (0 for adam, which has no momentum parameter). */
export function momentumAt(spec: OptimizerSpec, epoch: number): number {
  if (spec.name !== 'sgd') return 0;
  if (spec.finalMomentum === undefined || !spec.momentumRampEpochs) return spec.momentum;
  const f = Math.min(1, epoch / spec.momentumRampEpochs);
  return spec.momentum + (spec.finalMomentum - spec.momentum) * f;
}

/** Serializable optimizer state: the step count and every slot variable's values, in order. */
export interface OptimizerState {
  steps: number;
  slots: Float32Array[];
}

/**
 * An optimizer over a fixed list of variables, driven by the training loop (which supplies the
 * learning rate and momentum of each step). Its state can be read and restored exactly, so a
 * resumed run continues bit-for-bit like an uninterrupted one.
 */
export class ParamOptimizer {
  private readonly slots: tf.Variable[] = [];
  private steps = 0;

  /** @param vars the trainable variables, in the order gradients will be given to {@link step}. */
  constructor(
    readonly spec: OptimizerSpec,
    private readonly vars: tf.Variable[],
  ) {
    checkOptimizerSpec(spec);
    const perVar = spec.name === 'adam' ? 2 : spec.momentum > 0 || (spec.finalMomentum ?? 0) > 0 ? 1 : 0;
    for (let k = 0; k < perVar; k++) {
      for (const v of vars) this.slots.push(tf.tidy(() => tf.variable(tf.zeros(v.shape, 'float32'), false)));
    }
  }

  /** Number of steps taken (restored by {@link setState}). */
  get stepCount(): number {
    return this.steps;
  }

  /**
   * Applies one update from `grads` (aligned with the constructor's `vars`; an undefined gradient
   * leaves that variable and its slots unchanged). Does not dispose `grads`.
   */
  step(grads: (tf.Tensor | undefined)[], lr: number, momentum: number): void {
    const n = this.vars.length;
    this.steps++;
    const spec = this.spec;
    // In-place updates where the backend has them (one pass per weight); the tfjs ops below elsewhere.
    const fused = fusedOps();
    if (spec.name === 'adam') {
      const b1 = spec.beta1 ?? 0.9;
      const b2 = spec.beta2 ?? 0.999;
      const eps = spec.epsilon ?? 1e-7;
      const c1 = 1 / (1 - Math.pow(b1, this.steps));
      const c2 = 1 / (1 - Math.pow(b2, this.steps));
      for (let i = 0; i < n; i++) {
        const w = this.vars[i]!;
        const m = this.slots[i]!;
        const v = this.slots[n + i]!;
        const g = grads[i];
        if (!g) continue;
        if (fused.adamStep?.(w, m, v, g, { b1, omb1: 1 - b1, b2, omb2: 1 - b2, lrc1: lr * c1, c2, eps })) continue;
        tf.tidy(() => {
          const m2 = tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1));
          const v2 = tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2));
          const upd = tf.div(tf.mul(m2, lr * c1), tf.add(tf.sqrt(tf.mul(v2, c2)), eps));
          m.assign(m2);
          v.assign(v2);
          w.assign(tf.sub(w, upd));
        });
      }
      return;
    }
    for (let i = 0; i < n; i++) {
      const w = this.vars[i]!;
      const g = grads[i];
      if (!g) continue;
      const vel = this.slots[i];
      if (fused.sgdStep?.(w, vel, g, lr, momentum, spec.nesterov === true)) continue;
      tf.tidy(() => {
        if (!vel) {
          w.assign(tf.sub(w, tf.mul(g, lr)));
          return;
        }
        const lrG = tf.mul(g, lr);
        const v2 = tf.sub(tf.mul(vel, momentum), lrG);
        vel.assign(v2);
        w.assign(spec.nesterov ? tf.sub(tf.add(w, tf.mul(v2, momentum)), lrG) : tf.add(w, v2));
      });
    }
  }

  /** A copy of the state (step count and slot values). */
  async getState(): Promise<OptimizerState> {
    const slots = await Promise.all(this.slots.map(async (s) => (await s.data()) as Float32Array));
    return { steps: this.steps, slots: slots.map((a) => Float32Array.from(a)) };
  }

  /**
   * Restores a state from {@link getState} of an optimizer over variables of the same shapes.
   * @throws Error when the slot count or sizes differ.
   */
  setState(state: OptimizerState): void {
    if (state.slots.length !== this.slots.length) throw new Error(`optimizer state has ${state.slots.length} slots, expected ${this.slots.length}`);
    state.slots.forEach((a, i) => {
      const s = this.slots[i]!;
      if (a.length !== s.size) throw new Error(`optimizer slot ${i} has ${a.length} values, expected ${s.size}`);
      tf.tidy(() => s.assign(tf.tensor(a, s.shape, 'float32')));
    });
    this.steps = state.steps;
  }

  /** Sizes (in values) of the slots, in state order. */
  slotSizes(): number[] {
    return this.slots.map((s) => s.size);
  }

  /** Frees the slot variables. */
  dispose(): void {
    for (const s of this.slots) s.dispose();
    this.slots.length = 0;
  }
}
