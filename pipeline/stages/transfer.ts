/**
 * The transfer set of a distillation: which rows of the TRAIN split the student is trained on
 * (paper section 3: the whole training set, the training set without any 3, only 7s and 8s,
 * or a small fraction of it), and whether the dataset's UNLABELED rows join them or replace them
 * (the paper's "unlabelled transfer set": the teacher labels them). The validation split always
 * stays whole (model selection, bias offsets); the test split is never used for any choice.
 */
import { z } from 'zod';
import { concatSets, readSplit, subset, type LabeledSet } from '../../src/data/split-file.ts';
import { unlabeledFile } from './common.ts';
import { ConfigError, DataError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

/** Config schema of `transfer:` (every key optional; `{}` = the whole training split). */
export const transferSchema = z
  .strictObject({
    /** Keep this fraction of the (class-filtered) rows, stratified by class. Default 1. */
    fraction: z.number().gt(0).max(1).optional(),
    /** Drop every row of these classes (e.g. `[3]`). */
    omit_classes: z.array(z.number().int().min(0)).min(1).optional(),
    /** Keep only rows of these classes (e.g. `[7, 8]`). */
    only_classes: z.array(z.number().int().min(0)).min(1).optional(),
    /**
     * Seed of the `fraction` subset. Default: derived from the run seed and the fraction only,
     * so two stages of one run with the same `fraction` (e.g. a hard-label baseline and a
     * distilled student) draw the same rows.
     */
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    /**
     * Where the rows come from: `train` (the default when absent), `unlabeled` (only the dataset's rows with
     * split = 'unlabeled'; needs a teacher and no hard-label term) or `both` (the selected train
     * rows, then every unlabeled row; the hard-label term is averaged over the batch with the
     * unlabeled rows contributing 0). The class and fraction options select train rows only.
     */
    source: z.enum(['train', 'unlabeled', 'both']).optional(),
  })
  .refine((t) => !(t.omit_classes && t.only_classes), { message: "give either 'omit_classes' or 'only_classes', not both" })
  .refine((t) => t.source !== 'unlabeled' || (t.omit_classes ?? t.only_classes ?? t.fraction) === undefined, { message: "omit_classes / only_classes / fraction select train rows: they do nothing with source 'unlabeled' (use source 'both', or drop them)" })
  .default({});

/** A parsed `transfer:` spec. */
export type TransferSpec = z.output<typeof transferSchema>;

/**
 * Row indices (ascending) of the training split that form the transfer set.
 *
 * Classes are filtered first (`omit_classes` / `only_classes`); then, if `fraction < 1`, each
 * class keeps `round(fraction * count)` of its rows (at least 1 when it has any), drawn without
 * replacement by a seeded shuffle. Stratifying keeps the class balance of small subsets (3% of
 * MNIST is about 160 rows per digit) close to the full split's.
 *
 * @param labels class of each training row.
 * @param C number of classes (class indices in the spec must be below it).
 * @param runSeed the run's seed, used when `spec.seed` is absent.
 * @throws ConfigError for a class index outside `0..C-1`; DataError when the selection is empty.
 */
export function selectTransfer(labels: Int32Array, C: number, spec: TransferSpec, runSeed: number): Int32Array {
  const listed = spec.omit_classes ?? spec.only_classes ?? [];
  const key = spec.omit_classes ? 'omit_classes' : 'only_classes';
  for (const c of listed) {
    if (c >= C) throw new ConfigError(`transfer.${key}: class ${c} does not exist; the data has classes 0..${C - 1}`);
  }
  const keepClass = new Uint8Array(C).fill(1);
  if (spec.omit_classes) for (const c of spec.omit_classes) keepClass[c] = 0;
  if (spec.only_classes) {
    keepClass.fill(0);
    for (const c of spec.only_classes) keepClass[c] = 1;
  }
  const byClass: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l >= 0 && l < C && keepClass[l]) byClass[l]!.push(i);
  }
  const fraction = spec.fraction ?? 1;
  let chosen: number[] = [];
  if (fraction >= 1) {
    for (const rows of byClass) chosen.push(...rows);
  } else {
    const rng = spec.seed !== undefined ? new Rng(spec.seed) : Rng.derive(runSeed, `transfer/fraction/${fraction}`);
    for (const rows of byClass) {
      if (rows.length === 0) continue;
      const k = Math.max(1, Math.round(fraction * rows.length));
      const perm = rng.permutation(rows.length);
      for (let j = 0; j < k; j++) chosen.push(rows[perm[j]!]!);
    }
  }
  chosen = chosen.sort((a, b) => a - b);
  if (chosen.length === 0) {
    throw new DataError(`the transfer set is empty (${JSON.stringify(spec)} of ${labels.length} training rows); check transfer.omit_classes / only_classes / fraction`);
  }
  return Int32Array.from(chosen);
}

/**
 * One line describing a transfer spec, e.g. `train split, without class(es) 3 (48000 rows)` or
 * `train split (50000 rows) + unlabeled rows (200000)`.
 * @param rows train rows selected; `unlabeled`: unlabeled rows added (0 for source `train`)
 */
export function describeTransfer(spec: TransferSpec, rows: number, unlabeled = 0): string {
  if (spec.source === 'unlabeled') return `unlabeled rows (${unlabeled}, labelled by the teacher)`;
  const parts = ['train split'];
  if (spec.omit_classes) parts.push(`without class(es) ${spec.omit_classes.join(', ')}`);
  if (spec.only_classes) parts.push(`only class(es) ${spec.only_classes.join(', ')}`);
  if (spec.fraction !== undefined && spec.fraction < 1) parts.push(`${+(100 * spec.fraction).toFixed(4)}% per class`);
  const train = `${parts.join(', ')} (${rows} rows)`;
  return spec.source === 'both' ? `${train} + unlabeled rows (${unlabeled}, labelled by the teacher)` : train;
}

/**
 * The unlabeled rows an `ingest` stage wrote (`unlabeled.arrow`, label -1 on every row).
 * @throws ConfigError when the dataset had no rows with split = 'unlabeled'.
 */
export async function readUnlabeled(ingestDir: string, stage: string): Promise<LabeledSet> {
  return readSplit(unlabeledFile(ingestDir, stage, 'transfer.source asks for unlabeled rows', 'use transfer.source: train'));
}


/**
 * The transfer set of {@link selectTransfer}'s `rows` of the train split (the split itself when
 * they are all of it), followed by the unlabeled rows `extra` when given (`source: both` or
 * `unlabeled`, where `rows` is empty).
 */
export function transferSet(train: LabeledSet, rows: Int32Array, extra: LabeledSet | null): LabeledSet {
  const trainPart = rows.length === train.n ? train : subset(train, rows);
  return extra ? concatSets(trainPart, extra) : trainPart;
}
