import { DataType, type Field, type Schema } from 'apache-arrow';
import { dataError, isNumericType, isStringType, typeName } from './arrow-read.ts';

/** How the label column is stored. */
export type LabelKind = 'int' | 'string';

/** Where the features come from. */
export type FeatureSource =
  | { kind: 'fixed'; column: string; dim: number }
  | { kind: 'list'; column: string }
  | { kind: 'columns'; columns: string[]; dim: number };

/** What ingest will read, decided from the schema alone (before any row is read). */
export interface IngestPlan {
  /** How labels are stored; null when the table has no `label` column (allowed only with `labelOptional`). */
  label: LabelKind | null;
  features: FeatureSource;
  /** Whether there is a `split` column. */
  split: boolean;
  /** Parsed `shape` metadata, checked against the dim when the dim is known from the schema. */
  shape: number[] | null;
  /**
   * Parsed `feature_scale` metadata: a positive finite factor every feature is multiplied by on its
   * way into the split files (e.g. 1/255 for 8-bit pixels), or 1 when absent.
   */
  scale: number;
  /** Columns present but not used (reported as a warning). */
  ignored: string[];
}

/** Split names accepted in a `split` column, in code order (0, 1, 2). */
export const SPLIT_NAMES = ['train', 'valid', 'test'] as const;
/** One of {@link SPLIT_NAMES}. */
export type SplitName = (typeof SPLIT_NAMES)[number];
/**
 * Split value of rows without a usable label (split code 3): the paper's unlabelled transfer
 * set. Their `label` is ignored (it may be null) and ingest writes them to `unlabeled.arrow`
 * with label -1. A teacher can label them (distillation, the covariance of its predictions).
 */
export const UNLABELED_SPLIT = 'unlabeled';

const SCHEMA_HINT = 'the accepted schema is described in datasets/README.md';

function fieldsText(schema: Schema): string {
  return schema.fields.map((f) => `${f.name}: ${typeName(f.type)}`).join(', ');
}

/**
 * Checks the schema of an input table and decides how to read it.
 *
 * @param opts.labelOptional accept a table without a `label` column (prediction on new data)
 * @throws DataError (naming file and column) when `label` (unless optional) or features are missing or of the
 *   wrong type, `split` is not a string column, or the `shape` metadata is malformed or does not
 *   multiply to the feature dimension.
 */
export function planIngest(schema: Schema, file: string, opts: { labelOptional?: boolean } = {}): IngestPlan {
  const byName = new Map<string, Field>(schema.fields.map((f) => [f.name, f]));
  const labelField = byName.get('label');
  if (!labelField && !opts.labelOptional) {
    throw dataError(file, { column: 'label' }, `missing the label column (columns are: ${fieldsText(schema)})`, `add an integer or string column named 'label'; ${SCHEMA_HINT}`);
  }
  let label: LabelKind | null;
  const lt = labelField?.type;
  if (lt === undefined) label = null;
  else if (DataType.isInt(lt)) label = 'int';
  else if (isStringType(lt)) label = 'string';
  else if (DataType.isFloat(lt)) {
    throw dataError(file, { column: 'label' }, `expected an integer or string class label, found ${typeName(lt)}`, "cast the labels to integers (e.g. df['label'].astype('int32')) or to class-name strings");
  } else {
    throw dataError(file, { column: 'label' }, `expected an integer or string class label, found ${typeName(lt)}`, `store class indices (0..C-1) as int32 or class names as strings; ${SCHEMA_HINT}`);
  }

  let split = false;
  const splitField = byName.get('split');
  if (splitField) {
    if (!isStringType(splitField.type)) {
      throw dataError(file, { column: 'split' }, `expected a string (or dictionary of strings) column with values train|valid|test|unlabeled, found ${typeName(splitField.type)}`, "store the split as strings 'train', 'valid', 'test', or drop the column to get a seeded random split");
    }
    split = true;
  }

  let features: FeatureSource;
  const ignored: string[] = [];
  const featField = byName.get('features');
  if (featField) {
    const ft = featField.type;
    if (DataType.isFixedSizeList(ft)) {
      const et = ft.children[0].type;
      if (!isNumericType(et)) throw dataError(file, { column: 'features' }, `expected FixedSizeList of numbers, found ${typeName(ft)}`, 'store the features as numbers (float32 preferred)');
      if (ft.listSize <= 0) throw dataError(file, { column: 'features' }, 'the FixedSizeList has length 0', 'store at least one feature per row');
      features = { kind: 'fixed', column: 'features', dim: ft.listSize };
    } else if (DataType.isList(ft)) {
      const et = ft.children[0].type;
      if (!isNumericType(et)) throw dataError(file, { column: 'features' }, `expected a list of numbers, found ${typeName(ft)}`, 'store the features as numbers (float32 preferred)');
      features = { kind: 'list', column: 'features' };
    } else {
      throw dataError(
        file,
        { column: 'features' },
        `expected FixedSizeList<number>[D] (or List<number> with equal lengths), found ${typeName(ft)}`,
        `store one numeric vector per row, e.g. pyarrow.list_(pyarrow.float32(), D); or drop 'features' and use one numeric column per feature; ${SCHEMA_HINT}`,
      );
    }
    for (const f of schema.fields) if (!['label', 'features', 'split'].includes(f.name)) ignored.push(f.name);
  } else {
    const cols: string[] = [];
    for (const f of schema.fields) {
      if (f.name === 'label' || f.name === 'split') continue;
      if (isNumericType(f.type)) cols.push(f.name);
      else ignored.push(f.name);
    }
    if (cols.length === 0) {
      throw dataError(
        file,
        { column: 'features' },
        `missing features: there is no 'features' column and no numeric column besides label/split (columns are: ${fieldsText(schema)})`,
        `add a 'features' FixedSizeList<float32>[D] column, or numeric feature columns; ${SCHEMA_HINT}`,
      );
    }
    features = { kind: 'columns', columns: cols, dim: cols.length };
  }

  const shape = parseShape(schema.metadata.get('shape'), file);
  if (shape && features.kind !== 'list') checkShape(shape, features.dim, file);
  const scale = parseScale(schema.metadata.get('feature_scale'), file);
  return { label, features, split, shape, scale, ignored };
}

