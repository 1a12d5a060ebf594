/**
 * Tempering a teacher's targets before distillation: `p -> p^(1/tau)` renormalised per row
 * (`softmax(log p / tau)`; for logits, `v / tau`). `tau < 1` sharpens, `tau > 1` softens, `tau = 1`
 * leaves the targets as they are. Unlike the loss's T, which divides the student's logits too,
 * this changes what the student is asked to match.
 */

import { assertTemperature } from './softmax.ts';

/** Smallest probability whose log is taken (a zero stays zero after tempering). */
const TINY = 1e-30;

/**
 * Writes `log p / tau` of the row at offset `o` into `l` (`-Infinity` where p is 0) and returns
 * its maximum: the shared first step of tempering a row and of its tempered entropy.
 */
function temperedLogRow(p: Float32Array, o: number, C: number, inv: number, l: Float64Array): number {
  let m = -Infinity;
  for (let c = 0; c < C; c++) {
    const v = p[o + c]!;
    l[c] = v > 0 ? Math.log(Math.max(v, TINY)) * inv : -Infinity;
    if (l[c]! > m) m = l[c]!;
  }
  return m;
}

/**
 * Tempers rows of probabilities in place (`n x C`, each row summing to 1): each row becomes
 * `p^(1/tau) / sum(p^(1/tau))`, computed in log space so that small `tau` does not underflow.
 */
export function temperProbabilities(p: Float32Array, C: number, tau: number): void {
  checkTau(tau);
  if (tau === 1) return;
  if (p.length % C !== 0) throw new RangeError(`temperProbabilities: ${p.length} values are not rows of ${C}`);
  const inv = 1 / tau;
  const l = new Float64Array(C);
  for (let o = 0; o < p.length; o += C) {
    const m = temperedLogRow(p, o, C, inv, l);
    if (m === -Infinity) continue;
    let s = 0;
    for (let c = 0; c < C; c++) s += (l[c] = Math.exp(l[c]! - m));
    for (let c = 0; c < C; c++) p[o + c] = l[c]! / s;
  }
}

/** Tempers logits in place: `v / tau` (the softmax of the result is the tempered distribution). */
export function temperLogits(v: Float32Array, tau: number): void {
  checkTau(tau);
  if (tau === 1) return;
  const inv = 1 / tau;
  for (let i = 0; i < v.length; i++) v[i]! *= inv;
}

/**
 * Mean entropy (nats) over rows of probabilities tempered at `tau`, without changing them;
 * `rows` (row indices) restricts the mean to those rows.
 */
export function meanTemperedEntropy(p: Float32Array, C: number, tau: number, rows?: ArrayLike<number>): number {
  checkTau(tau);
  const inv = 1 / tau;
  const l = new Float64Array(C);
  const n = rows ? rows.length : p.length / C;
  let total = 0;
  for (let j = 0; j < n; j++) {
    const m = temperedLogRow(p, (rows ? rows[j]! : j) * C, C, inv, l);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(l[c]! - m);
    const logZ = m + Math.log(s);
    let h = 0;
    for (let c = 0; c < C; c++) {
      if (l[c] === -Infinity) continue;
      const lp = l[c]! - logZ;
      h -= Math.exp(lp) * lp;
    }
    total += h;
  }
  return n > 0 ? total / n : 0;
}

/**
 * The `tau` at which the rows' mean tempered entropy equals `target` nats (bisection on log tau
 * over [1/64, 64]: entropy rises with tau). Used to give two teachers' targets the same softness.
 */
export function temperatureForEntropy(p: Float32Array, C: number, target: number, rows?: ArrayLike<number>, iterations = 30): number {
  let lo = Math.log(1 / 64);
  let hi = Math.log(64);
  for (let i = 0; i < iterations; i++) {
    const mid = (lo + hi) / 2;
    if (meanTemperedEntropy(p, C, Math.exp(mid), rows) < target) lo = mid;
    else hi = mid;
  }
  return Math.exp((lo + hi) / 2);
}

function checkTau(tau: number): void {
  assertTemperature(tau, 'teacher_temperature');
}
