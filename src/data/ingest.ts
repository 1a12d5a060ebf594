import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Data, RecordBatch } from 'apache-arrow';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { failpoint } from '../util/failpoint.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { Rng } from '../util/rng.ts';
import { copyNumeric, dataError, firstNullRow, intValues, stringIds, type TableInput } from './arrow-read.ts';
import { ArrowFileSink, labeledBatch, labeledSchema } from './arrow-write.ts';
import { SPLIT_BATCH_ROWS } from './split-file.ts';
import { openTable } from './table-input.ts';
import { SPLIT_NAMES, UNLABELED_SPLIT, checkClasses, checkShape, firstNonFinite, planIngest, type IngestPlan } from './validate.ts';

export { describeArrowFile } from './arrow-read.ts';
export { describeDataFile } from './table-input.ts';

/** Options of {@link ingest}. */
export interface IngestOptions {
  /** The user's table: an Arrow IPC file (file or stream format) or a Parquet file. */
  input: string;
  /** Folder receiving `train.arrow`, `valid.arrow`, `test.arrow` (and `unlabeled.arrow`), `classes.json`. */
  outDir: string;
  /** Seed of the random split and of `limit` subsets. */
  seed: number;
  /** Fraction of each class held out for validation (when the file has no `valid` rows). */
  validFraction: number;
  /** Fraction of each class held out for test (when the file has no `split` column). */
  testFraction: number;
  /** Keep a seeded random subset of at most this many rows of each split. */
  limit?: { train?: number; valid?: number; test?: number };
  /**
   * Refuse an empty valid or test split (DataError, before anything is written) instead of
   * warning: the pipeline selects checkpoints on valid and scores every model on test.
   */
  requireSplits?: boolean;
  log?: Logger;
}

/** `classes.json`: class names and per-split counts, the feature layout, and row counts. */
export interface ClassesFile {
  classes: { index: number; name: string; counts: { train: number; valid: number; test: number } }[];
  dim: number;
  shape: number[] | null;
  source: string;
  /** Rows per split; `unlabeled` only when the input has rows with split = 'unlabeled'. */
  rows: { train: number; valid: number; test: number; unlabeled?: number };
}

/** File name of the unlabelled rows ingest writes (label -1 on every row). */
export const UNLABELED_FILE = `${UNLABELED_SPLIT}.arrow`;
/** Split code of {@link UNLABELED_SPLIT} rows. */
const UNLABELED = 3;

/** Largest accepted integer class index (guards against ids mistaken for labels). */
export const MAX_CLASS_INDEX = 1_000_000;

const DROPPED = 255;

/**
 * Reads a user's table (Arrow IPC file or stream, or Parquet: see `openTable`), validates it completely, splits it into train/valid/test and
 * writes `train.arrow`, `valid.arrow`, `test.arrow` (each `label: Int32`,
 * `features: FixedSizeList<Float32>[D]`, metadata `shape`) and `classes.json` to `outDir`.
 *
 * Two streaming passes over the input's record batches, so memory does not grow with the
 * features (see "Memory" below):
 * 1. validate every row (labels, split values, nulls, ragged lists, non-finite features) and keep
 *    only the class index (Int32) and split code (one byte) of each row; then choose the splits
 *    and check the classes. Nothing is written unless every check passes.
 * 2. read the batches again and copy each row's features into the record batch being filled for
 *    its split; full batches ({@link SPLIT_BATCH_ROWS} rows) go straight to the three split files
 *    (temp files, renamed into place when complete). The file must not change between the two
 *    passes (size and modification time are compared, and the row count).
 *
 * Splits:
 * - no `split` column: per class (stratified), a seeded random `testFraction` goes to test and
 *   `validFraction` to valid (stochastic rounding, at least one training example per class);
 * - a `split` column without `valid` rows: `validFraction` of each class's train rows (seeded);
 * - `limit`: a seeded random subset of each split (rows keep their input order);
 * - rows with split = `unlabeled` (only with a `split` column): their label is ignored (it may be
 *   null; a class name seen only there is not a class) and they go to `unlabeled.arrow` with
 *   label -1: a transfer set for distillation, or rows for the covariance of the generalist's
 *   predictions. They never enter train, valid or test.
 *
 * Memory: 5 bytes per input row (label and split code), up to 4 more per row while the split is
 * drawn (a row index), one input record batch as Arrow decodes it (Parquet: one row group, only
 * the columns used, as hyparquet decodes it plus its Arrow copy), a conversion buffer of at
 * most 4 MB and three output batches of {@link SPLIT_BATCH_ROWS} x D floats. The outputs are
 * byte-identical to what the earlier in-memory implementation wrote.
 *
 * @throws DataError naming file, column and row for every problem with the input (see
 *   datasets/README.md); ConfigError for bad options.
 */
