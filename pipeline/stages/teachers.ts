/**
 * Teacher targets of a distillation stage: the (combined) logits of earlier model stages on the
 * transfer set, computed once without gradient and cached as Arrow; or the precomputed
 * probabilities an earlier stage wrote to `soft-targets-train.arrow`.
 */
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { sha256, sha256File, stableStringify } from '../../src/artifacts/hash.ts';
import { openPredictionsStream, PREDICTION_BATCH_ROWS } from '../../src/data/predictions-stream.ts';
import { selectTransfer, transferSchema } from './transfer.ts';
import { readLogits, writeLogits } from '../../src/distill/logit-cache.ts';
import { computeTeacherLogits, type EnsembleMode } from '../../src/distill/teacher.ts';
import { loadModel, MODEL_JSON, WEIGHTS_BIN } from '../../src/models/io.ts';
import { ArtifactError, DataError } from '../../src/util/errors.ts';
import { silentLogger, type Logger } from '../../src/util/log.ts';
import { failpoint } from '../../src/util/failpoint.ts';

/** File a multi-model stage (e.g. `train-ensemble`) writes to list its members' model folders. */
export const MEMBERS_FILE = 'members.json';
/** File name of the teacher-logit cache in a distillation stage's folder. */
export const TEACHER_LOGITS_FILE = 'teacher-logits.arrow';
/** File an ensemble stage writes with its probabilities on the train split. */
export const SOFT_TARGETS_FILE = 'soft-targets-train.arrow';
/** File an ensemble stage writes with its probabilities on the unlabeled rows (`unlabeled_targets`). */
export const SOFT_TARGETS_UNLABELED_FILE = 'soft-targets-unlabeled.arrow';

/** Content of {@link MEMBERS_FILE}: model folders relative to the stage folder. */
export interface MembersFile {
  members: string[];
}

/**
 * The model folders a finished stage holds: `<dir>/model/` for a single model, or each folder
 * listed in `<dir>/members.json` for a stage that trained several.
 * @throws ArtifactError when the stage folder has neither.
 */
export function modelDirsOf(stageDir: string, stage: string): string[] {
  if (existsSync(path.join(stageDir, 'model', MODEL_JSON))) return [path.join(stageDir, 'model')];
  const membersFile = path.join(stageDir, MEMBERS_FILE);
  if (existsSync(membersFile)) {
    let parsed: MembersFile;
    try {
      parsed = JSON.parse(readFileSync(membersFile, 'utf8')) as MembersFile;
    } catch (e) {
      throw new ArtifactError(`cannot read ${membersFile}: ${(e as Error).message}; rerun stage '${stage}' with --force`);
    }
    if (!Array.isArray(parsed.members) || parsed.members.length === 0 || !parsed.members.every((m) => typeof m === 'string')) {
      throw new ArtifactError(`${membersFile} must be {"members": ["<model folder>", ...]}; rerun stage '${stage}' with --force`);
    }
    return parsed.members.map((m) => path.join(stageDir, m));
  }
  throw new ArtifactError(`stage '${stage}' (${stageDir}) holds no model: expected model/${MODEL_JSON} or ${MEMBERS_FILE}; is it a model stage (train, generalist, distill, train-ensemble)?`);
}

/** Identity of a set of model folders: hashes of their model.json and weights.bin. */
async function modelsFingerprint(dirs: string[]): Promise<string[]> {
  return Promise.all(dirs.map(async (d) => `${await sha256File(path.join(d, MODEL_JSON))}:${await sha256File(path.join(d, WEIGHTS_BIN))}`));
}

/** Options of {@link cachedTeacherLogits}. */
export interface TeacherLogitsOptions {
  /** Model folders of the teacher (one model, or every member of an ensemble). */
  modelDirs: string[];
  /** How several members are combined (see `combineTeachers`). */
  combine: EnsembleMode;
  /** Transfer-set inputs, `n x dim` row-major. */
  x: Float32Array;
  n: number;
  dim: number;
  /** Identity of the transfer set (e.g. a hash of its row indices), recorded in the cache. */
  transferKey: string;
  /** Cache files to look in first (e.g. a scratch folder that survives a crash). */
  lookIn?: string[];
  /** Where to write the logits (Arrow, see `logit-cache.ts`). */
  writeTo: string[];
  batchSize?: number;
  log?: Logger;
}

