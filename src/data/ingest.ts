import path from 'node:path';
import type { Data } from 'apache-arrow';
import { writeJsonAtomic } from '../artifacts/atomic.ts';
import { ConfigError } from '../util/errors.ts';
import { silentLogger, type Logger } from '../util/log.ts';
import { Rng } from '../util/rng.ts';
import { copyNumeric, dataError, firstNullRow, intValues, openArrow, stringIds, type ArrowInput } from './arrow-read.ts';
import { SPLIT_BATCH_ROWS, writeSplitBatches } from './split-file.ts';
import { SPLIT_NAMES, checkClasses, checkShape, firstNonFinite, planIngest, type IngestPlan, type SplitName } from './validate.ts';

export { describeArrowFile } from './arrow-read.ts';

/** Options of {@link ingest}. */
export interface IngestOptions {
  /** The user's Arrow IPC file (file or stream format). */
  input: string;
  /** Folder receiving `train.arrow`, `valid.arrow`, `test.arrow`, `classes.json`. */
  outDir: string;
  /** Seed of the random split and of `limit` subsets. */
  seed: number;
  /** Fraction of each class held out for validation (when the file has no `valid` rows). */
  validFraction: number;
  /** Fraction of each class held out for test (when the file has no `split` column). */
  testFraction: number;
  /** Keep a seeded random subset of at most this many rows of each split. */
  limit?: { train?: number; valid?: number; test?: number };
  log?: Logger;
}

/** `classes.json`: class names and per-split counts, the feature layout, and row counts. */
export interface ClassesFile {
  classes: { index: number; name: string; counts: { train: number; valid: number; test: number } }[];
  dim: number;
  shape: number[] | null;
  source: string;
  rows: { train: number; valid: number; test: number };
}

/** Largest accepted integer class index (guards against ids mistaken for labels). */
export const MAX_CLASS_INDEX = 1_000_000;

const DROPPED = 255;

/**
 * Reads a user's Arrow IPC file, validates it completely, splits it into train/valid/test and
 * writes `train.arrow`, `valid.arrow`, `test.arrow` (each `label: Int32`,
 * `features: FixedSizeList<Float32>[D]`, metadata `shape`) and `classes.json` to `outDir`.
 *
 * The input is streamed record batch by record batch; only the Float32 features (in blocks),
 * the Int32 labels and one byte of split per row are held. Nothing is written unless every
 * check passes. Splits:
 * - no `split` column: per class (stratified), a seeded random `testFraction` goes to test and
 *   `validFraction` to valid (stochastic rounding, at least one training example per class);
 * - a `split` column without `valid` rows: `validFraction` of each class's train rows (seeded);
 * - `limit`: a seeded random subset of each split (rows keep their input order).
 *
 * @throws DataError naming file, column and row for every problem with the input (see
 *   datasets/README.md); ConfigError for bad options.
 */
