/** Float64 reference maths for the distillation tests (hand-checkable closed forms). */

/** Softmax of `z / T` in float64. */
export function softmaxRef(z: ArrayLike<number>, T = 1): number[] {
  const s = Array.from(z, (v) => v / T);
  const mx = Math.max(...s);
  const e = s.map((v) => Math.exp(v - mx));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

/** Cross-entropy `-sum p log q`. */
export function crossEntropyRef(p: ArrayLike<number>, q: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s -= p[i]! * Math.log(q[i]!);
  return s;
}

/** Row `r` of a row-major `[*, C]` array. */
export function row(a: ArrayLike<number>, r: number, C: number): number[] {
  return Array.from({ length: C }, (_, i) => a[r * C + i]!);
}

/** Per-row zero-meaned copy. */
export function centre(z: ArrayLike<number>): number[] {
  const m = Array.from(z).reduce((a, b) => a + b, 0) / z.length;
  return Array.from(z, (v) => v - m);
}

/** Max |a_i - b_i|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

/** Euclidean norm. */
export function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}
