/**
 * Deterministic crash points for the crash-safety tests.
 *
 * `DISTILL_KIT_FAILPOINT=<name>` (or `<name>:<k>`) makes the k-th call (default the first) of
 * `failpoint('<name>')` kill the process with SIGKILL, exactly as an out-of-memory kill or a
 * power cut would: no `finally`, no exit handler, no flush. Several points may be listed,
 * separated by commas. Unset (the normal case), a call costs one environment lookup.
 *
 * Named points (grep for `failpoint(` to see them all):
 * - `ingest-split-written`: in ingest, after a split file has been renamed into place
 *   (`:1` = after `train.arrow`, while `valid.arrow` and `test.arrow` are still temp files);
 * - `ingest-batch-written`: in ingest's second pass, after an input record batch has been
 *   copied into the split files;
 * - `ensemble-valid-solved`: in the ensemble stage, after the validation cases are solved and
 *   before the test cases are;
 * - `covariance-written`: in the covariance stage, after `covariance.bin`/`covariance.json` and
 *   before the predictions files;
 * - `clusters-computed`: in the clusters stage, after k-means and before `clusters.json`;
 * - `teacher-logits-temp-written`: while writing a teacher-logit cache, the temp file complete
 *   and not yet renamed;
 * - `teacher-logits-written`: after each copy of the teacher-logit cache (`:1` = the scratch copy,
 *   before the stage folder's);
 * - `train-epoch-done`: in every training loop, after an epoch and its checkpoint;
 * - `report-written`: in the report stage, after `index.html`, before the manifest.
 */
import { ConfigError } from './errors.ts';

/** The environment variable read by {@link failpoint}. */
export const FAILPOINT_ENV = 'DISTILL_KIT_FAILPOINT';

const hits = new Map<string, number>();

/**
 * Parses a {@link FAILPOINT_ENV} value: `name[:k][,name[:k]...]` into name -> k (k >= 1).
 *
 * @throws ConfigError for an empty name or a k that is not a positive integer.
 */
export function parseFailpoints(value: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of value.split(',')) {
    const item = part.trim();
    if (item === '') continue;
    const m = /^([A-Za-z0-9_.-]+)(?::(\d+))?$/.exec(item);
    const k = m?.[2] === undefined ? 1 : Number(m[2]);
    if (!m || !(k >= 1)) {
      throw new ConfigError(`${FAILPOINT_ENV}: cannot parse ${JSON.stringify(item)}; expected name or name:k with k >= 1 (e.g. ingest-split-written:1), or unset the variable`);
    }
    out.set(m[1]!, k);
  }
  return out;
}

/**
 * A named crash point: when {@link FAILPOINT_ENV} names `name` (with hit count k, default 1),
 * the k-th call in this process sends SIGKILL to the process itself. Otherwise does nothing.
 */
export function failpoint(name: string): void {
  const value = process.env[FAILPOINT_ENV];
  if (!value) return;
  const k = parseFailpoints(value).get(name);
  if (k === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (n === k) {
    process.stderr.write(`failpoint ${name}:${k}: SIGKILL\n`);
    process.kill(process.pid, 'SIGKILL');
  }
}