export async function ingest(opts: IngestOptions): Promise<ClassesFile> {
  const log = opts.log ?? silentLogger;
  checkOptions(opts);
  const file = opts.input;
  const stamp = await fileStamp(file);
  const input = await openTable(file);
  let table: ReadTable;
  let plan: IngestPlan;
  try {
    plan = planIngest(input.schema, file);
    if (plan.ignored.length > 0) log.warn(`${file}: ignoring column(s) ${plan.ignored.join(', ')}`);
    table = await readLabels(input, plan, file, log);
  } finally {
    await input.close();
  }
  const { n, dim } = table;
  const C = table.names.length;

  // ---- splits
  const codes = table.split ?? new Uint8Array(n);
  const splitRng = Rng.derive(opts.seed, 'ingest-split');
  if (!table.split) {
    stratify(codes, table.labels, C, [0], opts.validFraction, opts.testFraction, splitRng);
  } else if (opts.validFraction > 0 && !codes.includes(1)) {
    stratify(codes, table.labels, C, [0], opts.validFraction, 0, splitRng);
    log.info(`no 'valid' rows in the split column: carved ${(opts.validFraction * 100).toFixed(1)}% of each class's train rows`);
  }
  let limitNote = '';
  if (opts.limit) {
    const applied: string[] = [];
    SPLIT_NAMES.forEach((s, code) => {
      const L = opts.limit?.[s];
      if (L === undefined) return;
      const dropped = applyLimit(codes, code, L, Rng.derive(opts.seed, `ingest-limit-${s}`));
      if (dropped) applied.push(`limit.${s}=${L}`);
    });
    if (applied.length > 0) limitNote = ` (after applying ${applied.join(', ')}; raise the limit)`;
  }

  // ---- class checks
  const counts = { train: new Int32Array(C), valid: new Int32Array(C), test: new Int32Array(C) };
  const firstRow = { valid: new Int32Array(C).fill(-1), test: new Int32Array(C).fill(-1) };
  const perSplit = [counts.train, counts.valid, counts.test];
  let unlabeled = 0;
  for (let i = 0; i < n; i++) {
    const s = codes[i];
    if (s === DROPPED) continue;
    if (s === UNLABELED) {
      unlabeled++;
      continue;
    }
    const c = table.labels[i];
    perSplit[s][c]++;
    if (s === 1 && firstRow.valid[c] < 0) firstRow.valid[c] = i;
    if (s === 2 && firstRow.test[c] < 0) firstRow.test[c] = i;
  }
  checkClasses(file, table.names, counts, firstRow, table.labelKind, limitNote);

  const rows: ClassesFile['rows'] = { train: 0, valid: 0, test: 0 };
  for (const s of SPLIT_NAMES) rows[s] = counts[s].reduce((a, b) => a + b, 0);
  if (unlabeled > 0) rows.unlabeled = unlabeled;
  for (const s of ['valid', 'test'] as const) {
    if (rows[s] > 0) continue;
    if (!opts.requireSplits) {
      log.warn(`${file}: the ${s} split is empty`);
      continue;
    }
    const fraction = s === 'valid' ? 'valid_fraction' : 'test_fraction';
    const value = s === 'valid' ? opts.validFraction : opts.testFraction;
    const carved = value > 0 && (s === 'valid' || !table.split);
    const why = carved
      ? `${fraction} ${value} of ${n} rows rounds to none in every class; raise ${fraction}${table.split ? ` or add rows with split '${s}'` : ''}`
      : `the split column has no '${s}' rows; add some`;
    throw new DataError(`${file}: the ${s} split would be empty (0 rows): ${why}; checkpoints are selected on valid and every model is scored on test`);
  }

  // ---- second pass: write (everything has been validated)
  await writeSplits(file, stamp, plan, table, codes, opts.outDir, unlabeled > 0, log);
  const classes: ClassesFile = {
    classes: table.names.map((name, index) => ({ index, name, counts: { train: counts.train[index], valid: counts.valid[index], test: counts.test[index] } })),
    dim,
    shape: table.shape,
    source: file,
    rows,
  };
  await writeJsonAtomic(path.join(opts.outDir, 'classes.json'), classes);
  log.info(`ingested ${file}: ${C} classes, dim ${dim}, train ${rows.train}, valid ${rows.valid}, test ${rows.test}${unlabeled > 0 ? `, unlabeled ${unlabeled}` : ''}`);
  return classes;
}

