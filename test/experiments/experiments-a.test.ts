import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPipeline } from '../../pipeline/runner.ts';
import { initBackend } from '../../src/backend/select.ts';
import { silentLogger } from '../../src/util/log.ts';
import { sharedCacheDir, shrunkConfig, type ShrinkOptions } from './shrink.ts';

const dirs: string[] = [];
beforeAll(async () => {
  await initBackend('wasm');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Runs a shrunk experiment config; returns results.json, results.md and a reader of stage files. */
async function run(name: string, o: ShrinkOptions) {
  const out = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  dirs.push(out);
  await runPipeline(shrunkConfig(name, o), { out, log: silentLogger, cacheDir: sharedCacheDir(), backend: 'wasm' });
  const read = (...p: string[]) => readFileSync(path.join(out, ...p), 'utf8');
  return { json: JSON.parse(read('results', 'results.json')) as Record<string, unknown>, md: read('results', 'results.md'), read };
}

describe('experiment configs, small versions (MNIST subset: 2,000 train / 500 valid / 1,000 test)', () => {
  it('mnist-paper: teacher, hard-label baseline, distilled student', async () => {
    const r = await run('mnist-paper', { epochs: 3, width: 64, override: { teacher: { hidden: [128, 128], jitter: 1, epochs: 4 }, teacher_60k: { hidden: [128, 128], jitter: 1, epochs: 4 }, teacher_restart: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_60k_restart: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_60k_seed2: { hidden: [128, 128], jitter: 1, epochs: 4 }, teacher_60k_seed3: { hidden: [128, 128], jitter: 1, epochs: 4 }, teacher_sgd: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_60k_sgd: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_idrop01: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_60k_idrop01: { hidden: [128, 128], jitter: 1, epochs: 2 }, teacher_60k_idrop01_seed2: { hidden: [128, 128], jitter: 1, epochs: 2 } } });
    for (const k of ['teacher_errors', 'baseline_errors', 'distilled_errors']) {
      expect(Number.isInteger(r.json[k]), k).toBe(true);
      expect(r.json[k] as number).toBeGreaterThan(0);
      expect(r.json[k] as number).toBeLessThan(900); // better than chance (900 errors of 1,000)
    }
    // the reported teacher (teacher_60k_idrop01, input dropout 0.1) is trained on train + valid (last
    // epoch; no valid errors), its student is distilled_60k_idrop01 (T = 4, alpha = 0.5); the earlier
    // reported pair, the valid-selected teacher and its students are rows too
    expect(r.json).toMatchObject({ test_examples: 1000, T: 4, alpha: 0.5, paper: { teacher_errors: 67, baseline_errors: 146, distilled_errors: 74 } });
    expect(r.md).toMatch(/\| teacher 2x128, dropout 0.1\/0.5, max-norm 3.5, hard labels, jitter 1, Adam, 2 epochs, trained on train \+ valid \(2,500 rows\), last epoch .*\| [\d.]+% \| \(trained on\) \| 67 \|/);
    expect(JSON.parse(r.read('distilled_60k_idrop01', 'metrics.json'))).toMatchObject({ teacher: ['teacher_60k_idrop01'], T: 4, alpha: 0.5 });
    expect(r.md).toMatch(/\| control 'teacher_60k': 2x128, dropout 0.2\/0.5, max-norm 3.5, hard labels, jitter 1, Adam, 4 epochs, trained on train \+ valid \(2,500 rows\), last epoch \| \d+ \|/);
    expect(r.md).toMatch(/\| control 'distilled_60k': 2x64, distilled \(T=4, alpha=0.5\), jitter 2, Adam, \d+ epochs \| \d+ \| \d+ \| [\d.]+% \| \d+ \(teacher trained on valid\) \| - \|/);
    expect(r.md).toMatch(/\| control 'distilled_60k_idrop01_seed2': 2x64, distilled \(T=4, alpha=0.5\), jitter 2, Adam, \d+ epochs \| \d+ \| \d+ \| [\d.]+% \| \d+ \(teacher trained on valid\) \| - \|/);
    expect(JSON.parse(r.read('distilled_60k_idrop01_seed2', 'metrics.json'))).toMatchObject({ teacher: ['teacher_60k_idrop01_seed2'] });
    expect(r.md).toMatch(/\| control 'teacher_60k_seed3': 2x128, .*last epoch, seed 3 \| \d+ \|/);
    expect(r.json.not_run).toEqual([]);
    // its student never saw the valid rows, but its teacher did: the valid errors are flagged
    expect(r.md).toMatch(/\| student 2x64, distilled \(T=4, alpha=0.5\), jitter 2, Adam, \d+ epochs \| \d+ \| \d+ \| [\d.]+% \| \d+ \(teacher trained on valid\) \| 74 \|/);
    expect(r.md).toMatch(/\| control 'teacher': 2x128, dropout 0.2\/0.5, max-norm 3.5, hard labels, jitter 1, Adam, \d+ epochs \| \d+ \| \d+ \| [\d.]+% \| \d+ \| - \|/);
    expect(r.md).toMatch(/\| control 'distilled_mix_t4': 2x64, distilled \(T=4, alpha=0.5\), jitter 2, Adam, \d+ epochs \| \d+ \| \d+ \| [\d.]+% \| \d+ \| - \|/); // its teacher did not see valid
    expect(JSON.parse(r.read('teacher_60k', 'metrics.json'))).toMatchObject({ trained_on: 'train+valid', train_examples: 2500, best_epoch: 4 });
    expect(JSON.parse(r.read('distilled_60k', 'metrics.json'))).toMatchObject({ teacher: ['teacher_60k'], T: 4, alpha: 0.5 });
    expect(r.md).toMatch(/\| control 'distilled': 2x64, distilled \(T=20, alpha=1\), jitter 2, Adam, \d+ epochs \| \d+ \|/);
    expect(r.md).toMatch(/\| control 'distilled_mix': 2x64, distilled \(T=20, alpha=0.5\), jitter 2, Adam, \d+ epochs \| \d+ \|/);
    expect(r.md).toMatch(/\| control 'hard_jitter': 2x64, hard labels, jitter 2, Adam, \d+ epochs \| \d+ \|/);
    expect(r.md).toMatch(/\| control 'distilled_plain': 2x64, distilled \(T=20, alpha=1\), no jitter, Adam, \d+ epochs \| \d+ \|/);
    expect(r.json).toMatchObject({ distilled_jitter: 2, controls: { hard_jitter: { training: expect.stringMatching(/^2x64, hard labels, jitter 2, Adam, \d+ epochs$/) }, distilled_plain: {} } });
    // the second cosine cycles start from their teachers' models (init_from) and keep the last epoch
    expect(JSON.parse(r.read('teacher_restart', 'metrics.json'))).toMatchObject({ trained_on: 'train', best_epoch: 2 });
    expect(r.md).toMatch(/\| control 'teacher_restart': 2x128, dropout 0.2\/0.5, max-norm 3.5, hard labels, jitter 1, Adam, \d+ epochs, continued from 'teacher' \| \d+ \| \d+ \|/);
    expect(JSON.parse(r.read('teacher_60k_restart', 'metrics.json'))).toMatchObject({ trained_on: 'train+valid', train_examples: 2500, best_epoch: 2 });
    expect(r.md).toMatch(/\| control 'teacher_60k_restart': 2x128, .*continued from 'teacher_60k', trained on train \+ valid \(2,500 rows\), last epoch \| \d+ \| \d+ \| [\d.]+% \| \(trained on\) \| - \|/);
    // the SGD teachers' rows name their optimizer (otherwise they would read like the Adam teacher's)
    expect(r.md).toMatch(/\| control 'teacher_sgd': 2x128, dropout 0.2\/0.5, max-norm 3.5, hard labels, jitter 1, SGD momentum 0.5->0.9, 2 epochs \| \d+ \| \d+ \|/);
    expect(r.md).toMatch(/\| control 'teacher_60k_sgd': 2x128, .*SGD momentum 0.5->0.9, 2 epochs, trained on train \+ valid \(2,500 rows\), last epoch \| \d+ \|/);
    // the reported teacher's recipe from seed 2: a row and the spread of the teacher's errors
    const seeds = r.json.teacher_seeds as { runs: number; errors: number[]; other_seeds: string[] };
    expect(seeds).toMatchObject({ runs: 2, other_seeds: ['teacher_60k_idrop01_seed2'] });
    expect(seeds.errors[0]).toBe(r.json.teacher_errors);
    expect(r.md).toMatch(/\| teacher's recipe, another seed 'teacher_60k_idrop01_seed2': 2x128, dropout 0.1\/0.5, .*last epoch, seed 2 \| \d+ \|/);
    expect(r.md).toMatch(/- the teacher's recipe from 2 seeds \(the reported teacher, 'teacher_60k_idrop01_seed2'\): \d+, \d+ test errors; mean [\d.]+, range \d+-\d+/);
    const d = JSON.parse(r.read('distilled', 'metrics.json'));
    expect(d).toMatchObject({ teacher: ['teacher'], transfer_examples: 2000, T: 20, teacher_online: true });
    expect(JSON.parse(r.read('distilled_plain', 'metrics.json'))).toMatchObject({ teacher_online: false });
  });

  it('mnist-temperature: a table of test errors per width and temperature', async () => {
    const r = await run('mnist-temperature', { epochs: 2, width: 64, override: { teacher: { hidden: [128, 128], jitter: 0 }, sweep: { temperatures: [2.5, 20] } } });
    expect(r.json).toMatchObject({ widths: [30, 64], temperatures: [2.5, 20], depth: 2 });
    const errors = r.json.errors as Record<string, Record<string, number>>;
    expect(Object.keys(errors).sort()).toEqual(['30', '64']);
    for (const w of ['30', '64']) {
      expect(Object.keys(errors[w]!).sort()).toEqual(['2.5', '20', 'hard']);
      for (const e of Object.values(errors[w]!)) expect(e).toBeGreaterThan(0);
    }
    expect(r.md).toContain('| hidden units per layer | hard labels | T=2.5 | T=20 | best T |');
    expect(r.md).toMatch(/\| 2 x 30 \| \d+ \| \d+ \| \d+ \| (2\.5|20) \|/);
  });

  it('mnist-omit-3: no 3 in the transfer set; class-3 bias chosen on valid', async () => {
    const r = await run('mnist-omit-3', { epochs: 3, width: 64, override: { teacher: { hidden: [128, 128], jitter: 0 } } });
    const ingest = JSON.parse(r.read('ingest', 'classes.json')) as { classes: { counts: { train: number; test: number } }[] };
    expect(r.json).toMatchObject({
      omitted_class: 3,
      test_examples: 1000,
      class_examples: ingest.classes[3]!.counts.test,
      transfer_examples: 2000 - ingest.classes[3]!.counts.train,
      bias_offset_chosen_on: 'valid',
      paper: { errors_before: 206, errors_after: 109 },
    });
    expect(r.json.bias_offset as number).toBeGreaterThanOrEqual(0);
    expect(r.json.bias_offset as number).toBeLessThanOrEqual(12);
    const b = JSON.parse(r.read('bias', 'metrics.json'));
    expect(b.after.valid.errors).toBeLessThanOrEqual(b.before.valid.errors);
    // raising class 3's bias can only turn predictions into 3s: test 3s correct can only go up
    expect(r.json.class_errors_after as number).toBeLessThanOrEqual(r.json.class_errors_before as number);
  });
});