/** Parses the `feature_scale` schema metadata (a positive finite number, as JSON or a fraction `1/255`). */
function parseScale(text: string | undefined, file: string): number {
  if (text === undefined) return 1;
  const m = /^\s*([0-9.eE+-]+)\s*(?:\/\s*([0-9.eE+-]+)\s*)?$/.exec(text);
  const v = m ? Number(m[1]) / (m[2] === undefined ? 1 : Number(m[2])) : NaN;
  if (!Number.isFinite(v) || v <= 0) {
    throw dataError(file, {}, `schema metadata 'feature_scale' must be a positive number such as '0.00392156862745098' or '1/255', found ${JSON.stringify(text)}`, 'fix the value, or remove it to keep the features as stored');
  }
  return v;
}

/** Parses the `shape` schema metadata (a JSON array of positive integers). */
export function parseShape(text: string | undefined, file: string): number[] | null {
  if (text === undefined) return null;
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw dataError(file, {}, `schema metadata 'shape' is not JSON: ${JSON.stringify(text)}`, "set it to a JSON array such as '[28, 28, 1]', or remove it");
  }
  if (!Array.isArray(v) || v.length === 0 || !v.every((d) => Number.isInteger(d) && d > 0)) {
    throw dataError(file, {}, `schema metadata 'shape' must be a non-empty JSON array of positive integers, found ${text}`, "set it to e.g. '[28, 28, 1]', or remove it");
  }
  return v as number[];
}

/** Throws unless the product of `shape` is `dim`. */
export function checkShape(shape: number[], dim: number, file: string): void {
  const prod = shape.reduce((a, b) => a * b, 1);
  if (prod !== dim) {
    throw dataError(file, { column: 'features' }, `schema metadata 'shape' ${JSON.stringify(shape)} has ${prod} elements but each row has ${dim} features`, 'fix the shape metadata so its product equals the feature length, or remove it');
  }
}

/**
 * Index of the first non-finite value in `x` (NaN or +/-Infinity), or -1. A plain loop: about
 * 30 ms per 32M floats.
 */
export function firstNonFinite(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    if (v - v !== 0) return i; // NaN - NaN = NaN, Inf - Inf = NaN
  }
  return -1;
}

/** Per-class example counts for each split. */
export interface ClassCounts {
  train: Int32Array;
  valid: Int32Array;
  test: Int32Array;
}

/**
 * The checks on the classes once every label and split is known.
 *
 * @param names class names by index
 * @param counts per-class counts per split (after any `limit`)
 * @param firstRow per class, for error messages: the first input row of that class in each split (-1 if none)
 * @param labelKind integer labels must cover 0..C-1 with training examples for every index
 * @param limitNote appended to messages when a `limit` was applied
 * @throws DataError for fewer than two classes, a class without training examples (a gap in
 *   integer labels, or a class only in valid/test)
 */
export function checkClasses(
  file: string,
  names: readonly string[],
  counts: ClassCounts,
  firstRow: { valid: Int32Array; test: Int32Array },
  labelKind: LabelKind,
  limitNote: string,
): void {
  const C = names.length;
  const present: number[] = [];
  for (let c = 0; c < C; c++) if (counts.train[c] + counts.valid[c] + counts.test[c] > 0) present.push(c);
  if (present.length < 2) {
    const only = present.length === 1 ? `only one class (${JSON.stringify(names[present[0]])})` : 'no classes';
    throw dataError(file, { column: 'label' }, `the table has ${only}; classification needs at least two`, 'include examples of at least two classes');
  }
  let trainRows = 0;
  for (let c = 0; c < C; c++) trainRows += counts.train[c];
  if (trainRows === 0) throw dataError(file, { column: 'split' }, `no rows are in the train split${limitNote}`, "mark training rows with split = 'train' (or drop the split column for a seeded random split)");
  for (let c = 0; c < C; c++) {
    if (counts.train[c] > 0) continue;
    for (const s of ['valid', 'test'] as const) {
      if (counts[s][c] > 0) {
        throw dataError(
          file,
          { column: 'label', row: firstRow[s][c] },
          `class ${JSON.stringify(names[c])} appears in the ${s} split (${counts[s][c]} rows) but has no training examples${limitNote}`,
          `give class ${JSON.stringify(names[c])} some rows with split = 'train', or remove its ${s} rows`,
        );
      }
    }
    if (labelKind === 'int') {
      throw dataError(
        file,
        { column: 'label' },
        `class ${c} has no training examples: integer labels must be 0..C-1 without gaps (labels here go up to ${C - 1})${limitNote}`,
        'renumber the classes to 0..C-1 (e.g. pandas.factorize) or use string labels',
      );
    }
  }
}