function checkOptions(o: IngestOptions): void {
  const frac = (key: 'validFraction' | 'testFraction'): void => {
    const v = o[key];
    if (!Number.isFinite(v) || v < 0 || v >= 1) throw new ConfigError(`ingest option ${key} must be a number in [0, 1), got ${String(v)}`);
  };
  frac('validFraction');
  frac('testFraction');
  if (o.validFraction + o.testFraction >= 1) throw new ConfigError(`ingest options validFraction + testFraction must be < 1, got ${o.validFraction + o.testFraction}`);
  if (!Number.isInteger(o.seed)) throw new ConfigError(`ingest option seed must be an integer, got ${String(o.seed)}`);
  for (const s of SPLIT_NAMES) {
    const L = o.limit?.[s];
    if (L !== undefined && !(Number.isInteger(L) && L > 0)) throw new ConfigError(`ingest option limit.${s} must be a positive integer, got ${String(L)}`);
  }
}

// ------------------------------------------------------------------ reading

/** A growable typed array (doubling), for per-row values of a file whose row count is unknown. */
class Grow<T extends Int32Array | Uint8Array> {
  n = 0;
  constructor(
    public a: T,
    private readonly make: (n: number) => T,
  ) {}
  push(v: ArrayLike<number>): void {
    if (this.n + v.length > this.a.length) {
      let cap = this.a.length;
      while (cap < this.n + v.length) cap *= 2;
      const b = this.make(cap);
      b.set(this.a.subarray(0, this.n));
      this.a = b;
    }
    this.a.set(v, this.n);
    this.n += v.length;
  }
  /** The values pushed so far (a view: no second copy while the table is read). */
  values(): T {
    return this.a.subarray(0, this.n) as T;
  }
}

interface ReadTable {
  n: number;
  dim: number;
  shape: number[] | null;
  labelKind: 'int' | 'string';
  /** Final class index per row (-1 on unlabeled rows). */
  labels: Int32Array;
  names: string[];
  /** Split code per row (0 train, 1 valid, 2 test, 3 unlabeled) when the file has a split column. */
  split: Uint8Array | null;
}

/** Column positions of a plan in the input schema (-1: absent). */
export interface Columns {
  label: number;
  split: number;
  features: number[];
}

/** Where the plan's columns are in the input's schema. */
export function columnsOf(input: TableInput, plan: IngestPlan): Columns {
  const fields = input.schema.fields;
  const idx = (name: string): number => fields.findIndex((f) => f.name === name);
  const feat = plan.features;
  return { label: idx('label'), split: plan.split ? idx('split') : -1, features: feat.kind === 'columns' ? feat.columns.map(idx) : [idx(feat.column)] };
}

/** The input columns a plan reads (a Parquet input decodes only these). */
export function readColumns(plan: IngestPlan): string[] {
  const feat = plan.features;
  return [...(plan.label === null ? [] : ['label']), ...(plan.split ? ['split'] : []), ...(feat.kind === 'columns' ? feat.columns : [feat.column])];
}

/** Rows converted at a time: at most 2^20 floats (4 MB) and {@link SPLIT_BATCH_ROWS} rows. */
function chunkRows(dim: number): number {
  return Math.max(1, Math.min(SPLIT_BATCH_ROWS, Math.floor((1 << 20) / dim)));
}

/**
 * Checks the features of one record batch (nulls, ragged lists, non-finite values after the
 * conversion to float32) and hands them on converted, in chunks of at most {@link chunkRows}
 * rows: `onChunk(view, rows, firstRow)` with `view` row-major `rows x dim` (reused between
 * calls). For a List column, `dim.value === 0` on the first batch is set from its first row.
 */
