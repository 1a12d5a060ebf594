/**
 * How closely each distilled student matches its own teacher on the test split: mean KL(teacher ||
 * student) in nats, the share of cases where their argmaxes agree, the teacher's and the student's
 * accuracy, and the mean entropy of each. A student of the ensemble that ends no better than the
 * self-distilled control may have learned less of a better teacher: this says how much less.
 * The teachers' test outputs are the run's own files: the ensemble's q in
 * `ensemble/predictions-test.arrow` (probabilities), the generalist's logits in
 * `covariance/predictions-test.arrow`; the students are run on `ingest/test.arrow`.
 *
 *   npx tsx scripts/teacher-fit.ts <run folder> <student stage>:ensemble|generalist [...]
 *   e.g. npx tsx scripts/teacher-fit.ts /work/runs/unl student:ensemble student_self:generalist
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { readPredictionsFile } from '../src/data/predictions-stream.ts';
import { readSplit } from '../src/data/split-file.ts';
import { loadModel } from '../src/models/io.ts';
import { predictLogits } from '../src/models/predict.ts';
import { initBackend } from '../src/backend/select.ts';
import { argmaxRows } from '../src/ensemble/metrics.ts';
import { softmaxRows } from '../src/specialists/specialist-train.ts';

async function main(): Promise<void> {
  const [run, ...pairs] = process.argv.slice(2);
  const parsed = pairs.map((s) => s.split(':'));
  if (!run || parsed.length === 0 || parsed.some((p) => p.length !== 2 || (p[1] !== 'ensemble' && p[1] !== 'generalist'))) {
    console.error('usage: npx tsx scripts/teacher-fit.ts <run folder> <student stage>:ensemble|generalist [...]');
    process.exit(2);
  }
  await initBackend('auto');
  const test = await readSplit(path.join(run, 'ingest', 'test.arrow'));
  const n = test.n;
  const teachers = {
    ensemble: await readPredictionsFile(path.join(run, 'ensemble', 'predictions-test.arrow'), 'probabilities'),
    generalist: await readPredictionsFile(path.join(run, 'covariance', 'predictions-test.arrow')),
  };
  const C = teachers.ensemble.C;
  const probs = { ensemble: teachers.ensemble.values, generalist: softmaxRows(teachers.generalist.values, n, C) };
  for (const t of Object.values(teachers)) {
    if (t.n !== n || t.C !== C) throw new Error(`a teacher file has ${t.n} x ${t.C}, the test split ${n} x ${C}`);
    for (let i = 0; i < n; i++) if (t.labels[i] !== test.y[i]) throw new Error(`test row ${i}: a teacher file's label differs from ingest/test.arrow`);
  }
  for (const [stage, teacher] of parsed as [string, 'ensemble' | 'generalist'][]) {
    const model = await loadModel(path.join(run, stage, 'model'));
    const s = softmaxRows(predictLogits(model, test.x, n, test.dim), n, C);
    model.dispose();
    const q = probs[teacher];
    const at = argmaxRows(q, n, C);
    const as = argmaxRows(s, n, C);
    let kl = 0;
    let agree = 0;
    let accT = 0;
    let accS = 0;
    let hT = 0;
    let hS = 0;
    for (let i = 0; i < n; i++) {
      const o = i * C;
      for (let c = 0; c < C; c++) {
        const a = q[o + c]!;
        const b = Math.max(s[o + c]!, 1e-30);
        if (a > 0) {
          kl += a * Math.log(a / b);
          hT -= a * Math.log(a);
        }
        hS -= b * Math.log(b);
      }
      if (at[i] === as[i]) agree++;
      if (at[i] === test.y[i]) accT++;
      if (as[i] === test.y[i]) accS++;
    }
    console.log(JSON.stringify({ student: stage, teacher, cases: n, kl_teacher_student: kl / n, argmax_agreement: agree / n, teacher_accuracy: accT / n, student_accuracy: accS / n, teacher_entropy: hT / n, student_entropy: hS / n }));
  }
  if (tf.memory().numTensors > 0) console.error(`note: ${tf.memory().numTensors} tensors left`);
}

await main();
