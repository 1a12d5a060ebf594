/**
 * The shared kernel of both solvers: for one case and the current q, the "responsibility"
 * numerator
 *
 *     N_i(q) = p^g_i + w * sum_{m in A} p^m_{c_m(i)} * q_i / Q^m_{c_m(i)}
 *
 * (c_m(i): i's cell in specialist m, Q^m_c: q's mass in that cell). The EM update is
 * q <- N(q) / sum N(q); the gradient of the objective w.r.t. z (q = softmax z) is
 * (sum N) q - N, i.e. (1 + w|A|) q - N for normalised inputs.
 *
 * Cost O(C + sum_m |S^m|) per case, not O(C |A|): the dustbin terms are the same factor
 * f_m = p^m_dust / Q^m_dust on every class, so they are applied as one global factor
 * `F = sum_m f_m` on all classes and undone on each specialist's own classes.
 * For a special (single-class) cell q_i / Q_c = 1, so the term is p^m_c even where q_i = 0.
 * A dustbin with zero mass under q but positive probability spreads that probability uniformly
 * over its classes (the limit of the update as the mass vanishes uniformly).
 */
import type { EnsembleProblem } from './problem.ts';

/**
 * Writes N(q) for case `r` into `num` and returns its sum.
 * @param q current distribution of case r (length C, sums to ~1)
 * @param w specialist weight
 */
export function numerator(p: EnsembleProblem, r: number, q: Float64Array, w: number, num: Float64Array): number {
  const C = p.C;
  const off = r * C;
  const s0 = p.activeOffsets[r];
  const s1 = p.activeOffsets[r + 1];
  let qsum = 0;
  for (let i = 0; i < C; i++) qsum += q[i];
  // Pass 1: global dustbin factors.
  let F = 0;
  let U = 0;
  for (let s = s0; s < s1; s++) {
    const S = p.specialists[p.activeIds[s]].classes;
    const nOut = C - S.length;
    if (nOut === 0) continue;
    const pd = p.pm[p.pmOffsets[s] + S.length];
    if (!(pd > 0)) continue;
    let qin = 0;
    for (let t = 0; t < S.length; t++) qin += q[S[t]];
    const qout = qsum - qin;
    if (qout > 1e-300) F += pd / qout;
    else U += pd / nOut;
  }
  for (let i = 0; i < C; i++) num[i] = w * (F * q[i] + U);
  // Pass 2: each specialist's own classes: replace the dustbin term by the special cell's probability.
  for (let s = s0; s < s1; s++) {
    const S = p.specialists[p.activeIds[s]].classes;
    const po = p.pmOffsets[s];
    const nOut = C - S.length;
    let f = 0;
    let u = 0;
    if (nOut > 0) {
      const pd = p.pm[po + S.length];
      if (pd > 0) {
        let qin = 0;
        for (let t = 0; t < S.length; t++) qin += q[S[t]];
        const qout = qsum - qin;
        if (qout > 1e-300) f = pd / qout;
        else u = pd / nOut;
      }
    }
    for (let t = 0; t < S.length; t++) {
      const i = S[t];
      num[i] += w * (p.pm[po + t] - f * q[i] - u);
    }
  }
  let total = 0;
  for (let i = 0; i < C; i++) {
    const v = num[i] + p.pg[off + i];
    num[i] = v > 0 ? v : 0; // guards round-off below zero
    total += num[i];
  }
  return total;
}