export function scanFeatures(
  batch: RecordBatch,
  plan: IngestPlan,
  cols: Columns,
  file: string,
  row: number,
  dimRef: { value: number; scratch: Float32Array },
  onChunk?: (view: Float32Array, rows: number, firstRow: number) => void,
): void {
  const m = batch.numRows;
  const feat = plan.features;
  const col = (i: number): Data => batch.data.children[i];
  let dim = dimRef.value;
  const scratch = (): Float32Array => {
    const need = chunkRows(dim) * dim;
    if (dimRef.scratch.length !== need) dimRef.scratch = new Float32Array(need);
    return dimRef.scratch;
  };
  if (feat.kind === 'fixed') {
    const d = col(cols.features[0]);
    checkNoNulls(d, file, 'features', row);
    const c = d.children[0];
    const cn = firstNullRow(c);
    if (cn >= 0) throw dataError(file, { column: 'features', row: row + Math.floor(cn / dim) }, `element ${cn % dim} of the feature vector is null`, 'fill or drop missing feature values');
    const buf = scratch();
    const step = chunkRows(dim);
    for (let r = 0; r < m; r += step) {
      const rows = Math.min(step, m - r);
      const view = buf.subarray(0, rows * dim);
      copyNumeric(c, r * dim, rows * dim, view, 0);
      checkFinite(view, dim, file, row + r, (k) => ({ column: 'features', detail: ` (element ${k} of the feature vector)` }));
      onChunk?.(view, rows, row + r);
    }
  } else if (feat.kind === 'list') {
    const d = col(cols.features[0]);
    checkNoNulls(d, file, 'features', row);
    const offsets = d.valueOffsets as Int32Array;
    if (dim === 0) {
      dim = offsets[1] - offsets[0];
      if (dim === 0) throw dataError(file, { column: 'features', row }, 'the feature list is empty', 'store at least one feature per row');
      if (plan.shape) checkShape(plan.shape, dim, file);
      dimRef.value = dim;
    }
    for (let i = 0; i < m; i++) {
      const len = offsets[i + 1] - offsets[i];
      if (len !== dim) {
        throw dataError(file, { column: 'features', row: row + i }, `ragged feature lists: this row has ${len} values but row 0 has ${dim}`, 'every row needs the same number of features (pad or truncate; FixedSizeList makes this explicit)');
      }
    }
    const c = d.children[0];
    if (c.nullCount > 0) {
      for (let i = offsets[0]; i < offsets[m]; i++) {
        if (!c.getValid(i)) throw dataError(file, { column: 'features', row: row + Math.floor((i - offsets[0]) / dim) }, `element ${(i - offsets[0]) % dim} of the feature list is null`, 'fill or drop missing feature values');
      }
    }
    const buf = scratch();
    const step = chunkRows(dim);
    for (let r = 0; r < m; r += step) {
      const rows = Math.min(step, m - r);
      const view = buf.subarray(0, rows * dim);
      copyNumeric(c, offsets[r], rows * dim, view, 0);
      checkFinite(view, dim, file, row + r, (k) => ({ column: 'features', detail: ` (element ${k} of the feature vector)` }));
      onChunk?.(view, rows, row + r);
    }
  } else {
    const ds = cols.features.map(col);
    ds.forEach((d, j) => checkNoNulls(d, file, feat.columns[j], row));
    const buf = scratch();
    const step = chunkRows(dim);
    for (let r = 0; r < m; r += step) {
      const rows = Math.min(step, m - r);
      const view = buf.subarray(0, rows * dim);
      ds.forEach((d, j) => copyNumeric(d, r, rows, view, j, dim));
      checkFinite(view, dim, file, row + r, (k) => ({ column: feat.columns[k], detail: '' }));
      onChunk?.(view, rows, row + r);
    }
  }
}

/**
 * Pass 1: validates every record batch and keeps each row's label and split code only.
 */
