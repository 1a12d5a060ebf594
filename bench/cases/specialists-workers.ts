import * as tf from '@tensorflow/tfjs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeSynthetic } from '../../datasets/synthetic.ts';
import { getBlasThreads } from '../../src/backend/native.ts';
import { ingest } from '../../src/data/ingest.ts';
import { readSplit } from '../../src/data/split-file.ts';
import { saveModel } from '../../src/models/io.ts';
import { buildMlp } from '../../src/models/mlp.ts';
import { hardLoss, trainModel } from '../../src/models/train.ts';
import { SPECIALIST_JOB_MODULE, type SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import { DONE_MARKER, runJobPool, threadsPerWorker, type Job } from '../../src/specialists/worker-pool.ts';
import type { BenchCase, BenchContext, BenchMeasurement } from '../types.ts';

/** The synthetic problem: C classes in G groups (class c in group c mod G); one specialist per group. */
const C = 40;
const G = 4;

/**
 * Size of the problem. The full size makes each specialist job train for several seconds (an
 * MNIST-sized 784-800-800 network on 16,800 training rows), so that what 2 processes give on 2
 * cores is not hidden by the second or two each worker process needs to start (tsx, tfjs, wasm,
 * loading the generalist): the earlier 64-256-256 problem measured process start-up, not training.
 */
export interface SpecialistsSize {
  dim: number;
  hidden: number[];
  perClass: number;
  epochs: number;
}
/** Bench sizes: `quick` for `--quick` (a smoke run), `full` otherwise. */
export const SPECIALISTS_SIZES: Record<'quick' | 'full', SpecialistsSize> = {
  quick: { dim: 64, hidden: [256, 256], perClass: 100, epochs: 1 },
  full: { dim: 784, hidden: [800, 800], perClass: 600, epochs: 2 },
};

/** Files of the synthetic specialists problem. */
export interface SpecialistsProblem {
  dir: string;
  dataDir: string;
  generalistDir: string;
}

/** Synthetic data (datasets/synthetic.ts) ingested into `<dir>/ingest`, and a generalist trained briefly on it. */
export async function makeSpecialistsProblem(dir: string, size: SpecialistsSize): Promise<SpecialistsProblem> {
  const raw = path.join(dir, 'synthetic.arrow');
  await makeSynthetic(raw, { classes: C, groups: G, dim: size.dim, perClass: size.perClass, seed: 1 });
  const dataDir = path.join(dir, 'ingest');
  await ingest({ input: raw, outDir: dataDir, seed: 1, validFraction: 0.1, testFraction: 0.2 });
  const train = await readSplit(path.join(dataDir, 'train.arrow'));
  const model = buildMlp({ inputDim: size.dim, hidden: size.hidden, outputs: C, activation: 'relu', inputDropout: 0, dropout: 0, maxNorm: null, seed: 1 });
  const generalistDir = path.join(dir, 'generalist', 'model');
  try {
    await trainModel({ model, train, loss: hardLoss, epochs: 1, batchSize: 128, optimizer: { name: 'adam', lr: 0.003 }, seed: 1, select: 'last' });
    await saveModel(model, generalistDir);
  } finally {
    model.dispose();
  }
  return { dir, dataDir, generalistDir };
}

/** One job per group, with the specialists stage's defaults (dustbin head, soft targets at T = 2, fitted correction). */
export function specialistJobs(p: SpecialistsProblem, outRoot: string, epochs: number, backend: string): Job[] {
  return Array.from({ length: G }, (_, g) => {
    const classes = Array.from({ length: C / G }, (_, t) => g + G * t).sort((a, b) => a - b);
    const params: SpecialistJobParams = {
      generalistDir: p.generalistDir,
      trainFile: path.join(p.dataDir, 'train.arrow'),
      validFile: path.join(p.dataDir, 'valid.arrow'),
      classes,
      head: 'dustbin',
      softWeight: 1,
      T: 2,
      correction: 'fitted',
      epochs,
      batchSize: 128,
      optimizer: { name: 'sgd', lr: 0.01, momentum: 0.9, nesterov: false },
      seed: 1000 * (g + 1),
      specialFraction: 0.5,
      dustbinInit: 'logistic',
      backend,
    };
    const id = `specialist-${String(g).padStart(2, '0')}`;
    return { id, outDir: path.join(outRoot, id), params };
  });
}

/** Sum of the jobs' own durations (the pool's `done` markers: from mkdir to the job's end, process start-up included). */
async function jobSeconds(jobs: Job[]): Promise<number> {
  let sum = 0;
  for (const j of jobs) sum += (JSON.parse(await readFile(path.join(j.outDir, DONE_MARKER), 'utf8')) as { seconds: number }).seconds;
  return sum;
}

/**
 * The specialists stage's parallel speed-up: `runJobPool` with the real specialist job
 * (`src/specialists/worker-specialist-job.ts`) on a synthetic problem made here (40 classes in 4
 * groups, 784 features, a 784-800-800-40 generalist trained for 1 epoch; 4 specialists of 2
 * epochs; see {@link SPECIALISTS_SIZES}), with 1 worker (in this process, OpenBLAS on every core)
 * and with 2 (child processes, the pool gives each floor(cores / 2) OpenBLAS threads so the cores
 * are not oversubscribed). Reports both wall times, the mean job time and the speed-up. The
 * tensor backend matters here (the jobs train models), so this case runs on wasm-blas, the
 * backend `auto` picks for the pipeline.
 */
export const benchCase: BenchCase = {
  name: 'specialists-workers',
  description: 'specialists stage: 4 specialist jobs with 1 worker (in process) vs 2 worker processes',
  backends: ['wasm-blas'],
  async run(ctx: BenchContext): Promise<BenchMeasurement[]> {
    const size = SPECIALISTS_SIZES[ctx.quick ? 'quick' : 'full'];
    const { perClass, epochs } = size;
    const dir = await mkdtemp(path.join(os.tmpdir(), 'bench-specialists-'));
    const before = tf.memory().numTensors;
    try {
      const problem = await makeSpecialistsProblem(dir, size);
      const cores = os.availableParallelism();
      const times: number[] = [];
      const sums: number[] = [];
      for (const workers of [1, 2]) {
        const jobs = specialistJobs(problem, path.join(dir, `workers-${workers}`), epochs, ctx.backend.name);
        const t0 = performance.now();
        const r = await runJobPool({ module: SPECIALIST_JOB_MODULE, jobs, workers, cores });
        times.push((performance.now() - t0) / 1000);
        if (r.failed.length > 0) throw new Error(`specialists-workers: ${r.failed.length} job(s) failed with ${workers} worker(s): ${r.failed.map((f) => `${f.id}: ${f.error}`).join('; ')}`);
        sums.push(await jobSeconds(jobs));
      }
      const [t1, t2] = times as [number, number];
      const what = `${G} specialists of ${C / G} classes, ${size.dim}-${size.hidden.join('-')} MLP, ${epochs} epochs, ${perClass} rows/class, C ${C}`;
      return [
        { bench: 'specialists-workers-1', value: t1, unit: 's', detail: `${what}; in process, OpenBLAS ${getBlasThreads() ?? '-'} thread(s); jobs ${sums[0]!.toFixed(1)} s in sum` },
        { bench: 'specialists-workers-2', value: t2, unit: 's', detail: `${what}; 2 processes x ${threadsPerWorker(cores, 2)} OpenBLAS thread(s), ${cores} cores; jobs ${sums[1]!.toFixed(1)} s in sum (a fresh process each)` },
        { bench: 'specialists-workers-speedup', value: t1 / t2, unit: 'x', detail: `2 workers vs 1 (wall time); mean job ${(sums[0]! / G).toFixed(1)} s in process vs ${(sums[1]! / G).toFixed(1)} s in a worker; load average ${os.loadavg()[0]!.toFixed(1)} on ${cores} cores` },
      ];
    } finally {
      await rm(dir, { recursive: true, force: true });
      const leaked = tf.memory().numTensors - before;
      if (leaked > 0) ctx.log.warn(`specialists-workers: ${leaked} tensors left over`);
    }
  },
};
