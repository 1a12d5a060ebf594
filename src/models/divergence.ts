/**
 * Finite divergence: a training run whose loss climbs far above where it started, or whose
 * weights grow without bound, while every number stays finite. Non-finite losses are caught by
 * the training loop itself; this catches the run that would otherwise be saved as finished with
 * a useless model (e.g. a learning rate a little too high for SGD with momentum).
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError } from '../util/errors.ts';

/** Thresholds of the divergence check; every field optional (defaults in {@link DIVERGENCE_DEFAULTS}). */
export interface DivergenceSpec {
  /** The training loss counts as diverged above `factor` x the first epoch's loss. */
  factor?: number;
  /** ... for this many consecutive epochs. */
  epochs?: number;
  /** Largest absolute weight allowed after an epoch (any weight, biases included). */
  maxWeight?: number;
  /** Off: no check (the non-finite loss check stays on). */
  off?: boolean;
}

/**
 * Defaults, far from any healthy run: a healthy loss falls below its first-epoch mean (the first
 * epoch's mean already includes the untrained start), and weights of a trained MLP stay within
 * tens (max-norm bounds them further).
 */
export const DIVERGENCE_DEFAULTS = { factor: 10, epochs: 3, maxWeight: 1e5 } as const;

/** The loss a first epoch is compared with is at least this (a near-zero first loss is not a scale). */
const LOSS_FLOOR = 0.01;

/** Checks a {@link DivergenceSpec}. @throws ConfigError for a factor <= 1, epochs < 1 or maxWeight <= 0. */
export function checkDivergenceSpec(spec: DivergenceSpec | undefined): void {
  if (!spec) return;
  if (spec.factor !== undefined && !(spec.factor > 1)) throw new ConfigError(`divergence.factor must be a number > 1, got ${spec.factor}`);
  if (spec.epochs !== undefined && !(Number.isInteger(spec.epochs) && spec.epochs >= 1)) throw new ConfigError(`divergence.epochs must be an integer >= 1, got ${spec.epochs}`);
  if (spec.maxWeight !== undefined && !(spec.maxWeight > 0)) throw new ConfigError(`divergence.max_weight must be a number > 0, got ${spec.maxWeight}`);
}

/** Largest |w| over the given variables (one device reduction per variable, one read each). */
export function maxAbsWeight(vars: readonly tf.Variable[]): number {
  let m = 0;
  for (const v of vars) {
    const x = tf.tidy(() => tf.max(tf.abs(v)).dataSync()[0]!);
    if (!(x <= m)) m = x; // NaN propagates
  }
  return m;
}

/**
 * Looks at the history so far (epochs 1..e, restored ones included) and the weights after the
 * last epoch; throws when the run diverged.
 * @param history training losses per epoch, oldest first (the last is the epoch just trained).
 * @param lr the learning rate of the epoch just trained.
 * @throws ConfigError naming the epoch, what grew, the learning rate and the key to lower.
 */
export function checkDivergence(history: readonly { epoch: number; train_loss: number }[], weights: readonly tf.Variable[], lr: number, spec: DivergenceSpec | undefined): void {
  if (spec?.off) return;
  const factor = spec?.factor ?? DIVERGENCE_DEFAULTS.factor;
  const epochs = spec?.epochs ?? DIVERGENCE_DEFAULTS.epochs;
  const maxWeight = spec?.maxWeight ?? DIVERGENCE_DEFAULTS.maxWeight;
  const last = history[history.length - 1];
  if (!last) return;
  const how = `lower the learning rate (optimizer.lr, now ${lr}), or raise the thresholds under 'divergence:' (factor ${factor}, epochs ${epochs}, max_weight ${maxWeight}) if this is expected`;
  const w = maxAbsWeight(weights);
  if (!(w <= maxWeight)) {
    throw new ConfigError(`training diverged in epoch ${last.epoch}: a weight reached |w| = ${w.toPrecision(3)}, above max_weight ${maxWeight}; ${how}`);
  }
  const first = history[0]!.train_loss;
  if (!Number.isFinite(first) || history.length < epochs + 1) return;
  const limit = factor * Math.max(first, LOSS_FLOOR);
  const recent = history.slice(-epochs);
  if (recent.every((h) => h.train_loss > limit)) {
    throw new ConfigError(
      `training diverged in epoch ${last.epoch}: the training loss was above ${factor} x its first-epoch value (${first.toFixed(4)}) for ${epochs} epochs in a row (now ${last.train_loss.toFixed(4)}); ${how}`,
    );
  }
}