async function readLabels(input: TableInput, plan: IngestPlan, file: string, log: Logger): Promise<ReadTable> {
  const cols = columnsOf(input, plan);
  const feat = plan.features;
  const dimRef = { value: feat.kind === 'list' ? 0 : feat.dim, scratch: new Float32Array(0) };

  const labels = new Grow(new Int32Array(1 << 16), (k) => new Int32Array(k));
  const splits = new Grow(new Uint8Array(1 << 16), (k) => new Uint8Array(k));
  const nameIds = new Map<string, number>();
  /** Name ids seen on labelled rows (a name only on unlabeled rows is not a class). */
  const usedNames = new Set<number>();
  const unlabeledNames = new Set<number>();
  const idOfName = (s: string): number => {
    let id = nameIds.get(s);
    if (id === undefined) {
      id = nameIds.size;
      nameIds.set(s, id);
    }
    return id;
  };
  const unknownSplits: string[] = [];
  const splitId = (s: string): number => {
    if (s === UNLABELED_SPLIT) return UNLABELED;
    const k = (SPLIT_NAMES as readonly string[]).indexOf(s);
    return k >= 0 ? k : -1 - (unknownSplits.push(s) - 1);
  };
  let maxLabel = -1;
  let row = 0;
  const progress = log.progress('checking ' + path.basename(file), input.numBatches ?? 0);

  for await (const batch of input.batches(readColumns(plan))) {
    const m = batch.numRows;
    if (m === 0) continue;
    const col = (i: number): Data => batch.data.children[i];

    // split (first: an unlabeled row's label is not read)
    let splitIds: Int32Array | null = null;
    if (cols.split >= 0) {
      const sd = col(cols.split);
      const sn = firstNullRow(sd);
      if (sn >= 0) throw dataError(file, { column: 'split', row: row + sn }, 'the split is null', "set it to 'train', 'valid', 'test' or 'unlabeled' on every row");
      const ids = stringIds(sd, (s) => splitId(s));
      for (let i = 0; i < m; i++) {
        if (ids[i] < 0) {
          const v = unknownSplits[-1 - ids[i]];
          throw dataError(file, { column: 'split', row: row + i }, `unknown split value ${JSON.stringify(v)} (expected train, valid, test or unlabeled)`, "use exactly 'train', 'valid', 'test' or 'unlabeled' (lower case)");
        }
      }
      splits.push(ids);
      splitIds = ids;
    }
    const labelled = (i: number): boolean => splitIds === null || splitIds[i] !== UNLABELED;

    // label (ignored on unlabeled rows: -1)
    const ld = col(cols.label);
    const ln = firstNullRow(ld, labelled);
    if (ln >= 0) throw dataError(file, { column: 'label', row: row + ln }, 'the label is null', "drop rows without a label or fill them in (or mark them split = 'unlabeled')");
    if (plan.label === 'int') {
      const v = intValues(ld);
      const out = new Int32Array(m);
      for (let i = 0; i < m; i++) {
        if (!labelled(i)) {
          out[i] = -1;
          continue;
        }
        const x = v[i];
        if (x < 0) throw dataError(file, { column: 'label', row: row + i }, `expected a class index >= 0, found ${x}`, 'class indices must be 0..C-1 (e.g. from pandas.factorize)');
        if (x > MAX_CLASS_INDEX) throw dataError(file, { column: 'label', row: row + i }, `class index ${x} is larger than ${MAX_CLASS_INDEX}`, 'class indices must be 0..C-1; renumber them (e.g. pandas.factorize) or use string labels');
        out[i] = x;
        if (x > maxLabel) maxLabel = x;
      }
      labels.push(out);
    } else {
      const ids = stringIds(ld, idOfName);
      for (let i = 0; i < m; i++) {
        if (!labelled(i)) {
          if (ids[i] >= 0) unlabeledNames.add(ids[i]);
          ids[i] = -1;
          continue;
        }
        if (ids[i] < 0) throw dataError(file, { column: 'label', row: row + i }, 'the label is null (null dictionary entry)', "drop rows without a label or fill them in (or mark them split = 'unlabeled')");
        usedNames.add(ids[i]);
      }
      labels.push(ids);
    }

    // features: checked, not kept
    scanFeatures(batch, plan, cols, file, row, dimRef);
    row += m;
    progress.tick(1, `${row} rows`);
  }
  progress.done(`${row} rows`);

  if (row === 0 || dimRef.value === 0) throw dataError(file, {}, 'the table is empty (0 rows)', 'write at least one record batch with rows');
  const n = row;
  let names: string[];
  const finalLabels = labels.values();
  if (plan.label === 'int') {
    names = Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  } else {
    const firstSeen = [...nameIds.keys()];
    // Dictionary entries are registered whether or not a row uses them: keep every name except
    // those seen on unlabeled rows only.
    const keep = firstSeen.filter((_, id) => usedNames.has(id) || !unlabeledNames.has(id));
    names = [...keep].sort();
    const remap = new Int32Array(firstSeen.length).fill(-1);
    const pos = new Map(names.map((s, i) => [s, i]));
    firstSeen.forEach((s, i) => (remap[i] = pos.get(s) ?? -1));
    for (let i = 0; i < n; i++) if (finalLabels[i] >= 0) finalLabels[i] = remap[finalLabels[i]];
  }
  return {
    n,
    dim: dimRef.value,
    shape: plan.shape,
    labelKind: plan.label === 'int' ? 'int' : 'string',
    labels: finalLabels,
    names,
    split: plan.split ? splits.values() : null,
  };
}