export async function ingest(opts: IngestOptions): Promise<ClassesFile> {
  const log = opts.log ?? silentLogger;
  checkOptions(opts);
  const file = opts.input;
  const input = await openArrow(file);
  let table: ReadTable;
  try {
    const plan = planIngest(input.schema, file);
    if (plan.ignored.length > 0) log.warn(`${file}: ignoring column(s) ${plan.ignored.join(', ')}`);
    table = await readTable(input, plan, file, log);
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
  for (let i = 0; i < n; i++) {
    const s = codes[i];
    if (s === DROPPED) continue;
    const c = table.labels[i];
    perSplit[s][c]++;
    if (s === 1 && firstRow.valid[c] < 0) firstRow.valid[c] = i;
    if (s === 2 && firstRow.test[c] < 0) firstRow.test[c] = i;
  }
  checkClasses(file, table.names, counts, firstRow, table.labelKind, limitNote);

  const rows = { train: 0, valid: 0, test: 0 };
  for (const s of SPLIT_NAMES) rows[s] = counts[s].reduce((a, b) => a + b, 0);
  if (rows.test === 0) log.warn(`${file}: the test split is empty`);
  if (rows.valid === 0) log.warn(`${file}: the valid split is empty`);

  // ---- write (everything has been validated)
  for (let code = 0; code < 3; code++) {
    const name: SplitName = SPLIT_NAMES[code];
    await writeSplitBatches(path.join(opts.outDir, `${name}.arrow`), dim, table.shape, splitBatches(table, codes, code));
  }
  const classes: ClassesFile = {
    classes: table.names.map((name, index) => ({ index, name, counts: { train: counts.train[index], valid: counts.valid[index], test: counts.test[index] } })),
    dim,
    shape: table.shape,
    source: file,
    rows,
  };
  await writeJsonAtomic(path.join(opts.outDir, 'classes.json'), classes);
  log.info(`ingested ${file}: ${C} classes, dim ${dim}, train ${rows.train}, valid ${rows.valid}, test ${rows.test}`);
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

/** Row-major Float32 rows stored in fixed-size blocks (no one huge allocation, no concat copy). */
class RowStore {
  readonly blocks: Float32Array[] = [];
  readonly blockRows: number;
  n = 0;
  constructor(readonly dim: number) {
    this.blockRows = Math.max(1, Math.floor((1 << 22) / dim));
  }
  /** Space for up to `want` more rows at the end: returns the view and how many rows it holds. */
  next(want: number): { view: Float32Array; rows: number } {
    const off = this.n % this.blockRows;
    if (off === 0) this.blocks.push(new Float32Array(this.blockRows * this.dim));
    const rows = Math.min(want, this.blockRows - off);
    const block = this.blocks[this.blocks.length - 1];
    this.n += rows;
    return { view: block.subarray(off * this.dim, (off + rows) * this.dim), rows };
  }
  row(i: number): Float32Array {
    const b = Math.floor(i / this.blockRows);
    const o = i - b * this.blockRows;
    return this.blocks[b].subarray(o * this.dim, (o + 1) * this.dim);
  }
}

class GrowInt32 {
  a = new Int32Array(1 << 16);
  n = 0;
  push(v: Int32Array): void {
    if (this.n + v.length > this.a.length) {
      let cap = this.a.length;
      while (cap < this.n + v.length) cap *= 2;
      const b = new Int32Array(cap);
      b.set(this.a.subarray(0, this.n));
      this.a = b;
    }
    this.a.set(v, this.n);
    this.n += v.length;
  }
}

interface ReadTable {
  n: number;
  dim: number;
  shape: number[] | null;
  labelKind: 'int' | 'string';
  /** Final class index per row. */
  labels: Int32Array;
  names: string[];
  /** Split code per row (0 train, 1 valid, 2 test) when the file has a split column. */
  split: Uint8Array | null;
  store: RowStore;
}

async function readTable(input: ArrowInput, plan: IngestPlan, file: string, log: Logger): Promise<ReadTable> {
  const fields = input.schema.fields;
  const idx = (name: string): number => fields.findIndex((f) => f.name === name);
  const labelIdx = idx('label');
  const splitIdx = plan.split ? idx('split') : -1;
  const feat = plan.features;
  const featIdx = feat.kind === 'columns' ? feat.columns.map(idx) : [idx(feat.column)];
  let dim = feat.kind === 'list' ? 0 : feat.dim;
  let store: RowStore | null = dim > 0 ? new RowStore(dim) : null;

  const labels = new GrowInt32();
  const splits = new GrowInt32();
  const nameIds = new Map<string, number>();
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
    const k = (SPLIT_NAMES as readonly string[]).indexOf(s);
    return k >= 0 ? k : -1 - (unknownSplits.push(s) - 1);
  };
  let maxLabel = -1;
  let row = 0;
  const progress = log.progress('reading ' + path.basename(file), input.numBatches ?? 0);

  for await (const batch of input.batches()) {
    const m = batch.numRows;
    if (m === 0) continue;
    const col = (i: number): Data => batch.data.children[i];

    // label
    const ld = col(labelIdx);
    const ln = firstNullRow(ld);
    if (ln >= 0) throw dataError(file, { column: 'label', row: row + ln }, 'the label is null', 'drop rows without a label or fill them in');
    if (plan.label === 'int') {
      const v = intValues(ld);
      const out = new Int32Array(m);
      for (let i = 0; i < m; i++) {
        const x = v[i];
        if (x < 0) throw dataError(file, { column: 'label', row: row + i }, `expected a class index >= 0, found ${x}`, 'class indices must be 0..C-1 (e.g. from pandas.factorize)');
        if (x > MAX_CLASS_INDEX) throw dataError(file, { column: 'label', row: row + i }, `class index ${x} is larger than ${MAX_CLASS_INDEX}`, 'class indices must be 0..C-1; renumber them (e.g. pandas.factorize) or use string labels');
        out[i] = x;
        if (x > maxLabel) maxLabel = x;
      }
      labels.push(out);
    } else {
      const ids = stringIds(ld, idOfName);
      const bad = ids.indexOf(-1);
      if (bad >= 0) throw dataError(file, { column: 'label', row: row + bad }, 'the label is null (null dictionary entry)', 'drop rows without a label or fill them in');
      labels.push(ids);
    }

    // split
    if (splitIdx >= 0) {
      const sd = col(splitIdx);
      const sn = firstNullRow(sd);
      if (sn >= 0) throw dataError(file, { column: 'split', row: row + sn }, 'the split is null', "set it to 'train', 'valid' or 'test' on every row");
      const ids = stringIds(sd, (s) => splitId(s));
      for (let i = 0; i < m; i++) {
        if (ids[i] < 0) {
          const v = unknownSplits[-1 - ids[i]];
          throw dataError(file, { column: 'split', row: row + i }, `unknown split value ${JSON.stringify(v)} (expected train, valid or test)`, "use exactly 'train', 'valid' or 'test' (lower case)");
        }
      }
      splits.push(ids);
    }

    // features
    if (feat.kind === 'fixed') {
      const d = col(featIdx[0]);
      checkNoNulls(d, file, 'features', row);
      const c = d.children[0];
      const cn = firstNullRow(c);
      if (cn >= 0) throw dataError(file, { column: 'features', row: row + Math.floor(cn / dim) }, `element ${cn % dim} of the feature vector is null`, 'fill or drop missing feature values');
      for (let r = 0; r < m; ) {
        const { view, rows } = (store as RowStore).next(m - r);
        copyNumeric(c, r * dim, rows * dim, view, 0);
        checkFinite(view, dim, file, row + r, (k) => ({ column: 'features', detail: ` (element ${k} of the feature vector)` }));
        r += rows;
      }
    } else if (feat.kind === 'list') {
      const d = col(featIdx[0]);
      checkNoNulls(d, file, 'features', row);
      const offsets = d.valueOffsets as Int32Array;
      if (dim === 0) {
        dim = offsets[1] - offsets[0];
        if (dim === 0) throw dataError(file, { column: 'features', row }, 'the feature list is empty', 'store at least one feature per row');
        if (plan.shape) checkShape(plan.shape, dim, file);
        store = new RowStore(dim);
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
      for (let r = 0; r < m; ) {
        const { view, rows } = (store as RowStore).next(m - r);
        copyNumeric(c, offsets[r], rows * dim, view, 0);
        checkFinite(view, dim, file, row + r, (k) => ({ column: 'features', detail: ` (element ${k} of the feature vector)` }));
        r += rows;
      }
    } else {
      const ds = featIdx.map(col);
      ds.forEach((d, j) => checkNoNulls(d, file, feat.columns[j], row));
      for (let r = 0; r < m; ) {
        const { view, rows } = (store as RowStore).next(m - r);
        ds.forEach((d, j) => copyNumeric(d, r, rows, view, j, dim));
        checkFinite(view, dim, file, row + r, (k) => ({ column: feat.columns[k], detail: '' }));
        r += rows;
      }
    }
    row += m;
    progress.tick(1, `${row} rows`);
  }
  progress.done(`${row} rows`);

  if (row === 0 || !store) throw dataError(file, {}, 'the table is empty (0 rows)', 'write at least one record batch with rows');
  const n = row;
  let names: string[];
  let finalLabels = labels.a.subarray(0, n);
  if (plan.label === 'int') {
    names = Array.from({ length: maxLabel + 1 }, (_, i) => String(i));
  } else {
    const firstSeen = [...nameIds.keys()];
    names = [...firstSeen].sort();
    const remap = new Int32Array(firstSeen.length);
    const pos = new Map(names.map((s, i) => [s, i]));
    firstSeen.forEach((s, i) => (remap[i] = pos.get(s) as number));
    finalLabels = finalLabels.map((id) => remap[id]);
  }
  return {
    n,
    dim,
    shape: plan.shape,
    labelKind: plan.label,
    labels: finalLabels,
    names,
    split: plan.split ? Uint8Array.from(splits.a.subarray(0, n)) : null,
    store,
  };
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
  const rows: number[] = [];
  for (let i = 0; i < codes.length; i++) if (codes[i] === code) rows.push(i);
  if (rows.length <= limit) return false;
  const a = Int32Array.from(rows);
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

function* splitBatches(t: ReadTable, codes: Uint8Array, code: number): Generator<{ x: Float32Array; y: Int32Array; n: number }> {
  const { dim } = t;
  const x = new Float32Array(SPLIT_BATCH_ROWS * dim);
  const y = new Int32Array(SPLIT_BATCH_ROWS);
  let k = 0;
  for (let i = 0; i < t.n; i++) {
    if (codes[i] !== code) continue;
    x.set(t.store.row(i), k * dim);
    y[k] = t.labels[i];
    if (++k === SPLIT_BATCH_ROWS) {
      yield { x, y, n: k };
      k = 0;
    }
  }
  if (k > 0) yield { x, y, n: k };
}
