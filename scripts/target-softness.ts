/**
 * How the ensemble's soft targets on the transfer set differ from the generalist's: argmax
 * accuracy, mean entropy (nats) and mean probability of the true class of each, over the rows a
 * student read. Reads a run's `ensemble/soft-targets-train.arrow` and the generalist's logits
 * cached by its `student_self` stage (`student_self/teacher-logits.arrow`, one row per transfer
 * row); the transfer rows are recomputed from the fraction and the run's seed as the distill
 * stage selects them. Also prints `tau_matching_generalist`: the teacher temperature (the distill
 * stage's `teacher_temperature`) at which the ensemble's q, tempered, has the generalist's mean
 * entropy (over every 10th transfer row).
 *
 *   npx tsx scripts/target-softness.ts <run folder> <transfer fraction> <run seed>
 *   e.g. npx tsx scripts/target-softness.ts artifacts/glyphs-1k-tiny16-budget 0.5 1
 */
import path from 'node:path';
import { readPredictionsFile } from '../src/data/predictions-stream.ts';
import { readLogits } from '../src/distill/logit-cache.ts';
import { selectTransfer } from '../pipeline/stages/transfer.ts';
import { meanTemperedEntropy, temperatureForEntropy } from '../src/distill/temper.ts';

async function main(): Promise<void> {
  const [run, fractionArg, seedArg] = process.argv.slice(2);
  const fraction = Number(fractionArg);
  const seed = Number(seedArg);
  if (!run || !(fraction > 0 && fraction <= 1) || !Number.isInteger(seed)) {
    console.error('usage: npx tsx scripts/target-softness.ts <run folder> <transfer fraction in (0, 1]> <run seed>');
    process.exit(2);
  }
  const q = await readPredictionsFile(path.join(run, 'ensemble', 'soft-targets-train.arrow'), 'probabilities');
  const C = q.C;
  const g = await readLogits(path.join(run, 'student_self', 'teacher-logits.arrow'));
  // An ensemble run with `train_transfer` wrote q for the transfer rows only (in their order):
  // then q's rows are the transfer rows themselves.
  const rows = q.metadata.has('transfer_rows') ? Int32Array.from({ length: q.n }, (_, i) => i) : selectTransfer(q.labels, C, fraction < 1 ? { fraction } : {}, seed);
  if (g.n !== rows.length || g.C !== C) {
    console.error(`student_self/teacher-logits.arrow has ${g.n} rows of ${g.C} classes; the transfer set of fraction ${fraction}, seed ${seed} has ${rows.length} rows of ${C}: wrong fraction or seed?`);
    process.exit(2);
  }
  const acc = { q: 0, g: 0 };
  const entropy = { q: 0, g: 0 };
  const pTrue = { q: 0, g: 0 };
  const p = new Float64Array(C);
  for (let j = 0; j < rows.length; j++) {
    const o = rows[j]! * C;
    const og = j * C;
    const y = q.labels[rows[j]!]!;
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, g.logits[og + c]!);
    let s = 0;
    for (let c = 0; c < C; c++) s += (p[c] = Math.exp(g.logits[og + c]! - m));
    let aq = 0;
    let ag = 0;
    for (let c = 0; c < C; c++) {
      p[c]! /= s;
      const qq = q.values[o + c]!;
      if (p[c]! > 0) entropy.g -= p[c]! * Math.log(p[c]!);
      if (qq > 0) entropy.q -= qq * Math.log(qq);
      if (qq > q.values[o + aq]!) aq = c;
      if (p[c]! > p[ag]!) ag = c;
    }
    pTrue.q += q.values[o + y]!;
    pTrue.g += p[y]!;
    if (aq === y) acc.q++;
    if (ag === y) acc.g++;
  }
  const n = rows.length;
  const per = (v: { q: number; g: number }) => ({ ensemble: v.q / n, generalist: v.g / n });
  const every10 = rows.filter((_, j) => j % 10 === 0);
  const tau = temperatureForEntropy(q.values, C, entropy.g / n, every10, 24);
  const tempered = meanTemperedEntropy(q.values, C, tau, every10);
  console.log(JSON.stringify({ rows: n, classes: C, accuracy: per(acc), entropy_nats: per(entropy), p_true: per(pTrue), tau_matching_generalist: tau, ensemble_entropy_at_tau: tempered }));
}

await main();