/** Size and modification time of a file, to notice that it changed between the two passes. */
interface FileStamp {
  size: number;
  mtimeMs: number;
}

async function fileStamp(file: string): Promise<FileStamp | null> {
  try {
    const st = await fs.stat(file);
    return { size: st.size, mtimeMs: st.mtimeMs };
  } catch {
    return null; // openTable reports a missing file with its own message
  }
}

function changedError(file: string, what: string): DataError {
  return dataError(file, {}, `the file changed while it was being read (${what})`, 'do not write to the input while ingest runs; rerun the stage');
}

/** One split's output: a record batch being filled, and the file it goes to. */
class SplitOut {
  readonly x: Float32Array;
  readonly y = new Int32Array(SPLIT_BATCH_ROWS);
  k = 0;
  readonly sink: ArrowFileSink;
  constructor(
    file: string,
    readonly dim: number,
    shape: number[] | null,
  ) {
    this.x = new Float32Array(SPLIT_BATCH_ROWS * dim);
    this.sink = new ArrowFileSink(file, labeledSchema(dim, shape));
  }
  add(view: Float32Array, r: number, label: number): void {
    const d = this.dim;
    this.x.set(view.subarray(r * d, (r + 1) * d), this.k * d);
    this.y[this.k] = label;
    if (++this.k === SPLIT_BATCH_ROWS) this.flush();
  }
  flush(): void {
    if (this.k === 0) return;
    // The writer copies the batch to the file before returning, so x and y are reused.
    this.sink.write(labeledBatch(this.sink.schema, this.x, this.y, this.k));
    this.k = 0;
  }
}

/**
 * Pass 2: reads the batches again and streams each row's features into its split file
 * (train, valid, test, and unlabeled when `withUnlabeled`; rows in input order, record batches of {@link SPLIT_BATCH_ROWS} rows).
 * The files appear under their names only when complete.
 */
async function writeSplits(file: string, stamp: FileStamp | null, plan: IngestPlan, t: ReadTable, codes: Uint8Array, outDir: string, withUnlabeled: boolean, log: Logger): Promise<void> {
  const now = await fileStamp(file);
  if (!stamp || !now || now.size !== stamp.size || now.mtimeMs !== stamp.mtimeMs) throw changedError(file, 'its size or modification time differs from the first pass');
  const input = await openTable(file);
  const outs: SplitOut[] = [];
  try {
    for (const s of SPLIT_NAMES) outs.push(new SplitOut(path.join(outDir, `${s}.arrow`), t.dim, t.shape));
    if (withUnlabeled) outs.push(new SplitOut(path.join(outDir, UNLABELED_FILE), t.dim, t.shape)); // code 3
    const cols = columnsOf(input, plan);
    const dimRef = { value: t.dim, scratch: new Float32Array(0) };
    const { labels } = t;
    let row = 0;
    const progress = log.progress('writing splits', input.numBatches ?? 0);
    for await (const batch of input.batches(readColumns(plan))) {
      const m = batch.numRows;
      if (m === 0) continue;
      if (row + m > t.n) throw changedError(file, `more than the ${t.n} rows of the first pass`);
      scanFeatures(batch, plan, cols, file, row, dimRef, (view, rows, first) => {
        if (plan.scale !== 1) for (let i = 0; i < rows * t.dim; i++) view[i] *= plan.scale;
        for (let r = 0; r < rows; r++) {
          const code = codes[first + r];
          if (code !== DROPPED) outs[code].add(view, r, labels[first + r]);
        }
      });
      row += m;
      progress.tick(1, `${row} rows`);
      failpoint('ingest-batch-written');
    }
    progress.done(`${row} rows`);
    if (row !== t.n) throw changedError(file, `${row} rows now, ${t.n} in the first pass`);
    for (const o of outs) {
      o.flush();
      o.sink.finish();
      failpoint('ingest-split-written');
    }
  } catch (e) {
    for (const o of outs) o.sink.abort();
    throw e;
  } finally {
    await input.close();
  }
}