/**
 * Teacher logits (`n x C`) on the transfer set: read from the first cache file in `lookIn`
 * whose metadata key matches (same teacher weights, combination and transfer set), else
 * computed with `computeTeacherLogits` (inference mode, no gradient tape) from the models
 * loaded from `modelDirs`. The result is written to every file in `writeTo`.
 * @throws ArtifactError when a teacher model cannot be loaded.
 */
export async function cachedTeacherLogits(o: TeacherLogitsOptions): Promise<{ logits: Float32Array; C: number; cached: boolean }> {
  const log = o.log ?? silentLogger;
  const key = sha256(stableStringify({ v: 1, models: await modelsFingerprint(o.modelDirs), combine: o.combine, transfer: o.transferKey, n: o.n, dim: o.dim }));
  for (const f of o.lookIn ?? []) {
    if (!existsSync(f)) continue;
    try {
      const c = await readLogits(f);
      if (c.meta.key === key && c.n === o.n) {
        log.info(`teacher logits: reusing ${f}`);
        for (const w of o.writeTo) if (path.resolve(w) !== path.resolve(f)) await fs.copyFile(f, w);
        return { logits: c.logits, C: c.C, cached: true };
      }
    } catch (e) {
      log.warn(`ignoring the teacher-logit cache ${f}: ${(e as Error).message}`);
    }
  }
  const models: tf.LayersModel[] = [];
  try {
    for (const d of o.modelDirs) models.push(await loadModel(d));
    const logits = computeTeacherLogits(models, o.x, o.n, o.dim, o.combine, o.batchSize ?? 500, log);
    const C = o.n > 0 ? logits.length / o.n : 0;
    const meta = { key, combine: o.combine, members: String(o.modelDirs.length), transfer: o.transferKey };
    for (const w of o.writeTo) {
      await writeLogits(w, logits, o.n, C, meta);
      failpoint('teacher-logits-written');
    }
    return { logits, C, cached: false };
  } finally {
    for (const m of models) m.dispose();
  }
}

/**
 * Precomputed teacher probabilities for the rows `rows` of a split, from the
 * `soft-targets-<split>.arrow` of stage `stage` (columns `label` + `probabilities`, one row per
 * row of the ingested split, in its order; `unlabeled` rows have label -1). The file is streamed a
 * block of rows at a time and only the wanted rows are kept, so it may be larger than memory (and
 * than the 2 GiB a single file read can return: 600,000 rows x 1,000 classes is 2.4 GB).
 * @param labels the split's labels, to check the file lines up with it
 * @param rows the split's rows wanted, in this order (a row may repeat); null: every row
 * @throws ArtifactError when the file is missing or does not line up with the split; DataError
 *   when a wanted row is not a probability distribution.
 */
export async function readSoftTargets(stageDir: string, stage: string, labels: Int32Array, rows: Int32Array | null, split: 'train' | 'unlabeled' = 'train'): Promise<{ probabilities: Float32Array; C: number }> {
  const name = split === 'train' ? SOFT_TARGETS_FILE : SOFT_TARGETS_UNLABELED_FILE;
  const file = path.join(stageDir, name);
  if (!existsSync(file)) {
    const how = split === 'train' ? 'teacher_targets must name a stage that writes it (an ensemble stage with train_targets: true)' : "set unlabeled_targets: true on that ensemble stage (needed by transfer.source 'unlabeled' / 'both')";
    throw new ArtifactError(`stage '${stage}' wrote no ${name} (${file}); ${how}`);
  }
  const N = labels.length;
  const m = rows ? rows.length : N;
  // first[r]: the first output position wanting split row r (-1: none); next[j]: the next position wanting the same row.
  const first = new Int32Array(N).fill(-1);
  const next = new Int32Array(m).fill(-1);
  for (let j = m - 1; j >= 0; j--) {
    const r = rows ? rows[j]! : j;
    if (!(r >= 0 && r < N)) throw new RangeError(`readSoftTargets: row ${r} is outside the ${split} split (${N} rows)`);
    next[j] = first[r]!;
    first[r] = j;
  }
  const stream = await openPredictionsStream(file, 'probabilities');
  const C = stream.C;
  const misaligned = (what: string): ArtifactError => new ArtifactError(`${file} ${what}; the soft targets are not aligned with the ${split} split, were both made from the same ingest stage? Rerun '${stage}'`);
  // An ensemble with `train_transfer` wrote the rows of that transfer set only: row i of the file is split row fileRows[i].
  let fileRows: Int32Array | null = null;
  try {
    fileRows = split === 'train' ? writtenRows(stream.metadata, labels, C, file, stage) : null;
  } catch (e) {
    await stream.close();
    throw e;
  }
  const total = fileRows ? fileRows.length : N;
  if (fileRows) {
    const inFile = new Uint8Array(N);
    for (const r of fileRows) inFile[r] = 1;
    for (let j = 0; j < m; j++) {
      const r = rows ? rows[j]! : j;
      if (!inFile[r]) {
        await stream.close();
        throw new ArtifactError(`stage '${stage}' wrote soft targets for ${fileRows.length} of the ${N} train rows only (train_transfer: ${stream.metadata.get('transfer')}), and this transfer set needs train row ${r}, which is not among them: give this stage the same transfer (fraction / omit_classes / only_classes / seed) as '${stage}'.train_transfer, or widen that and rerun '${stage}'`);
      }
    }
  }
  const out = new Float32Array(m * C);
  let seen = 0;
  try {
    for await (const chunk of stream.chunks(PREDICTION_BATCH_ROWS)) {
      if (chunk.start + chunk.n > total) throw misaligned(fileRows ? `has more than the ${total} rows of its train_transfer` : `has more than the ${split} split's ${N} rows`);
      for (let i = 0; i < chunk.n; i++) {
        const r = fileRows ? fileRows[chunk.start + i]! : chunk.start + i;
        if (chunk.labels[i] !== labels[r]) throw misaligned(`: row ${r} has label ${chunk.labels[i]} but the ${split} split's row ${r} has ${labels[r]}`);
        if (first[r] === -1) continue;
        const src = chunk.values.subarray(i * C, (i + 1) * C);
        let s = 0;
        for (let c = 0; c < C; c++) {
          const v = src[c]!;
          if (!(v >= 0)) throw new DataError(`${file}: row ${r} has probability ${v} for class ${c}; probabilities must be >= 0`);
          s += v;
        }
        if (Math.abs(s - 1) > 1e-3) throw new DataError(`${file}: row ${r}'s probabilities sum to ${s}, not 1`);
        for (let j = first[r]!; j !== -1; j = next[j]!) out.set(src, j * C);
      }
      seen = chunk.start + chunk.n;
    }
  } finally {
    await stream.close();
  }
  if (seen !== total) throw misaligned(fileRows ? `has ${seen} rows but its train_transfer selects ${total}` : `has ${seen} rows but the ${split} split has ${N}`);
  return { probabilities: out, C };
}

/**
 * The train rows a soft-targets file holds when its ensemble stage combined only a transfer set
 * (`train_transfer`: schema metadata `transfer`, `transfer_seed`, `transfer_rows`), recomputed from
 * the split's labels exactly as the ensemble selected them; null for a file of every row.
 */
function writtenRows(meta: Map<string, string>, labels: Int32Array, C: number, file: string, stage: string): Int32Array | null {
  const raw = meta.get('transfer');
  if (raw === undefined) return null;
  const damaged = (what: string): ArtifactError => new ArtifactError(`${file}: ${what} in its metadata; rerun '${stage}' with --force`);
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw damaged(`'transfer' is not JSON (${raw})`);
  }
  const spec = transferSchema.safeParse(json);
  if (!spec.success) throw damaged(`'transfer' is not a transfer spec (${raw})`);
  const seed = Number(meta.get('transfer_seed'));
  const count = Number(meta.get('transfer_rows'));
  if (!Number.isInteger(seed) || !Number.isInteger(count)) throw damaged("'transfer_seed' / 'transfer_rows' missing or not integers");
  const rows = selectTransfer(labels, C, spec.data, seed);
  if (rows.length !== count) throw new ArtifactError(`${file} holds the ${count} rows of its train_transfer, but on this train split that selects ${rows.length}; were both made from the same ingest stage? Rerun '${stage}'`);
  return rows;
}

/** Natural log of probabilities (floored at 1e-30): logits up to a per-row constant. */
export function logOfProbabilities(p: Float32Array): Float32Array {
  const out = new Float32Array(p.length);
  for (let i = 0; i < p.length; i++) out[i] = Math.log(Math.max(p[i]!, 1e-30));
  return out;
}