function checkNoNulls(d: Data, file: string, column: string, row: number): void {
  const r = firstNullRow(d);
  if (r >= 0) throw dataError(file, { column, row: row + r }, 'the value is null', 'fill or drop rows with missing features');
}

/** Where feature k of a row lives in the input, for messages. */
type FeatureName = (k: number) => { column: string; detail: string };

function checkFinite(view: Float32Array, dim: number, file: string, row0: number, nameOf: FeatureName): void {
  const i = firstNonFinite(view);
  if (i < 0) return;
  const { column, detail } = nameOf(i % dim);
  throw dataError(
    file,
    { column, row: row0 + Math.floor(i / dim) },
    `feature value is ${String(view[i])}${detail}; features must be finite (values beyond +/-3.4e38 overflow float32)`,
    'replace NaN/Infinity (e.g. numpy.nan_to_num, or drop the rows) before writing the file',
  );
}

// ------------------------------------------------------------------ splitting

/**
 * Moves rows whose code is in `from` to valid (1) / test (2), class by class: of a class's k
 * rows, floor(k * f + u) (u uniform, i.e. stochastic rounding) go to each held-out split, keeping
 * at least one in train. Seeded through `rng`.
 */
function stratify(codes: Uint8Array, labels: Int32Array, C: number, from: number[], validFraction: number, testFraction: number, rng: Rng): void {
  const n = labels.length;
  const start = new Int32Array(C + 1);
  for (let i = 0; i < n; i++) if (from.includes(codes[i])) start[labels[i] + 1]++;
  for (let c = 0; c < C; c++) start[c + 1] += start[c];
  const order = new Int32Array(start[C]);
  const fill = start.slice(0, C);
  for (let i = 0; i < n; i++) if (from.includes(codes[i])) order[fill[labels[i]]++] = i;
  for (let c = 0; c < C; c++) {
    const rowsOf = order.subarray(start[c], start[c + 1]);
    const k = rowsOf.length;
    if (k === 0) continue;
    rng.shuffle(rowsOf);
    let nTest = testFraction > 0 ? Math.floor(k * testFraction + rng.next()) : 0;
    let nValid = validFraction > 0 ? Math.floor(k * validFraction + rng.next()) : 0;
    while (nTest + nValid > k - 1 && nTest + nValid > 0) {
      if (nValid >= nTest && nValid > 0) nValid--;
      else nTest--;
    }
    for (let j = 0; j < nTest; j++) codes[rowsOf[j]] = 2;
    for (let j = nTest; j < nTest + nValid; j++) codes[rowsOf[j]] = 1;
  }
}

/** Keeps a seeded random `limit` of the rows with `code`; marks the others dropped. Returns whether any was dropped. */
function applyLimit(codes: Uint8Array, code: number, limit: number, rng: Rng): boolean {
  let count = 0;
  for (let i = 0; i < codes.length; i++) if (codes[i] === code) count++;
  if (count <= limit) return false;
  const a = new Int32Array(count);
  for (let i = 0, k = 0; i < codes.length; i++) if (codes[i] === code) a[k++] = i;
  // Partial Fisher-Yates: the first `limit` entries become a uniform random subset.
  for (let i = 0; i < limit; i++) {
    const j = i + rng.int(a.length - i);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  for (let i = limit; i < a.length; i++) codes[a[i]] = DROPPED;
  return true;
}
